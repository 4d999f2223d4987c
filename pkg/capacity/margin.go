package capacity

import (
	"math"
	"sort"
	"time"
)

// SpotMargin is the smallest k such that, with n+k spot replicas each
// interrupted independently with probability p within the replacement
// window, at least n survive with probability ≥ target. ok is false when no
// k up to maxK reaches the target (p too high): the caller must not rely on
// spot for these n replicas.
func SpotMargin(n int, p, target float64, maxK int) (k int, ok bool) {
	if n <= 0 || p <= 0 {
		return 0, true
	}
	if p >= 1 {
		return maxK, false
	}
	for k = 0; k <= maxK; k++ {
		if survive(n+k, k, p) >= target {
			return k, true
		}
	}
	return maxK, false
}

// survive is P(at most k of m replicas are interrupted), each with
// probability p: the binomial CDF, summed in log space so that large m
// neither overflows nor underflows.
func survive(m, k int, p float64) float64 {
	lp, lq := math.Log(p), math.Log1p(-p)
	sum := 0.0
	for j := 0; j <= k && j <= m; j++ {
		lc := lgamma(m+1) - lgamma(j+1) - lgamma(m-j+1)
		sum += math.Exp(lc + float64(j)*lp + float64(m-j)*lq)
	}
	return math.Min(sum, 1)
}

func lgamma(n int) float64 {
	v, _ := math.Lgamma(float64(n))
	return v
}

// DomainMargin is the smallest k such that losing the largest failure
// domain still leaves n of n+k spot replicas, when they spread evenly over
// domains (as a topology spread constraint places them): k ≥ ⌈(n+k)/d⌉.
// ok is false with one domain: no margin survives losing it.
func DomainMargin(n, domains int) (k int, ok bool) {
	if n <= 0 {
		return 0, true
	}
	if domains <= 1 {
		return 0, false
	}
	// k ≥ (n+k)/d  ⇔  k ≥ n/(d-1); then round up until the ceiling holds.
	k = (n + domains - 2) / (domains - 1)
	for k < (n+k+domains-1)/domains {
		k++
	}
	return k, true
}

// InterruptionProbability is the probability that a replica with
// interruption rate ratePerHour is interrupted within the replacement
// window: the time an interruption leaves capacity missing, from the
// termination until a replacement launched at the next decision after the
// notice is ready (cold start + interval − notice). Zero when the notice
// outlasts the replacement.
func InterruptionProbability(ratePerHour float64, coldStart, interval, notice time.Duration) float64 {
	w := coldStart + interval - notice
	if w <= 0 || ratePerHour <= 0 {
		return 0
	}
	return -math.Expm1(-ratePerHour * w.Hours())
}

// rateEstimate is a Poisson rate learned from events over exposure, with a
// prior worth priorHours of exposure at the prior rate, and exponential
// forgetting so that a market that changes is followed.
type rateEstimate struct {
	events, hours float64
}

// forgetting is the time constant over which old observations fade.
const forgetting = 7 * 24 * time.Hour

func (r *rateEstimate) observe(events, exposureHours float64, elapsed time.Duration) {
	f := math.Exp(-elapsed.Hours() / forgetting.Hours())
	r.events = r.events*f + events
	r.hours = r.hours*f + exposureHours
}

func (r rateEstimate) rate(prior, priorHours float64) float64 {
	return (r.events + prior*priorHours) / (r.hours + priorHours)
}

// MuSample is one observation of a replica: its throughput (requests/s)
// and the latency percentile over the same window.
type MuSample struct {
	Throughput float64
	Latency    time.Duration
}

// LearnMu finds the highest per-replica throughput at which the latency
// percentile stays under slo: the samples are sorted by throughput and cut
// into bins of binSize; walking up, a bin is good when its median latency
// is within the SLO; mu is the highest throughput of the last good bin
// below the first bad one. It never extrapolates beyond what was seen. ok
// is false with fewer than two bins of samples or when even the lowest bin
// misses the SLO.
func LearnMu(samples []MuSample, slo time.Duration, binSize int) (mu float64, ok bool) {
	mu, _, ok = learnMu(samples, slo, binSize)
	return mu, ok
}

// learnMu is LearnMu, and says whether a bin above mu missed the SLO
// (saturated): then mu is the capacity measured; otherwise only a lower
// bound of it (the SLO held at every throughput seen).
func learnMu(samples []MuSample, slo time.Duration, binSize int) (mu float64, saturated, ok bool) {
	if binSize < 1 {
		binSize = 1
	}
	s := make([]MuSample, 0, len(samples))
	for _, x := range samples {
		if x.Throughput > 0 && !math.IsInf(x.Throughput, 0) && x.Latency > 0 {
			s = append(s, x)
		}
	}
	if len(s) < 2*binSize {
		return 0, false, false
	}
	sort.Slice(s, func(i, j int) bool { return s[i].Throughput < s[j].Throughput })
	lat := make([]time.Duration, 0, binSize)
	for i := 0; i+binSize <= len(s); i += binSize {
		bin := s[i : i+binSize]
		if i+2*binSize > len(s) {
			bin = s[i:] // the last bin takes the remainder
		}
		lat = lat[:0]
		for _, x := range bin {
			lat = append(lat, x.Latency)
		}
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		if lat[len(lat)/2] > slo {
			return mu, true, mu > 0
		}
		mu = bin[len(bin)-1].Throughput
		if len(bin) > binSize {
			break
		}
	}
	return mu, false, true
}
