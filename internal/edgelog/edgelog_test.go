package edgelog

import "testing"

func TestSet(t *testing.T) {
	var s State
	for i, step := range []struct {
		now, prev string
		changed   bool
	}{
		{"", "", false},               // healthy, as it was
		{"refused", "", true},         // a failure starts
		{"refused", "refused", false}, // and persists
		{"timeout", "refused", true},  // turns into another
		{"", "timeout", true},         // recovers
		{"", "", false},               // stays healthy
	} {
		prev, changed := s.Set(step.now)
		if prev != step.prev || changed != step.changed {
			t.Errorf("step %d: Set(%q) = %q, %v; want %q, %v", i, step.now, prev, changed, step.prev, step.changed)
		}
	}
	var none *State // no memory: every failure is news, health never is
	if _, changed := none.Set("refused"); !changed {
		t.Error("nil state: a failure is not a change")
	}
	if _, changed := none.Set(""); changed {
		t.Error("nil state: health is a change")
	}
}
