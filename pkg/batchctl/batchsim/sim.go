package batchsim

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/infercast/infercast/pkg/batchctl"
)

// Policy sets the batcher's knobs. The simulator asks for the initial
// knobs, then hands the policy one Observation per window (what an exporter
// would have measured over it, nothing of the future) and uses the knobs
// it returns from then on.
type Policy interface {
	Initial() batchctl.Knobs
	Observe(o batchctl.Observation) batchctl.Knobs
}

// Static is a policy that never changes.
type Static batchctl.Knobs

func (s Static) Initial() batchctl.Knobs                     { return batchctl.Knobs(s) }
func (s Static) Observe(batchctl.Observation) batchctl.Knobs { return batchctl.Knobs(s) }

// observesNothing lets the simulator skip building observations for a
// policy that ignores them.
func (Static) observesNothing() {}

// Config is the simulated server.
type Config struct {
	// Profile is the true execution time: alpha + beta·b seconds plus
	// Gaussian jitter of standard deviation Jitter (cut at zero).
	Profile batchctl.Profile
	SLO     time.Duration
	// Window is how often the policy observes and may act.
	Window time.Duration
	Seed   uint64
	// Percentiles computes p50/p99 latency (skipped in goodput searches).
	Percentiles bool
}

// Result is one replay.
type Result struct {
	Requests int `json:"requests"`
	Met      int `json:"met"`
	// Rejected requests waited past the queue timeout and were turned
	// away: they count against attainment and not in the percentiles.
	Rejected       int     `json:"rejected"`
	SLOAttainment  float64 `json:"slo_attainment"`
	P50Seconds     float64 `json:"p50_seconds"`
	P99Seconds     float64 `json:"p99_seconds"`
	GPUBusySeconds float64 `json:"gpu_busy_seconds"`
	Batches        int     `json:"batches"`
	MeanBatch      float64 `json:"mean_batch"`
	// KnobChanges counts how often the policy changed the knobs.
	KnobChanges int `json:"knob_changes"`
}

// Run replays arrivals (seconds, ascending) through the batcher: requests
// queue in arrival order; when the server is free, a batch starts as soon
// as the queue holds max_batch_size requests or its oldest request has
// waited max_queue_delay, and takes up to max_batch_size requests; it runs
// alpha + beta·b (+ jitter). A request that has waited past the knobs'
// queue timeout (when set) when the batcher looks at the queue is rejected;
// every other request is served (the run continues until the queue
// drains).
func Run(arrivals []float64, pol Policy, cfg Config) (Result, error) {
	if cfg.Window <= 0 {
		return Result{}, errors.New("batchsim: window must be positive")
	}
	if err := cfg.Profile.Validate(); err != nil {
		return Result{}, err
	}
	n := len(arrivals)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6261746368)) // "batch"
	slo := cfg.SLO.Seconds()
	win := cfg.Window.Seconds()
	epoch := time.Unix(0, 0).UTC()

	knobs := sane(pol.Initial())
	var res Result
	var lat []float64
	if cfg.Percentiles {
		lat = make([]float64, 0, n)
	}
	w := newWindow()

	next := 0 // next arrival to enqueue
	head := 0 // oldest queued request; the queue is [head, next)
	t := 0.0
	if n > 0 {
		t = arrivals[0]
	}
	free := t       // when the server is next free
	tick := t + win // next observation
	if _, static := pol.(interface{ observesNothing() }); static {
		tick = math.Inf(1)
	}
	var inflight *batchRec

	for head < n || inflight != nil {
		for next < n && arrivals[next] <= t {
			// A clump: the requests that arrive at this same instant, all
			// enqueued now. The exporter's gateway counts each request's
			// clump size as it arrives (nothing of the future).
			j := next + 1
			for j < n && arrivals[j] == arrivals[next] {
				j++
			}
			size := float64(j - next)
			w.arrivals += size
			w.clumpSizes += size * size
			next = j
		}
		if inflight != nil && inflight.end <= t {
			w.add(inflight, arrivals, slo)
			inflight = nil
		}
		if t >= tick {
			w.window = win
			o := w.observation(epoch.Add(secs(tick)), cfg.Window)
			if nk := sane(pol.Observe(o)); nk != knobs {
				knobs = nk
				res.KnobChanges++
			}
			w.reset()
			tick += win
			continue
		}
		if to := knobs.QueueTimeout.Seconds(); to > 0 && inflight == nil {
			// Triton's queue policy: when the batcher looks at the queue,
			// requests that waited past the timeout are rejected (FIFO:
			// they are the oldest, at its head).
			for head < next && t-arrivals[head] > to {
				head++
				res.Rejected++
			}
		}
		queued := next - head
		if inflight == nil && queued > 0 &&
			(queued >= knobs.MaxBatchSize || t >= arrivals[head]+knobs.MaxQueueDelay.Seconds()) {
			b := min(queued, knobs.MaxBatchSize)
			exec := cfg.Profile.Exec(float64(b))
			if cfg.Profile.Jitter > 0 {
				exec = math.Max(exec+rng.NormFloat64()*cfg.Profile.Jitter, 0.1*exec)
			}
			inflight = &batchRec{start: t, end: t + exec, lo: head, hi: head + b, exec: exec}
			for i := head; i < head+b; i++ {
				l := inflight.end - arrivals[i]
				if l <= slo {
					res.Met++
				}
				if lat != nil {
					lat = append(lat, l)
				}
			}
			head += b
			free = inflight.end
			res.Batches++
			res.GPUBusySeconds += exec
			continue
		}
		// Advance to the next event.
		nt := tick
		if next < n {
			nt = math.Min(nt, arrivals[next])
		}
		if inflight != nil {
			nt = math.Min(nt, free)
		} else if queued > 0 {
			nt = math.Min(nt, arrivals[head]+knobs.MaxQueueDelay.Seconds())
		}
		t = nt
	}
	if !math.IsInf(tick, 1) && (w.requests > 0 || w.arrivals > 0) {
		// The last, partial window: the exporter's final scrape.
		pol.Observe(w.observation(epoch.Add(secs(tick)), cfg.Window))
	}
	res.Requests = n
	if n > 0 {
		res.SLOAttainment = float64(res.Met) / float64(n)
		if res.Batches > 0 {
			res.MeanBatch = float64(n-res.Rejected) / float64(res.Batches)
		}
	}
	if lat != nil && len(lat) > 0 {
		slices.Sort(lat)
		res.P50Seconds = quantile(lat, 0.50)
		res.P99Seconds = quantile(lat, 0.99)
	}
	return res, nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// sane keeps a policy's knobs within what a batcher accepts.
func sane(k batchctl.Knobs) batchctl.Knobs {
	k.MaxBatchSize = max(k.MaxBatchSize, 1)
	k.MaxQueueDelay = max(k.MaxQueueDelay, 0)
	return k
}

// quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

type batchRec struct {
	start, end, exec float64
	lo, hi           int
}

// window accumulates what an exporter sees between two observations.
type window struct {
	window     float64
	arrivals   float64
	clumpSizes float64 // Σ over arrivals of their clump's size
	requests   float64
	batches    float64
	exec       float64
	queue      float64
	lat        []float64
	stats      map[int]*batchctl.BatchStat
	statsOrder []int
}

func newWindow() *window { return &window{stats: map[int]*batchctl.BatchStat{}} }

func (w *window) reset() {
	w.arrivals, w.clumpSizes, w.requests, w.batches, w.exec, w.queue = 0, 0, 0, 0, 0, 0
	w.lat = w.lat[:0]
	clear(w.stats)
	w.statsOrder = w.statsOrder[:0]
}

func (w *window) add(b *batchRec, arrivals []float64, slo float64) {
	size := b.hi - b.lo
	w.batches++
	w.requests += float64(size)
	w.exec += b.exec
	for i := b.lo; i < b.hi; i++ {
		w.queue += b.start - arrivals[i]
		w.lat = append(w.lat, b.end-arrivals[i])
	}
	s, ok := w.stats[size]
	if !ok {
		s = &batchctl.BatchStat{Size: size}
		w.stats[size] = s
		w.statsOrder = append(w.statsOrder, size)
	}
	s.Count++
	s.ExecSeconds += b.exec
}

func (w *window) observation(at time.Time, win time.Duration) batchctl.Observation {
	o := batchctl.Observation{Time: at, Window: win, Arrivals: w.arrivals, ClumpSizeSum: w.clumpSizes,
		Requests: w.requests, Batches: w.batches, ExecSeconds: w.exec,
		GPUUtilization: math.Min(1, w.exec/win.Seconds())}
	if w.requests > 0 {
		o.QueueSeconds = w.queue / w.requests
		slices.Sort(w.lat)
		o.LatencyP99Seconds = quantile(w.lat, 0.99)
	}
	for _, size := range w.statsOrder {
		o.BatchStats = append(o.BatchStats, *w.stats[size])
	}
	return o
}
