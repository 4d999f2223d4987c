package fleet

import (
	"math"
	"math/rand/v2"
)

// substep is the resolution of the queueing model. It is small against the
// service times of every dialect's default so that a request admitted in one
// substep and finished in the next is not visibly early, and large enough
// that a minute of simulated time stays cheap.
const substep = 0.05 // seconds

// Token lengths are drawn uniformly around these means; service time scales
// with the output length so that latency varies request to request.
const (
	meanPrompt = 512
	meanOutput = 256
)

// request is one simulated request; times are seconds since the fleet's
// start.
type request struct {
	arrived, start, finish float64
	prefill                float64
	prompt, output         int
	replica                int
}

// model is the queueing state of one server: an FIFO queue in front of
// `replicas` replicas, each running up to maxBatch requests at once.
//
// Per-replica service: a request running in a batch of b takes
//
//	S(b) = S0 + (Sfull-S0) * (b-1)/(maxBatch-1),   Sfull = maxBatch/mu, S0 = Sfull/2
//
// so a full batch finishes mu requests/s per replica, and a lone request is
// twice as fast as one in a full batch: batching trades latency for
// throughput as real continuous-batching servers do.
type model struct {
	rate       float64 // arrivals per second
	replicas   int
	mu         float64
	maxBatch   int
	maxQueue   int
	rng        *rand.Rand
	queue      []*request
	running    []*request
	perReplica []int
}

func (m *model) serviceTime(batch int) float64 {
	full := float64(m.maxBatch) / m.mu
	s0 := full / 2
	if m.maxBatch <= 1 {
		return full
	}
	return s0 + (full-s0)*float64(batch-1)/float64(m.maxBatch-1)
}

// poisson draws a Poisson variate: Knuth's method for small means, a normal
// approximation above (exact enough for load, and O(1)).
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean < 30 {
		l := math.Exp(-mean)
		k, p := 0, 1.0
		for {
			p *= r.Float64()
			if p <= l {
				return k
			}
			k++
		}
	}
	v := math.Round(mean + math.Sqrt(mean)*r.NormFloat64())
	if v < 0 {
		return 0
	}
	return int(v)
}

// stepEvents is what one substep produced, for the dialect recorders.
type stepEvents struct {
	finished []*request
	rejected int
	// batches holds, per replica, the size of the batch formed by this
	// substep's admissions (0 when none): one "execution" for Triton.
	batches []int
}

// step advances the model from t to t+h.
func (m *model) step(t, h float64) stepEvents {
	var ev stepEvents
	end := t + h

	// Arrivals, spread uniformly (sorted) over [t, end).
	k := poisson(m.rng, m.rate*h)
	for i := range k {
		at := t + h*(float64(i)+m.rng.Float64())/float64(k)
		if m.maxQueue > 0 && len(m.queue) >= m.maxQueue {
			ev.rejected++
			continue
		}
		m.queue = append(m.queue, &request{
			arrived: at,
			prompt:  meanPrompt/4 + m.rng.IntN(meanPrompt*3/2),
			output:  meanOutput/4 + m.rng.IntN(meanOutput*3/2),
		})
	}

	// Completions.
	kept := m.running[:0]
	for _, r := range m.running {
		if r.finish <= end {
			ev.finished = append(ev.finished, r)
			if r.replica < len(m.perReplica) {
				m.perReplica[r.replica]--
			}
			continue
		}
		kept = append(kept, r)
	}
	m.running = kept

	// Admissions into free batch slots, least-loaded replica first.
	if len(m.perReplica) < m.replicas {
		m.perReplica = append(m.perReplica, make([]int, m.replicas-len(m.perReplica))...)
	}
	ev.batches = make([]int, m.replicas)
	for len(m.queue) > 0 {
		best := -1
		for i := 0; i < m.replicas; i++ {
			if m.perReplica[i] < m.maxBatch && (best < 0 || m.perReplica[i] < m.perReplica[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		r := m.queue[0]
		m.queue[0] = nil
		m.queue = m.queue[1:]
		m.perReplica[best]++
		ev.batches[best]++
		r.replica = best
		// The scheduler admits at the end of its iteration: a request
		// waits at least until then, like a dynamic batcher's delay.
		r.start = end
		s := m.serviceTime(m.perReplica[best]) * float64(r.output) / meanOutput
		s *= 0.9 + 0.2*m.rng.Float64()
		r.prefill = s * 0.1 * float64(r.prompt) / meanPrompt
		r.finish = r.start + s
		m.running = append(m.running, r)
	}
	return ev
}

// kvUsage is the fraction of the replicas' KV cache the running requests
// hold: tokens in flight against room for maxBatch average requests.
func (m *model) kvUsage() float64 {
	if m.replicas == 0 {
		return 0
	}
	tokens := 0
	for _, r := range m.running {
		tokens += r.prompt + r.output
	}
	u := float64(tokens) / float64(m.replicas*m.maxBatch*(meanPrompt+meanOutput)) * 0.9
	return math.Min(u, 1)
}

// reset drops the queue and in-flight requests (a restarted server loses
// them).
func (m *model) reset() {
	m.queue = nil
	m.running = nil
	m.perReplica = make([]int, m.replicas)
}
