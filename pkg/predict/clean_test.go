package predict_test

import (
	"math"
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
