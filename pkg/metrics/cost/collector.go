package cost

import (
	"context"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Replica is one running replica (pod) of a model and the node it runs on.
type Replica struct {
	// Node names the node the replica runs on. The replicas on one node,
	// of every model, share its price: a node is charged at most once.
	Node string
	// NodeLabels are the labels of the pod's node: tier, instance type and
	// pool are read from them.
	NodeLabels map[string]string
	// Server names the model server (the pod) on its node. A server that
	// serves several models is a replica of each, under one name: it holds
	// its part of the node once, split among its models. "" is a server of
	// its own.
	Server string
	// GPUs the pod holds.
	GPUs float64
	// Share is the part of its node the pod holds (its GPU-like resources
	// against the node's allocatable), 0 when unknown. Unknown, it is GPUs
	// over the catalogue's gpus; with neither, the replica takes an equal
	// part of what the replicas of known share leave of the node.
	Share float64
	// ShareKnown says Share is known even when it is 0: a server that holds
	// none of its node's GPUs (a CPU-only one on a GPU node) costs nothing
	// of the node, rather than taking what the GPU holders leave.
	ShareKnown bool
	// RequestsPerSecond is the model's request rate on this server, 0 when
	// unknown. A server serving several models is split among them by it,
	// equally when none of them has requests.
	RequestsPerSecond float64
}

// Usage is what one model uses right now.
type Usage struct {
	Team, Model       string
	RequestsPerSecond float64
	Replicas          []Replica
}

// UsageSource reports current usage per model (the exporter joins its
// scrape results — request rate — with pod placement from discovery).
type UsageSource interface {
	Usage(ctx context.Context) ([]Usage, error)
}

// Collector exports spend from a catalogue and a UsageSource.
type Collector struct {
	src     UsageSource
	log     *slog.Logger
	timeout time.Duration

	mu  sync.RWMutex
	cat *Catalogue

	spend, perK, gpus, replicas, unpriced, up *prometheus.Desc
}

// NewCollector builds a spend collector; timeout bounds one Usage call
// (default 5 s).
func NewCollector(src UsageSource, cat *Catalogue, timeout time.Duration, log *slog.Logger) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	tier := []string{"team", "model", "tier"}
	model := []string{"team", "model"}
	return &Collector{
		src: src, cat: cat, log: log, timeout: timeout,
		spend:    prometheus.NewDesc("infercast_spend_dollars_per_hour", "What a model's replicas cost now, in dollars per hour, by capacity tier.", tier, nil),
		perK:     prometheus.NewDesc("infercast_cost_per_thousand_requests_dollars", "Dollars per 1,000 requests at the current spend and request rate (absent when no requests, or while a replica is unpriced).", model, nil),
		gpus:     prometheus.NewDesc("infercast_spend_gpus", "GPUs a model's replicas hold, by capacity tier.", tier, nil),
		replicas: prometheus.NewDesc("infercast_spend_replicas", "Replicas of a model, by capacity tier.", tier, nil),
		unpriced: prometheus.NewDesc("infercast_spend_unpriced_replicas", "Replicas left out of spend: node not in the price catalogue, no price for its tier, or unreadable labels.", model, nil),
		up:       prometheus.NewDesc("infercast_spend_usage_up", "1 when the last usage read succeeded, else 0.", nil, nil),
	}
}

// SetCatalogue swaps the price catalogue (config reload).
func (c *Collector) SetCatalogue(cat *Catalogue) {
	c.mu.Lock()
	c.cat = cat
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.spend, c.perK, c.gpus, c.replicas, c.unpriced, c.up} {
		ch <- d
	}
}

// Spend is one model's computed spend.
type Spend struct {
	Team, Model  string
	DollarsPerHr map[Tier]float64
	GPUs         map[Tier]float64
	Replicas     map[Tier]int
	Unpriced     int
	// PerThousand is dollars per 1,000 requests; HasPerThousand is false
	// when the model has no requests or an unpriced replica.
	PerThousand    float64
	HasPerThousand bool
}

// UsageFunc adapts a function to UsageSource.
type UsageFunc func(ctx context.Context) ([]Usage, error)

// Usage implements UsageSource.
func (f UsageFunc) Usage(ctx context.Context) ([]Usage, error) { return f(ctx) }

// merge folds entries of one team and model together (a model served from
// two places reported twice), so every series is emitted once.
func merge(usage []Usage) []Usage {
	type key struct{ team, model string }
	idx := map[key]int{}
	var out []Usage
	for _, u := range usage {
		k := key{u.Team, u.Model}
		if i, ok := idx[k]; ok {
			out[i].RequestsPerSecond += u.RequestsPerSecond
			out[i].Replicas = append(out[i].Replicas, u.Replicas...)
			continue
		}
		idx[k] = len(out)
		u.Replicas = append([]Replica(nil), u.Replicas...)
		out = append(out, u)
	}
	return out
}

// Compute prices usage against a catalogue.
func Compute(cat *Catalogue, usage []Usage) []Spend {
	usage = merge(usage)
	parts := split(cat, usage)
	out := make([]Spend, 0, len(usage))
	for i, u := range usage {
		s := Spend{Team: u.Team, Model: u.Model,
			DollarsPerHr: map[Tier]float64{}, GPUs: map[Tier]float64{}, Replicas: map[Tier]int{}}
		total := 0.0
		for j, r := range u.Replicas {
			node, err := NodeFromLabels(r.NodeLabels)
			if err != nil {
				s.Unpriced++
				continue
			}
			part := parts[i][j]
			s.Replicas[node.Tier]++
			s.GPUs[node.Tier] += r.GPUs * part.model
			hourly, ok := nodePrice(cat, node)
			if !ok {
				s.Unpriced++
				continue
			}
			hourly *= part.node * part.model
			s.DollarsPerHr[node.Tier] += hourly
			total += hourly
		}
		// An unpriced replica serves requests the spend leaves out: the
		// ratio would be too low, so there is none.
		if u.RequestsPerSecond > 0 && s.Unpriced == 0 {
			s.PerThousand = total / (u.RequestsPerSecond * 3600) * 1000
			s.HasPerThousand = true
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Team != out[j].Team {
			return out[i].Team < out[j].Team
		}
		return out[i].Model < out[j].Model
	})
	return out
}

// nodePrice is what a node costs an hour on its tier; ok is false when the
// catalogue has no price for it.
func nodePrice(cat *Catalogue, n Node) (float64, bool) {
	p, ok := cat.Lookup(n)
	if !ok {
		return 0, false
	}
	return p.For(n.Tier)
}

// knownShare is the part of its node a replica holds when it is known: its
// own Share (0 too when ShareKnown), else its GPUs over the catalogue's; ok
// is false without either.
func knownShare(cat *Catalogue, r Replica) (float64, bool) {
	if r.Share > 0 || r.ShareKnown {
		return r.Share, true
	}
	node, err := NodeFromLabels(r.NodeLabels)
	if err != nil {
		return 0, false
	}
	if p, ok := cat.Lookup(node); ok && p.GPUs > 0 && r.GPUs > 0 {
		return r.GPUs / float64(p.GPUs), true
	}
	return 0, false
}

// server is one model server (pod), however many models it serves.
type server struct {
	node   string
	share  float64 // of its node
	known  bool    // share is known, not a part of what is left
	rate   float64 // requests/s over its models
	models int     // replicas it is: one per model
}

// part is a replica's part of its node's price: its server's share of the
// node, times the part of the server its model takes.
type part struct{ node, model float64 }

// split gives every replica (parts[i][j] for usage[i].Replicas[j]) its
// part of its node: a server's share of the node (shareNodes), split among
// the models it serves by their request rates on it, else equally.
func split(cat *Catalogue, usage []Usage) [][]part {
	servers, of := groupServers(cat, usage)
	shareNodes(servers)
	parts := make([][]part, len(usage))
	for i, u := range usage {
		parts[i] = make([]part, len(u.Replicas))
		for j, r := range u.Replicas {
			s := servers[of[i][j]]
			model := 1 / float64(s.models)
			if s.rate > 0 {
				model = rateOf(r) / s.rate
			}
			parts[i][j] = part{node: s.share, model: model}
		}
	}
	return parts
}

// rateOf is a replica's request rate, 0 when unknown (or not a rate).
func rateOf(r Replica) float64 {
	if r.RequestsPerSecond > 0 && !math.IsInf(r.RequestsPerSecond, 1) {
		return r.RequestsPerSecond
	}
	return 0
}

// groupServers finds the servers the replicas are: of[i][j] is the index
// in servers of usage[i].Replicas[j]'s. Replicas with one Server name on one
// node are one server.
func groupServers(cat *Catalogue, usage []Usage) (servers []*server, of [][]int) {
	type key struct{ node, name string }
	byName := map[key]int{}
	of = make([][]int, len(usage))
	for i, u := range usage {
		of[i] = make([]int, len(u.Replicas))
		for j, r := range u.Replicas {
			k := key{r.Node, r.Server}
			n, ok := byName[k]
			if !ok || r.Server == "" {
				n = len(servers)
				share, known := knownShare(cat, r)
				servers = append(servers, &server{node: r.Node, share: share, known: known})
				if r.Server != "" {
					byName[k] = n
				}
			}
			servers[n].rate += rateOf(r)
			servers[n].models++
			of[i][j] = n
		}
	}
	return servers, of
}

// shareNodes sets every server's share so that the servers on a node never
// cost more than the node: those of known share keep it, scaled down
// together when they add up to more than the node (over-committed); the
// others split what is left equally.
func shareNodes(servers []*server) {
	known := map[string]float64{} // node → sum of known shares
	unknown := map[string]int{}   // node → servers of unknown share
	for _, s := range servers {
		if s.known {
			known[s.node] += s.share
		} else {
			unknown[s.node]++
		}
	}
	for _, s := range servers {
		switch k := known[s.node]; {
		case !s.known:
			s.share = max(0, 1-k) / float64(unknown[s.node])
		case k > 1:
			s.share /= k
		}
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	usage, err := c.src.Usage(ctx)
	if err != nil {
		c.log.Warn("cost: reading usage failed", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	c.mu.RLock()
	cat := c.cat
	c.mu.RUnlock()
	for _, s := range Compute(cat, usage) {
		for _, t := range []Tier{OnDemand, Spot} {
			lv := []string{s.Team, s.Model, string(t)}
			ch <- prometheus.MustNewConstMetric(c.spend, prometheus.GaugeValue, s.DollarsPerHr[t], lv...)
			ch <- prometheus.MustNewConstMetric(c.gpus, prometheus.GaugeValue, s.GPUs[t], lv...)
			ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(s.Replicas[t]), lv...)
		}
		ch <- prometheus.MustNewConstMetric(c.unpriced, prometheus.GaugeValue, float64(s.Unpriced), s.Team, s.Model)
		if s.HasPerThousand {
			ch <- prometheus.MustNewConstMetric(c.perK, prometheus.GaugeValue, s.PerThousand, s.Team, s.Model)
		}
	}
}
