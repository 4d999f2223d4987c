package predict_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

func TestDetectPeriodsThroughAMissingWeek(t *testing.T) {
	s := sine(28*1440, time.Minute, 800, 300)
	// A weaker 6-hour cycle, and a whole week without data.
	for i := range s.Values {
		s.Values[i] += 60 * math.Sin(2*math.Pi*float64(i)/360)
	}
	for i := 7 * 1440; i < 14*1440; i++ {
		s.Values[i] = math.NaN()
	}
	got := predict.DetectPeriods(s, 2)
	if len(got) != 2 {
		t.Fatalf("got %v, want 2 periods", got)
	}
	if d := got[0] - 24*time.Hour; d < -time.Minute || d > time.Minute {
		t.Errorf("strongest period %v, want 24h", got[0])
	}
	if d := got[1] - 6*time.Hour; d < -time.Minute || d > time.Minute {
		t.Errorf("second period %v, want 6h", got[1])
	}
	// And the forecaster, fed the same history, still forecasts the cycle.
	o, err := predict.Fit(s, predict.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := o.Forecast(60)
	if err != nil {
		t.Fatal(err)
	}
	n := len(s.Values)
	for i := range 60 {
		x := float64(n + i)
		want := 800 + 300*math.Sin(2*math.Pi*x/1440) + 60*math.Sin(2*math.Pi*x/360)
		if d := math.Abs(f.P50[i]-want) / want; d > 0.01 {
			t.Errorf("step %d: p50 %.1f, want %.1f within 1%% (model %s)", i+1, f.P50[i], want, f.Model)
		}
	}
	// The gap ended two weeks ago: out of the warnings' 7 days, still an
	// event.
	var gap time.Duration
	for _, e := range o.(predict.Eventer).Events() {
		if e.Kind == "gap" {
			gap += time.Duration(e.Intervals) * s.Step
		}
	}
	if gap != 7*24*time.Hour {
		t.Errorf("gap events cover %s, want the missing week", gap)
	}
}

func hasWarning(f predict.Forecast, prefix string) bool {
	for _, w := range f.Warnings {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}

// TestOutageDoesNotPoisonTheModel: a day and a half of zeros (as in
// nasa-1995-08) is followed at once by the forecast, reported, and after it
// the forecast is back on the daily cycle learnt before it.
func TestOutageDoesNotPoisonTheModel(t *testing.T) {
	s := sine(16*1440, time.Minute, 600, 250)
	start, end := 12*1440, 12*1440+2262 // 37.7 hours
	for i := start; i < end; i++ {
		s.Values[i] = 0
	}
	o := predict.NewOnline(time.Minute, predict.Options{})
	feed(o, s, start+120)
	f, err := o.Forecast(15)
	if err != nil {
		t.Fatal(err)
	}
	if f.P50[0] != 0 || !hasWarning(f, "outage:") {
		t.Errorf("during the outage: p50 %.1f (want 0), warnings %q", f.P50[0], f.Warnings)
	}
	// Two hours after the outage the forecast is on the cycle again.
	for i := start + 120; i < end+120; i++ {
		o.Observe(s.Start.Add(time.Duration(i)*time.Minute), s.Values[i])
	}
	f, err = o.Forecast(15)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		want := s.Values[end+120+i]
		if d := math.Abs(f.P50[i]-want) / want; d > 0.05 {
			t.Errorf("after the outage, step %d: p50 %.1f, want %.1f within 5%% (model %s)", i+1, f.P50[i], want, f.Model)
		}
	}
	if !hasWarning(f, "outage:") {
		t.Errorf("the outage is no longer reported: %q", f.Warnings)
	}
}

// TestNightlyTroughIsDemandNotOutage: a workload idle every night (zero
// requests 00:00–06:00, Poisson counts by day) is at first taken for an
// outage, but from the night whose zeros repeat the night before they are
// demand: no outage is reported, the forecast in the trough is zero, and
// one made in the trough sees the morning coming — what wakes a workload
// scaled to zero ahead of its demand. Six days: the default selection
// (re-selected daily, 12-hour half-life) takes the seasonal model once the
// first nights' errors have faded.
func TestNightlyTroughIsDemandNotOutage(t *testing.T) {
	const days = 6
	rng := rand.New(rand.NewPCG(7, 8))
	rate := func(i int) float64 { // requests per minute
		m := i % 1440
		if m < 360 {
			return 0
		}
		return 300 + 200*math.Sin(math.Pi*float64(m-360)/1080)
	}
	s := predict.Series{Start: t0, Step: time.Minute, Values: make([]float64, days*1440)}
	for i := range s.Values {
		lam := rate(i)
		s.Values[i] = math.Max(0, math.Round(lam+math.Sqrt(lam)*rng.NormFloat64()))
	}
	o := predict.NewOnline(time.Minute, predict.Options{})
	// The last night, 15 minutes before the morning.
	now := (days-1)*1440 + 345
	feed(o, s, now)
	f, err := o.Forecast(30)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 14 {
		if f.P50[i] > 1 {
			t.Errorf("step %d, still night: p50 %.1f, want 0 (model %s)", i+1, f.P50[i], f.Model)
		}
	}
	for i := 16; i < 30; i++ {
		if want := rate(now + i); f.P50[i] < 0.5*want {
			t.Errorf("step %d, morning: p50 %.1f, want near %.0f (model %s)", i+1, f.P50[i], want, f.Model)
		}
	}
	for _, w := range f.Warnings {
		if strings.Contains(w, "in progress") {
			t.Errorf("the nightly trough is reported as an outage: %q", w)
		}
	}
	// The second night (the first is the start of the history) has no
	// night before it to repeat: an outage then. None after it.
	outages := 0
	for _, e := range o.(predict.Eventer).Events() {
		if e.Kind == "outage" {
			outages++
			if e.End.After(t0.Add(36 * time.Hour)) {
				t.Errorf("a night after the second was taken for an outage: %+v", e)
			}
		}
	}
	if outages != 1 {
		t.Errorf("%d outages reported, want the second night's alone", outages)
	}
}

func TestSpikeIsClippedAndLevelShiftIsFollowed(t *testing.T) {
	n := 3 * 1440
	s := predict.Series{Start: t0, Step: time.Minute, Values: make([]float64, n)}
	for i := range s.Values {
		s.Values[i] = 1000 + float64((i*7919)%41) - 20
	}
	s.Values[2*1440] = 50000 // one-minute spike
	shift := 2*1440 + 300
	for i := shift; i < n; i++ {
		s.Values[i] += 1000 // demand doubles for good
	}
	o := predict.NewOnline(time.Minute, predict.Options{})
	feed(o, s, 2*1440+5)
	f, err := o.Forecast(5)
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(f, "spike:") {
		t.Errorf("spike not reported: %q", f.Warnings)
	}
	if f.P50[0] > 1100 {
		t.Errorf("p50 %.0f after the spike: the spike leaked into the level", f.P50[0])
	}
	for i := 2*1440 + 5; i < shift+60; i++ {
		o.Observe(s.Start.Add(time.Duration(i)*time.Minute), s.Values[i])
	}
	f, err = o.Forecast(5)
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(f, "level shift:") {
		t.Errorf("level shift not reported: %q", f.Warnings)
	}
	if f.P50[0] < 1900 || f.P50[0] > 2100 {
		t.Errorf("p50 %.0f an hour after the shift to 2000", f.P50[0])
	}
}

// A dip is followed as it comes (held at the old level, the forecast would
// only keep capacity the demand no longer needs), and reported: as a spike
// when demand comes back within 15 minutes, as a level shift when it does
// not, with the change from the level before it.
func TestDipIsFollowedAndReported(t *testing.T) {
	n := 2 * 1440
	s := predict.Series{Start: t0, Step: time.Minute, Values: make([]float64, n)}
	for i := range s.Values {
		s.Values[i] = 1000 + float64((i*7919)%41) - 20
	}
	dip := 1440
	for i := dip; i < dip+5; i++ {
		s.Values[i] -= 600 // five minutes at 400, then back
	}
	fall := 1440 + 120
	for i := fall; i < n; i++ {
		s.Values[i] -= 700 // demand falls to 300 for good
	}
	o := predict.NewOnline(time.Minute, predict.Options{})
	feed(o, s, dip+2)
	f, err := o.Forecast(1)
	if err != nil {
		t.Fatal(err)
	}
	if f.P50[0] > 500 {
		t.Errorf("p50 %.0f two minutes into a dip to 400: held at the old level", f.P50[0])
	}
	for i := dip + 2; i < fall+5; i++ {
		o.Observe(s.Start.Add(time.Duration(i)*time.Minute), s.Values[i])
	}
	if f, _ = o.Forecast(1); !hasWarning(f, "spike:") || hasWarning(f, "level shift:") {
		t.Errorf("a five-minute dip: %q, want a spike and no level shift", f.Warnings)
	}
	if f.P50[0] > 400 {
		t.Errorf("p50 %.0f five minutes after the fall to 300", f.P50[0])
	}
	for i := fall + 5; i < fall+30; i++ {
		o.Observe(s.Start.Add(time.Duration(i)*time.Minute), s.Values[i])
	}
	if f, _ = o.Forecast(1); !hasWarning(f, "level shift: demand moved -70%") {
		t.Errorf("half an hour after the fall to 300: %q, want a level shift of -70%%", f.Warnings)
	}
}

// TestTroughForecastFollowsTheLastCycle: in a recurring trough the forecast
// follows the last cycle whatever model is selected — zero while it was
// idle, its demand after, and the few requests of the interval in which
// demand returned — so a workload scaled to zero is woken the horizon
// before its demand returns. A 40-minute on/off cycle at 20 s steps,
// noise-free (last-value wins the selection), a day of history: the
// adapter's first decision in the e2e suite. Offset by half a step, demand
// returns mid-interval: that interval holds 1.5 requests, near zero.
func TestTroughForecastFollowsTheLastCycle(t *testing.T) {
	step, period := 20*time.Second, 40*time.Minute
	for _, offset := range []time.Duration{0, step / 2} {
		t.Run(offset.String(), func(t *testing.T) {
			rate := func(sec float64) float64 { // req/s: zero for a third of the cycle
				return math.Max(0, 10-20*math.Cos(2*math.Pi*(sec+offset.Seconds())/period.Seconds()))
			}
			count := func(i int) float64 { // requests in interval i (midpoint rule)
				var sum float64
				for k := range 200 {
					sum += rate((float64(i) + (float64(k)+0.5)/200) * step.Seconds())
				}
				return sum * step.Seconds() / 200
			}
			o := predict.NewOnline(step, predict.Options{Reselect: 2 * time.Hour})
			n := 24 * 180 // a day, ending in the middle of a trough
			for i := range n {
				o.Observe(t0.Add(time.Duration(i)*step), count(i))
			}
			f, err := o.Forecast(30)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(f.Model, "in a trough") {
				t.Errorf("model %q: want the trough's forecast", f.Model)
			}
			for h := 1; h <= 30; h++ {
				want := count(n - 1 + h)
				if got := f.P50[h-1]; (want == 0) != (got == 0) || math.Abs(got-want) > 0.05*math.Max(want, 1) {
					t.Errorf("step %d: p50 %.2f, want %.2f (model %s)", h, got, want, f.Model)
				}
			}
		})
	}
}
