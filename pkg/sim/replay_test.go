package sim

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
)

// This file holds a second, deliberately simple implementation of the
// model of SIMULATION.md, written from the document alone: whole seconds,
// plain slices scanned end to end, files parsed with the standard library.
// It replays decisions.csv and must agree with summary.json on cost and
// attainment within 0.5 %.

type simpleConfig struct {
	mu                                   float64
	coldStart, queueSLO, timeout, notice int64
	priceOnDemand, priceSpot             float64
	traceFile                            string
	scale                                float64
	poolFiles                            []string
}

type simpleReplica struct {
	seq         int
	spot        bool
	pending     bool
	zone        int
	ready, term int64 // term -1: none
}

// simpleReplay returns the cost and the SLO attainment of the decisions.
func simpleReplay(t *testing.T, c simpleConfig, decisionsCSV []byte) (cost, attainment float64) {
	t.Helper()
	// The trace: evenly spaced rows, each spread over its 5 s steps.
	f, err := os.Open(c.traceFile)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rows = rows[1:]
	t0, _ := strconv.ParseInt(rows[0][0], 10, 64)
	t1, _ := strconv.ParseInt(rows[1][0], 10, 64)
	rowStep := t1 - t0
	var perStep []float64
	for _, r := range rows {
		n, _ := strconv.ParseFloat(r[1], 64)
		for range rowStep / 5 {
			perStep = append(perStep, n*c.scale*5/float64(rowStep))
		}
	}
	// The pools.
	type zone struct {
		gap  int64
		data []float64
	}
	var zones []zone
	for _, p := range c.poolFiles {
		var doc struct {
			Metadata struct {
				GapSeconds int64 `json:"gap_seconds"`
			} `json:"metadata"`
			Data []float64 `json:"data"`
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		zones = append(zones, zone{doc.Metadata.GapSeconds, doc.Data})
	}
	available := func(z int, at int64) bool {
		if len(zones) == 0 {
			return true
		}
		return zones[z].data[(at/zones[z].gap)%int64(len(zones[z].data))] > 0
	}
	nZones := max(1, len(zones))
	// The decisions.
	dec := map[int64][2]int{}
	drows, err := csv.NewReader(bytes.NewReader(decisionsCSV)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range drows[1:] {
		ts, _ := strconv.ParseInt(r[0], 10, 64)
		od, _ := strconv.Atoi(r[1])
		sp, _ := strconv.Atoi(r[2])
		dec[ts-t0] = [2]int{od, sp}
	}

	var reps []*simpleReplica
	seq := 0
	liveIn := func(z int) int {
		n := 0
		for _, r := range reps {
			if r.spot && !r.pending && r.zone == z {
				n++
			}
		}
		return n
	}
	pick := func(at int64) int {
		best := -1
		for z := range nZones {
			if available(z, at) && (best == -1 || liveIn(z) < liveIn(best)) {
				best = z
			}
		}
		return best
	}
	type cohort struct {
		stamp int64
		left  float64
	}
	var queue []cohort
	var requests, met float64
	var billedSeconds [2]int64 // on-demand, spot
	wasAvailable := make([]bool, nZones)
	for z := range wasAvailable {
		wasAvailable[z] = true
	}
	for k, a := range perStep {
		now := int64(k) * 5
		// 1
		queue = append(queue, cohort{now, a})
		requests += a
		// 2
		for z := range nZones {
			up := available(z, now)
			if wasAvailable[z] && !up {
				for _, r := range reps {
					if r.spot && !r.pending && r.zone == z && r.term == -1 {
						r.term = now + c.notice
					}
				}
			}
			wasAvailable[z] = up
		}
		for _, r := range reps {
			if r.pending {
				if z := pick(now); z >= 0 {
					r.pending, r.zone, r.ready = false, z, now+c.coldStart
				}
			}
		}
		// 3
		if d, ok := dec[now]; ok {
			for tier, want := range d {
				spot := tier == 1
				var mine []*simpleReplica
				for _, r := range reps {
					if r.spot == spot && r.term == -1 {
						mine = append(mine, r)
					}
				}
				for i := len(mine); i < want; i++ {
					r := &simpleReplica{seq: seq, spot: spot, ready: now + c.coldStart, term: -1}
					seq++
					if spot {
						r.zone = pick(now)
						r.pending = r.zone < 0
					}
					reps = append(reps, r)
				}
				if len(mine) > want {
					sort.Slice(mine, func(i, j int) bool {
						if mine[i].pending != mine[j].pending {
							return mine[i].pending
						}
						if mine[i].ready != mine[j].ready {
							return mine[i].ready > mine[j].ready
						}
						return mine[i].seq > mine[j].seq
					})
					gone := map[*simpleReplica]bool{}
					for _, r := range mine[:len(mine)-want] {
						gone[r] = true
					}
					var kept []*simpleReplica
					for _, r := range reps {
						if !gone[r] {
							kept = append(kept, r)
						}
					}
					reps = kept
				}
			}
		}
		// 4
		capacity := 0.0
		for _, r := range reps {
			if !r.pending && r.ready <= now && (r.term == -1 || r.term > now) {
				capacity += c.mu * 5
			}
		}
		for i := range queue {
			take := math.Min(queue[i].left, capacity)
			capacity -= take
			queue[i].left -= take
			if now-queue[i].stamp <= c.queueSLO {
				met += take
			}
		}
		// 5
		var waiting []cohort
		for _, q := range queue {
			if q.left > 1e-9 && now-q.stamp <= c.timeout {
				waiting = append(waiting, q)
			}
		}
		queue = waiting
		// 6
		var kept []*simpleReplica
		for _, r := range reps {
			if !r.pending {
				if r.spot {
					billedSeconds[1] += 5
				} else {
					billedSeconds[0] += 5
				}
			}
			if r.term == -1 || r.term > now+5 {
				kept = append(kept, r)
			}
		}
		reps = kept
	}
	cost = float64(billedSeconds[0])/3600*c.priceOnDemand + float64(billedSeconds[1])/3600*c.priceSpot
	return cost, met / requests
}

// splitPolicy is a test policy that uses both tiers and reacts to spot
// trouble, so that the replay exercises pending, notices and removals: the
// last minute's rate with 30 % headroom, a third on-demand, the rest spot,
// moved to on-demand while spot replicas are pending or noticed.
type splitPolicy struct{ mu float64 }

func (p splitPolicy) Decide(obs *Observation) (int, int) {
	k := len(obs.Arrivals)
	w := min(k, 12)
	sum := obs.Queue / 4
	for _, a := range obs.Arrivals[k-w:] {
		sum += a
	}
	need := 1
	if w > 0 {
		need = max(1, int(math.Ceil(1.3*sum/(float64(w)*obs.Step.Seconds())/p.mu)))
	}
	od := (need + 2) / 3
	spot := need - od
	if obs.Spot.Pending > 0 || obs.Spot.Terminating > 0 {
		od += obs.Spot.Pending + obs.Spot.Terminating
	}
	return od, spot
}

func TestReplayAgreesWithSimpleModel(t *testing.T) {
	traces := filepath.Join(testutil.SharedDir(t), "traces")
	ctx := context.Background()
	full, err := LoadTrace(ctx, filepath.Join(traces, "nasa-1995-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	// Four days keep the simple model's test quick under -race.
	days := 4
	if testing.Short() {
		days = 1
	}
	dir := t.TempDir()
	tracePath := filepath.Join(dir, "nasa-head.csv")
	var b bytes.Buffer
	b.WriteString("timestamp,requests\n")
	n := days * 24 * 60
	for i, c := range full.Counts[:n] {
		fmt.Fprintf(&b, "%d,%v\n", full.Start.Unix()+int64(i*60), c)
	}
	if err := os.WriteFile(tracePath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := LoadTrace(ctx, tracePath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Timeout = 30 * time.Second
	for _, tc := range []struct {
		name    string
		profile string
		policy  func() Policy
	}{
		{"reactive", "", func() Policy { return NewReactive(cfg) }},
		{"split-no-spot-file", "", func() Policy { return splitPolicy{cfg.Mu} }},
		{"split-spot-medium", "medium", func() Policy { return splitPolicy{cfg.Mu} }},
		{"split-spot-low", "low", func() Policy { return splitPolicy{cfg.Mu} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var poolFiles []string
			var pools []*Pool
			if tc.profile != "" {
				for _, z := range []string{"a", "b", "c"} {
					f := filepath.Join(traces, "spot", "spot-"+tc.profile+"-"+z+".json")
					p, err := LoadPool(ctx, f)
					if err != nil {
						t.Fatal(err)
					}
					poolFiles, pools = append(poolFiles, f), append(pools, p)
				}
			}
			sc, err := NewScenario(cfg, tr, 10, pools)
			if err != nil {
				t.Fatal(err)
			}
			res, err := sc.Run(ctx, tc.policy(), RunOptions{Name: tc.name})
			if err != nil {
				t.Fatal(err)
			}
			var dec, sum bytes.Buffer
			if err := WriteDecisions(&dec, res.Decisions); err != nil {
				t.Fatal(err)
			}
			if err := WriteSummary(&sum, NewSummaryFile(sc, res, nil)); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Cost       float64 `json:"cost_dollars"`
				Attainment float64 `json:"slo_attainment"`
				Notices    int     `json:"spot_interruptions"`
			}
			if err := json.Unmarshal(sum.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			cost, att := simpleReplay(t, simpleConfig{
				mu: cfg.Mu, coldStart: 180, queueSLO: 5, timeout: 30, notice: 120,
				priceOnDemand: cfg.PriceOnDemand, priceSpot: cfg.PriceSpot,
				traceFile: tracePath, scale: 10, poolFiles: poolFiles,
			}, dec.Bytes())
			t.Logf("summary.json: $%.2f, %.4f%% (%d notices); simple model: $%.2f, %.4f%%",
				got.Cost, 100*got.Attainment, got.Notices, cost, 100*att)
			if math.Abs(cost-got.Cost) > 0.005*cost || math.Abs(att-got.Attainment) > 0.005*att {
				t.Errorf("disagree beyond 0.5 %%: summary.json $%.4f %.6f, simple model $%.4f %.6f", got.Cost, got.Attainment, cost, att)
			}
			if tc.profile != "" && got.Notices == 0 {
				t.Error("no spot interruptions: the replay did not exercise notices")
			}
		})
	}
}
