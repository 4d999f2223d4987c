// Package edgelog remembers the last state of something read again and
// again (a source that can fail, the set of exporters that did not
// answer), so that its caller logs when the state changes — a failure
// when it starts or turns into another, the recovery once — rather than
// at every read.
package edgelog

import "sync"

// State is the last state recorded; "" is healthy. The zero value is
// healthy; a nil *State has no memory: every failure is a change.
type State struct {
	mu   sync.Mutex
	last string
}

// Set records now ("" for healthy) and returns the state it replaces and
// whether now differs from it.
func (s *State) Set(now string) (prev string, changed bool) {
	if s == nil {
		return "", now != ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, s.last = s.last, now
	return prev, now != prev
}
