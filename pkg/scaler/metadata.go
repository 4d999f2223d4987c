package scaler

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/infercast/infercast/pkg/capacity"
)

// Metadata keys of a ScaledObject's external trigger.
const (
	KeyWorkload = "workload"
	KeyTier     = "tier"
)

// kedaKeys are trigger metadata keys that KEDA itself reads and forwards to
// every external scaler with the rest of the trigger's metadata; they are
// accepted and ignored. Any other unknown key is an error, so a typo such as
// "workoad" fails loudly instead of scaling the wrong thing.
var kedaKeys = map[string]bool{
	"scalerAddress": true,
	"enableTLS":     true,
	"unsafeSsl":     true,
}

// Catalog says which workloads and tiers the policy configures. It is asked
// on every call, so a reloaded policy takes effect at once.
type Catalog interface {
	// Tiers returns the tiers configured for workload, and false when the
	// policy has no such workload.
	Tiers(workload string) (tiers []string, ok bool)
}

// StaticCatalog is a Catalog from a fixed map of workload to tiers.
type StaticCatalog map[string][]string

// Tiers implements Catalog.
func (c StaticCatalog) Tiers(workload string) ([]string, bool) {
	t, ok := c[workload]
	return t, ok
}

// Target names one tier of one workload: what a ScaledObject trigger scales.
type Target struct {
	Workload string
	Tier     string
}

// MetricName is the name used in both GetMetricSpec and GetMetrics. KEDA
// prefixes it with "s<trigger index>-" for the HPA and strips that prefix
// again before calling GetMetrics.
func (t Target) MetricName() string {
	return "infercast-" + t.Workload + "-" + t.Tier
}

// ParseMetadata validates a trigger's scalerMetadata against the catalog.
// Its errors are meant for the user who wrote the ScaledObject: they name
// the key and the value at fault, and nothing of the server's internals.
func ParseMetadata(md map[string]string, cat Catalog) (Target, error) {
	var unknown []string
	for k := range md {
		if k != KeyWorkload && k != KeyTier && k != KeyWorkload+fromEnv && k != KeyTier+fromEnv && !kedaKeys[k] {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Target{}, fmt.Errorf("scalerMetadata: unknown key(s) %s; infercast reads %q and %q",
			strings.Join(unknown, ", "), KeyWorkload, KeyTier)
	}
	w, err := metadataValue(md, KeyWorkload, "the workload's name in the policy")
	if err != nil {
		return Target{}, err
	}
	t, err := metadataValue(md, KeyTier, fmt.Sprintf("%q or %q", capacity.TierOnDemand, capacity.TierSpot))
	if err != nil {
		return Target{}, err
	}
	if t != capacity.TierOnDemand && t != capacity.TierSpot {
		return Target{}, fmt.Errorf("scalerMetadata: tier %s is not valid: want %q or %q", quote(t), capacity.TierOnDemand, capacity.TierSpot)
	}
	tiers, ok := cat.Tiers(w)
	if !ok {
		return Target{}, fmt.Errorf("scalerMetadata: workload %s is not in the policy", quote(w))
	}
	if !slices.Contains(tiers, t) {
		return Target{}, fmt.Errorf("scalerMetadata: workload %s has no tier %q in the policy", quote(w), t)
	}
	return Target{Workload: w, Tier: t}, nil
}

// fromEnv is KEDA's suffix for a trigger key whose value is the named
// environment variable of the scale target's container: KEDA resolves it
// and forwards the value under the suffixed key (and drops the key when
// the variable is unset or empty).
const fromEnv = "FromEnv"

// metadataValue is the required key's value, given directly or as
// key+"FromEnv"; what describes the value in errors.
func metadataValue(md map[string]string, key, what string) (string, error) {
	v, direct := md[key]
	e, env := md[key+fromEnv]
	switch {
	case direct && env:
		return "", fmt.Errorf("scalerMetadata: both %q and %q are set: give one", key, key+fromEnv)
	case env:
		v = e
	}
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("scalerMetadata: missing required key %q (%s), or %q naming an environment variable of the scale target that holds it (KEDA drops it when the variable is unset)", key, what, key+fromEnv)
	}
	return v, nil
}

// quote quotes a user-supplied value for an error message, cut short so a
// huge value cannot flood logs or events.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
