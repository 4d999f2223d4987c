package batchctl

import (
	"fmt"
	"math"
	"time"
)

// Prediction is what the queueing model expects of a setting.
type Prediction struct {
	// P99Seconds is the p99 of queue delay plus execution at the rate the
	// prediction was made for.
	P99Seconds float64 `json:"p99_seconds"`
	// SLOCapacityRPS is the highest arrival rate at which the predicted
	// p99 stays within the SLO budget: the throughput the setting can
	// sustain without breaking the SLO.
	SLOCapacityRPS float64 `json:"slo_capacity_rps"`
	// MeanBatch is the expected batch size at the rate.
	MeanBatch float64 `json:"mean_batch"`
	// GPUUtilization is the expected busy fraction at the rate (0–1).
	GPUUtilization float64 `json:"gpu_utilization"`
}

// Predict models a dynamic batcher with knobs k fed Poisson arrivals at
// lambda requests per second by a server with profile p: PredictClumped
// with clumps of 1.
func Predict(p Profile, lambda float64, k Knobs) Prediction {
	return PredictClumped(p, lambda, 1, k)
}

// PredictClumped models a dynamic batcher with knobs k fed lambda requests
// per second that arrive in clumps: clump is the mean number of requests
// that arrive at the same instant as a request, itself included (the
// size-biased mean clump size E[X²]/E[X]; 1 for Poisson arrivals, where no
// two requests arrive together). It returns the predicted p99 of queue
// delay plus execution (seconds), the mean batch size and the GPU busy
// fraction; SLOCapacityRPS is left to Capacity. The approximation
// (docs/batching.md has the derivation), with c = clump:
//
//   - free batch b: the larger of what arrives while a batch runs — the
//     fixed point b = λ·(α + β·b), i.e. λα/(1 − λβ) — and what the delay
//     collects on top of the request's own clump, c + λ·D; the batch
//     formed is m = min(b, B);
//   - a request waits for the collection window min(D, (B−c)/λ) or the
//     batch ahead of it, t(m), whichever is longer (only the window if
//     its batch is its own clump and fewer than 1 % of clumps find the
//     server busy), then runs for the p99 execution time of its batch;
//   - clumps make the count of requests arriving during a batch
//     overdispersed (compound Poisson: variance c·b instead of b): the
//     batch the p99 request runs in is larger than the Poisson model's
//     by z·(√(c·(b−1)) − √(b−1)) requests — but never larger than B: a
//     cap splits a pile-up so that its head still meets the SLO;
//   - when the p99 batch of the smooth (Poisson) part, b + z·√(b−1),
//     exceeds B, the cap binds: the p99 request misses a full batch and
//     waits one more, t(B), plus a heavy-traffic term
//     t(B)·ρ/(1−ρ)·ln(100)/B for full batches queueing behind each other,
//     ρ = λ·t(B)/B; ρ ≥ 1 is unstable (infinite).
//
// With c = 1 every term is the Poisson model's.
func PredictClumped(p Profile, lambda, clump float64, k Knobs) Prediction {
	c := math.Max(clump, 1)
	B := float64(max(k.MaxBatchSize, 1))
	D := k.MaxQueueDelay.Seconds()
	tB := p.Exec(B)
	if lambda <= 0 {
		// A lone clump: it waits the delay unless it fills the batch, and
		// runs as one batch of up to B.
		m := math.Min(c, B)
		return Prediction{MeanBatch: m, P99Seconds: D*boolf(B > m) + p.ExecP99(m)}
	}
	b := freeBatch(p, lambda, c, D, B)
	m := math.Min(b, B)
	pr := Prediction{MeanBatch: m, GPUUtilization: math.Min(1, lambda*p.Exec(m)/m)}
	rho := lambda * tB / B
	if rho >= 1 {
		pr.P99Seconds = math.Inf(1)
		return pr
	}
	collect := 0.0
	if B > c {
		collect = math.Min(D, (B-c)/lambda)
	}
	wait := math.Max(collect, p.Exec(m))
	if m <= c && lambda/c*p.Exec(c) < 0.01 {
		wait = collect // fewer than 1 % of clumps find the server busy
	}
	queue := 0.0
	if binds(p, lambda, c, D, B) {
		// The cap binds: the p99 request misses a full batch, and full
		// batches queue behind each other.
		queue = tB + tB*rho/(1-rho)*math.Log(100)/B
	}
	own := m + z99*(math.Sqrt(c*(b-1))-math.Sqrt(b-1))
	pr.P99Seconds = wait + queue + p.ExecP99(math.Min(own, B))
	return pr
}

// freeBatch is the batch that forms without a cap: the fixed point
// λα/(1 − λβ) or, if larger, the request's own clump plus what the delay
// collects (infinite when λβ ≥ 1).
func freeBatch(p Profile, lambda, c, D, B float64) float64 {
	b := math.Inf(1)
	if lambda*p.Beta < 1 {
		b = lambda * p.Alpha / (1 - lambda*p.Beta)
	}
	return math.Max(math.Max(b, c+lambda*D*boolf(B > 1)), 1)
}

// binds reports whether the p99 batch of the smooth part, b + z·√(b−1), at
// lambda exceeds the cap B (the free batch b as in PredictClumped).
func binds(p Profile, lambda, c, D, B float64) bool {
	b := freeBatch(p, lambda, c, D, B)
	return b+z99*math.Sqrt(b-1) > B
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Capacity is the highest arrival rate (requests/s) at which Predict's p99
// for k stays within budget seconds; zero when even a lone request misses
// it. Found by bisection to 0.1 %.
func Capacity(p Profile, k Knobs, budget float64) float64 {
	return CapacityClumped(p, k, 1, budget)
}

// CapacityClumped is Capacity for arrivals in clumps (PredictClumped).
func CapacityClumped(p Profile, k Knobs, clump, budget float64) float64 {
	if PredictClumped(p, 1e-9, clump, k).P99Seconds > budget {
		return 0
	}
	B := float64(max(k.MaxBatchSize, 1))
	lo, hi := 0.0, B/p.Exec(B) // beyond full batches back to back the queue is unstable
	for hi-lo > 1e-3*hi {
		mid := (lo + hi) / 2
		if PredictClumped(p, mid, clump, k).P99Seconds <= budget {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Bounds limit the knobs the controller may choose.
type Bounds struct {
	// MaxBatchSize is the largest batch the model allows (Triton's
	// max_batch_size in the model's own config).
	MaxBatchSize int
	// Delays are the queue delays considered, ascending.
	Delays []time.Duration
}

// DefaultDelays is the queue-delay grid considered by default.
func DefaultDelays() []time.Duration {
	return []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
		10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond}
}

// Choice is the best setting for a profile at a rate, and why.
type Choice struct {
	Knobs      Knobs
	Prediction Prediction
	// Feasible is false when the arrival rate is beyond what any setting
	// sustains within the SLO: the server is overloaded whatever the
	// knobs, and the choice is the largest batch the model allows, which
	// has the most raw throughput and so ends the overload soonest.
	Feasible bool
	Reason   string
}

// capacityTie is how close two SLO capacities must be to count as equal:
// then the smaller batch (less exposed to surges) or the more efficient
// delay wins.
const capacityTie = 0.002

// Choose picks the knobs that maximise throughput within the SLO: the
// batch size with the highest SLO capacity (the smallest one within 0.2 %
// of it, since a larger cap only lengthens the batches a surge forms), then
// the queue delay that lowers predicted GPU utilisation the most (larger,
// more efficient batches) while the p99 at lambda stays within the budget
// slo·(1 − margin) and the SLO capacity stays within 1 % of the best.
// lambda is the higher of the current and the forecast arrival rate.
func Choose(p Profile, lambda float64, slo time.Duration, margin float64, bounds Bounds) Choice {
	return ChooseClumped(p, lambda, 1, slo, margin, bounds)
}

// ChooseClumped is Choose for arrivals in clumps of mean size clump (as in
// PredictClumped).
func ChooseClumped(p Profile, lambda, clump float64, slo time.Duration, margin float64, bounds Bounds) Choice {
	budget := slo.Seconds() * (1 - margin)
	maxB := max(bounds.MaxBatchSize, 1)
	capOf := func(k Knobs) float64 { return CapacityClumped(p, k, clump, budget) }
	var bestB int
	var bestCap float64
	if clump <= 1 {
		// With Poisson arrivals a larger cap never lowers the SLO
		// capacity in Predict (it binds later, and full batches queue
		// less), so the most capacity is the model's largest batch's,
		// and the smallest batch within the tie of it is found by binary
		// search.
		capMax := capOf(Knobs{MaxBatchSize: maxB})
		lo, hi := 1, maxB
		for lo < hi {
			mid := (lo + hi) / 2
			if capOf(Knobs{MaxBatchSize: mid}) >= capMax*(1-capacityTie) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		bestB = lo
		bestCap = capOf(Knobs{MaxBatchSize: bestB})
	} else {
		// With clumps a cap below the largest can have the most capacity
		// (it bounds the batch a pile-up forms), so every cap is tried.
		// The p99 grows with the rate, so a cap whose p99 at the best
		// capacity so far is over budget cannot beat it: one prediction
		// rules it out, and only the others are bisected.
		meets := func(b int, lambda float64) bool {
			return PredictClumped(p, lambda, clump, Knobs{MaxBatchSize: b}).P99Seconds <= budget
		}
		capMax := capOf(Knobs{MaxBatchSize: maxB})
		for b := 1; b < maxB; b++ {
			if meets(b, capMax) {
				capMax = math.Max(capMax, capOf(Knobs{MaxBatchSize: b}))
			}
		}
		bestB = maxB
		for b := 1; b <= maxB; b++ {
			if meets(b, capMax*(1-capacityTie)) {
				bestB = b
				break
			}
		}
		bestCap = capOf(Knobs{MaxBatchSize: bestB})
	}
	base := Knobs{MaxBatchSize: bestB}
	best := Choice{Knobs: base, Prediction: PredictClumped(p, lambda, clump, base)}
	best.Prediction.SLOCapacityRPS = bestCap
	if bestCap <= 0 {
		best.Reason = "the SLO is below the execution time of a lone request; batch 1, no delay"
		best.Knobs = Knobs{MaxBatchSize: 1}
		best.Prediction = PredictClumped(p, lambda, clump, best.Knobs)
		return best
	}
	if best.Prediction.P99Seconds > budget {
		// No setting meets the SLO at this rate: what matters now is
		// ending the overload, so take every request the model allows
		// in a batch (the most raw throughput), with no delay.
		k := Knobs{MaxBatchSize: maxB}
		best = Choice{Knobs: k, Prediction: PredictClumped(p, lambda, clump, k)}
		best.Prediction.SLOCapacityRPS = capOf(k)
		best.Reason = "overload: the arrival rate exceeds what any setting serves within the SLO; the largest batches drain it fastest"
		return best
	}
	best.Feasible = true
	clumpNote := ""
	if clump > 1.05 {
		clumpNote = fmt.Sprintf("; requests arrive in clumps (mean %.1f at an instant): the cap splits a pile-up", clump)
	}
	best.Reason = "most throughput within the SLO" + clumpNote
	if bestB == 1 {
		return best
	}
	for _, d := range bounds.Delays {
		if d <= 0 || d.Seconds() >= budget {
			continue
		}
		k := Knobs{MaxBatchSize: bestB, MaxQueueDelay: d}
		pr := PredictClumped(p, lambda, clump, k)
		if pr.P99Seconds > budget || pr.GPUUtilization >= best.Prediction.GPUUtilization*(1-0.01) {
			continue
		}
		c := capOf(k)
		if c < bestCap*0.99 {
			continue
		}
		pr.SLOCapacityRPS = c
		best = Choice{Knobs: k, Prediction: pr, Feasible: true,
			Reason: "most throughput within the SLO; queue delay for larger, more efficient batches"}
		best.Reason += clumpNote
	}
	return best
}
