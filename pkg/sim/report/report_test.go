package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/sim"
)

// banded is a policy with a forecast band: it sizes for the last minute's
// rate and reports a band around it.
type banded struct {
	mu   float64
	rate float64
}

func (p *banded) Decide(o *sim.Observation) (int, int) {
	k := len(o.Arrivals)
	w := min(k, 12)
	s := 0.0
	for _, a := range o.Arrivals[k-w:] {
		s += a
	}
	if w > 0 {
		p.rate = s / (float64(w) * o.Step.Seconds())
	}
	n := int(math.Ceil(1.5 * p.rate / p.mu))
	return 1, n
}

func (p *banded) ForecastBand() (sim.Band, bool) {
	return sim.Band{Low: 0.8 * p.rate, Mid: p.rate, High: 1.3 * p.rate}, p.rate > 0
}

func scenario(t *testing.T, days int, pools []*sim.Pool) *sim.Scenario {
	t.Helper()
	tr := &sim.Trace{Name: "/x/demo.csv", Start: time.Unix(1_700_000_000, 0).UTC(), Step: time.Minute}
	for i := range days * 1440 {
		tr.Counts = append(tr.Counts, 600+400*math.Sin(2*math.Pi*float64(i)/1440))
	}
	sc, err := sim.NewScenario(sim.DefaultConfig(), tr, 1, pools)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func renderPage(t *testing.T, sc *sim.Scenario) string {
	t.Helper()
	ctx := context.Background()
	pol, err := sc.Run(ctx, &banded{mu: sc.Config.Mu}, sim.RunOptions{Name: "infercast"})
	if err != nil {
		t.Fatal(err)
	}
	rea, err := sc.Run(ctx, sim.NewReactive(sc.Config), sim.RunOptions{Name: "reactive"})
	if err != nil {
		t.Fatal(err)
	}
	bl := map[string]*sim.Result{"reactive": rea}
	var buf bytes.Buffer
	err = Write(&buf, Input{Scenario: sc, Summary: sim.NewSummaryFile(sc, pol, bl), Policy: pol, Baselines: bl, Order: []string{"reactive"}})
	if err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestReportIsSelfContainedAndComplete(t *testing.T) {
	pool := &sim.Pool{Name: "zone-a", Gap: time.Hour, Data: []float64{1, 1, 1, 0}}
	page := renderPage(t, scenario(t, 3, []*sim.Pool{pool}))
	for _, s := range []string{
		"Backtest of demo.csv ×1", "Demand, forecast and ready capacity", "forecast band",
		"Where requests missed the SLO", "Cost over time", "The spot market", "Close-up:",
		"Against the baselines", "<td>reactive</td>", "spot pools: zone-a",
	} {
		if !strings.Contains(page, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if n := strings.Count(page, "<svg"); n != 5 {
		t.Errorf("%d plots, want 5", n)
	}
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*['"]?https?:|<script`).FindString(page); m != "" {
		t.Errorf("report loads something from elsewhere: %q", m)
	}
	// Every inline SVG is well-formed XML.
	for _, m := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1) {
		d := xml.NewDecoder(strings.NewReader(m))
		for {
			_, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("an SVG is not well-formed: %v", err)
			}
		}
	}
}

func TestReportWithoutSpotOrBand(t *testing.T) {
	sc := scenario(t, 1, nil)
	ctx := context.Background()
	pol, err := sc.Run(ctx, sim.Static{OnDemand: 10}, sim.RunOptions{Name: "infercast"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, Input{Scenario: sc, Summary: sim.NewSummaryFile(sc, pol, nil), Policy: pol}); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if strings.Contains(page, "The spot market") || strings.Contains(page, "forecast band") || !strings.Contains(page, "reports no forecast") {
		t.Error("a run without spot pools or forecast band shows them")
	}
	if !strings.Contains(page, "none (spot always available)") {
		t.Error("the scenario line does not say there were no spot pools")
	}
}

func TestBucketsAreRound(t *testing.T) {
	sc := scenario(t, 28, nil)
	pol, err := sc.Run(context.Background(), sim.Static{OnDemand: 10}, sim.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := newBuckets(Input{Scenario: sc, Policy: pol}, maxPoints)
	if b.width != 1800 || len(b.t) > maxPoints {
		t.Errorf("28 days: %d buckets of %v s, want 30 min buckets", len(b.t), b.width)
	}
	// Bucketed demand keeps the total.
	total := 0.0
	for _, d := range b.demand {
		total += d * b.width
	}
	if want := sc.Requests(); math.Abs(total-want) > 1e-6*want {
		t.Errorf("bucketed demand %v, want %v", total, want)
	}
}

func TestNumberFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{dollars(12.345), "$12.35"}, {dollars(20611.8), "$20,612"}, {count(1234567), "1,234,567"},
		{count(2.5), "2.5"}, {pct(0.98294), "98.294 %"}, {human(1800), "30 min"}, {human(3600), "1 h"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	for _, tc := range []struct {
		span float64
		step float64
	}{{3600, 600}, {6 * 3600, 3600}, {3 * 86400, 12 * 3600}, {28 * 86400, 7 * 86400}} {
		ticks := timeTicker{}.Ticks(1_700_000_000, 1_700_000_000+tc.span)
		if len(ticks) < 2 || len(ticks) > 11 || ticks[1].Value-ticks[0].Value != tc.step || math.Mod(ticks[0].Value, tc.step) != 0 {
			t.Errorf("span %v s: %d ticks, step %v, want round steps of %v s", tc.span, len(ticks), ticks[1].Value-ticks[0].Value, tc.step)
		}
	}
}

// The cheapest run that meets its own target is the pick: a cheaper one
// below its target is not, nor one above it that costs more.
func TestSweepCheapest(t *testing.T) {
	run := func(v string, att, cost, target float64) SweepRun {
		return SweepRun{Value: v, Target: target, Summary: sim.Summary{SLOAttainment: att, CostDollars: cost}}
	}
	sw := &Sweep{Key: "forecast_quantile", Runs: []SweepRun{
		run("0.9", 0.998, 100, 0.999), run("0.99", 0.9995, 150, 0.999), run("0.975", 0.9991, 120, 0.999),
	}}
	if i, ok := sw.Cheapest(); !ok || sw.Runs[i].Value != "0.975" {
		t.Fatalf("cheapest = %d %v, want 0.975", i, ok)
	}
	// Each run against its own target (a sweep of target_availability).
	sw = &Sweep{Key: "target_availability", Runs: []SweepRun{run("0.99", 0.995, 90, 0.99), run("0.999", 0.998, 100, 0.999)}}
	if i, ok := sw.Cheapest(); !ok || sw.Runs[i].Value != "0.99" {
		t.Fatalf("cheapest = %d %v, want 0.99", i, ok)
	}
	sw.Runs = sw.Runs[1:]
	if i, ok := sw.Cheapest(); ok {
		t.Fatalf("cheapest = %d, want none", i)
	}

	// On the page: a table and a figure, the pick in bold; without a
	// pick, a note that says so.
	sc := scenario(t, 1, nil)
	pol, err := sc.Run(context.Background(), &banded{}, sim.RunOptions{Name: "infercast"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		runs []SweepRun
		want string
	}{
		{[]SweepRun{run("0.9", 0.998, 100, 0.999), run("0.975", 0.9991, 120, 0.999)}, `<tr class="main"><td>0.975</td>`},
		{[]SweepRun{run("0.9", 0.998, 100, 0.999)}, "None of the values meets its target_availability"},
	} {
		var buf bytes.Buffer
		in := Input{Scenario: sc, Summary: sim.NewSummaryFile(sc, pol, nil), Policy: pol, Sweep: &Sweep{Key: "forecast_quantile", Runs: tc.runs}}
		if err := Write(&buf, in); err != nil {
			t.Fatal(err)
		}
		page := buf.String()
		for _, want := range []string{tc.want, "The policy with other values of forecast_quantile", "Cost against SLO attainment"} {
			if !strings.Contains(page, want) {
				t.Errorf("page lacks %q", want)
			}
		}
	}
}
