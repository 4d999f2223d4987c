// Package cost turns node prices and per-model usage into spend: $/hour per
// model and capacity tier, and cost per 1,000 requests, labelled by team
// and model for showback.
package cost

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/infercast/infercast/internal/strictyaml"
)

// Price is what one node costs, in dollars per hour, on each tier, and how
// many GPUs it has (to price a replica by its GPU share).
type Price struct {
	OnDemand float64 `yaml:"on_demand"`
	Spot     float64 `yaml:"spot"`
	GPUs     int     `yaml:"gpus"`
}

// For returns the hourly price on a tier; ok is false when the catalogue
// has none (a spot price left out).
func (p Price) For(t Tier) (float64, bool) {
	if t == Spot {
		return p.Spot, p.Spot > 0
	}
	return p.OnDemand, p.OnDemand > 0
}

// Catalogue maps node pools and instance types to prices. A node pool entry
// wins over its instance type (pools carry negotiated or reserved prices).
type Catalogue struct {
	InstanceTypes map[string]Price `yaml:"instance_types"`
	NodePools     map[string]Price `yaml:"node_pools"`
}

// ParseCatalogue reads a price catalogue strictly: unknown keys, duplicate
// keys and invalid prices are errors that name the entry and field.
func ParseCatalogue(r io.Reader) (*Catalogue, error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("price catalogue: %w", err)
	}
	var c Catalogue
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("price catalogue: empty")
		}
		return nil, fmt.Errorf("price catalogue: %w", err)
	}
	// Decoded again as nodes: the lines of invalid entries.
	var doc yaml.Node
	var root *yaml.Node
	if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	if err := c.validate(root); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks every entry.
func (c *Catalogue) Validate() error { return c.validate(nil) }

// validate checks every entry; with the document's root, an error says on
// which line the entry (or its field) is.
func (c *Catalogue) validate(root *yaml.Node) error {
	if len(c.InstanceTypes)+len(c.NodePools) == 0 {
		return errors.New("price catalogue: no instance_types or node_pools")
	}
	var errs []error
	check := func(section string, m map[string]Price) {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			p := m[n]
			// The field's line, else its entry's (a field left out).
			line := func(field string) string {
				if l := strictyaml.KeysLine(root, section, n, field); l > 0 {
					return fmt.Sprintf("line %d: ", l)
				}
				return ""
			}
			at := func(field string) string {
				return fmt.Sprintf("price catalogue: %s%s[%q].%s", line(field), section, n, field)
			}
			switch {
			case n == "":
				errs = append(errs, fmt.Errorf("price catalogue: %s%s: empty name", line(""), section))
			case !(p.OnDemand > 0) || math.IsInf(p.OnDemand, 0):
				errs = append(errs, fmt.Errorf("%s: must be a positive $/hour, got %v", at("on_demand"), p.OnDemand))
			case !(p.Spot >= 0) || math.IsInf(p.Spot, 0):
				errs = append(errs, fmt.Errorf("%s: must be >= 0 $/hour (0: no spot price), got %v", at("spot"), p.Spot))
			case p.Spot > p.OnDemand:
				errs = append(errs, fmt.Errorf("%s: %v is above on_demand %v", at("spot"), p.Spot, p.OnDemand))
			case p.GPUs < 0:
				errs = append(errs, fmt.Errorf("%s: must be >= 0, got %d", at("gpus"), p.GPUs))
			}
		}
	}
	check("instance_types", c.InstanceTypes)
	check("node_pools", c.NodePools)
	return errors.Join(errs...)
}

// Lookup finds a node's price: its pool first, then its instance type.
func (c *Catalogue) Lookup(n Node) (Price, bool) {
	if c == nil {
		return Price{}, false
	}
	if n.Pool != "" {
		if p, ok := c.NodePools[n.Pool]; ok {
			return p, true
		}
	}
	if n.InstanceType != "" {
		if p, ok := c.InstanceTypes[n.InstanceType]; ok {
			return p, true
		}
	}
	return Price{}, false
}
