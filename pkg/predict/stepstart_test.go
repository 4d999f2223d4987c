package predict

import (
	"testing"
	"time"
)

// TestStepStart: multiples of the step since the unix epoch — where
// time.Truncate agrees for steps that divide a day, and not for others.
func TestStepStart(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 3, 30, 0, time.UTC)
	for _, tc := range []struct {
		step time.Duration
		want time.Time
	}{
		{time.Minute, time.Date(2026, 3, 2, 10, 3, 0, 0, time.UTC)},
		{15 * time.Second, time.Date(2026, 3, 2, 10, 3, 30, 0, time.UTC)},
		{time.Hour, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)},
		// 7 minutes: the epoch's grid (10:03 is minute 29,540,763 of the
		// epoch, 4,220,109 × 7), not Go's zero time's.
		{7 * time.Minute, time.Date(2026, 3, 2, 10, 3, 0, 0, time.UTC)},
	} {
		got := StepStart(at, tc.step)
		if !got.Equal(tc.want) {
			t.Errorf("StepStart(%s, %s) = %s, want %s", at, tc.step, got, tc.want)
		}
		if got.UnixMilli()%tc.step.Milliseconds() != 0 {
			t.Errorf("step %s: %s is not on the epoch's grid", tc.step, got)
		}
	}
	if tr := at.Truncate(7 * time.Minute); tr.Equal(StepStart(at, 7*time.Minute)) {
		t.Errorf("Truncate(7m) = %s too: the case does not tell the grids apart", tr)
	}
	if got := StepStart(time.Unix(-90, 0), time.Minute); !got.Equal(time.Unix(-120, 0)) {
		t.Errorf("before the epoch: %s, want %s", got, time.Unix(-120, 0))
	}
}
