package capacity

import (
	"math"
	"time"
)

// Sizes of the learn_mu learner.
const (
	// muWindow is how many decisions' samples a workload's learner keeps:
	// 12 h at a 15 s decision interval, enough to have seen the busy hours
	// that show where latency breaks.
	muWindow = 2880
	// muBin is LearnMu's bin: the median latency of 20 decisions (5 min at
	// 15 s) decides whether a throughput is within the SLO. It is also the
	// fewest new samples between two fits, and twice it the fewest for a
	// first one.
	muBin = 20
)

// muLearner keeps a workload's bounded window of (throughput per serving
// replica, latency percentile) samples from the live signals of each
// decision, and the per-replica capacity LearnMu finds in them.
type muLearner struct {
	samples []MuSample // ring of at most muWindow, oldest at next once full
	next    int
	fresh   int // samples added since the last fit
	mu      float64
	// What the last fit was made for: a reload that changes the SLO or the
	// configured mu refits at once.
	slo   time.Duration
	cfgMu float64
}

// observe records the sample of sig, if it has one: a positive rate and
// latency, and a known count of serving replicas (Serving, else the tiers'
// ready replicas).
func (l *muLearner) observe(sig Signals) {
	replicas := sig.Serving
	if replicas <= 0 {
		replicas = sig.OnDemand.Ready + sig.Spot.Ready
	}
	rate := sig.Rate
	if replicas <= 0 || !(rate > 0) || math.IsInf(rate, 0) || sig.Latency <= 0 {
		return
	}
	x := MuSample{Throughput: rate / float64(replicas), Latency: sig.Latency}
	if len(l.samples) < muWindow {
		l.samples = append(l.samples, x)
	} else {
		l.samples[l.next] = x
		l.next = (l.next + 1) % muWindow
	}
	l.fresh++
}

// learned returns the per-replica capacity to plan with, or 0 to keep the
// configured mu: until there are enough samples, and while the SLO held at
// every throughput seen below the configured mu (a lower bound below it
// says nothing; planning with it would only add replicas, which keep the
// throughput per replica low, so it would never be let go). Once some
// throughput missed the SLO, the learned value is the capacity measured,
// higher or lower than the configured one. It refits once per muBin new
// samples (the bins barely move in between), or when the policy changed.
func (l *muLearner) learned(w *Workload) float64 {
	if l.fresh >= muBin || l.slo != w.LatencySLO || l.cfgMu != w.Mu {
		l.fresh, l.slo, l.cfgMu = 0, w.LatencySLO, w.Mu
		mu, saturated, ok := learnMu(l.samples, w.LatencySLO, muBin)
		l.mu = 0
		if ok && (saturated || mu > w.Mu) {
			l.mu = mu
		}
	}
	return l.mu
}
