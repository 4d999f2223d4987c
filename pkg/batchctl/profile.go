package batchctl

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat"
)

// z99 is the standard normal 0.99 quantile: the execution-time tail is
// modelled as the fitted mean plus z99 pooled standard deviations.
const z99 = 2.3263478740408408

// Profile is a model's execution time: a batch of b requests runs for
// Alpha + Beta·b seconds on average, with standard deviation Jitter.
type Profile struct {
	Alpha  float64 `json:"alpha_seconds"`
	Beta   float64 `json:"beta_seconds"`
	Jitter float64 `json:"jitter_seconds"`
	// Batches is the discounted number of batches behind the fit; zero for
	// a profile that was given, not learned.
	Batches float64 `json:"batches,omitempty"`
	// MaxObservedBatch is the largest batch size seen: the fit is trusted
	// up to a margin above it, and probed beyond.
	MaxObservedBatch int `json:"max_observed_batch,omitempty"`
	// Identified is false when the observed batch sizes were too uniform
	// to tell alpha from beta: the fit then went through the origin.
	Identified bool `json:"identified"`
}

// Exec is the mean execution time of a batch of b requests.
func (p Profile) Exec(b float64) float64 { return p.Alpha + p.Beta*b }

// ExecP99 is the 0.99 quantile of the execution time of a batch of b.
func (p Profile) ExecP99(b float64) float64 { return p.Exec(b) + z99*p.Jitter }

// Validate rejects a profile that cannot describe a server.
func (p Profile) Validate() error {
	if p.Alpha < 0 || p.Beta < 0 || p.Jitter < 0 || p.Alpha+p.Beta <= 0 ||
		math.IsNaN(p.Alpha+p.Beta+p.Jitter) || math.IsInf(p.Alpha+p.Beta+p.Jitter, 0) {
		return fmt.Errorf("profile alpha=%g beta=%g jitter=%g: need alpha, beta, jitter ≥ 0 and alpha+beta > 0", p.Alpha, p.Beta, p.Jitter)
	}
	return nil
}

// FitterConfig tunes the online fit.
type FitterConfig struct {
	// HalfLife is the age at which a sample counts half: old conditions
	// fade so the fit follows a changed model or GPU.
	HalfLife time.Duration
	// MaxPoints bounds the memory and the cost of a fit.
	MaxPoints int
	// MinBatches is the discounted number of batches needed before the
	// fit is used at all.
	MinBatches float64
	// MinSpread is the weighted standard deviation of batch size below
	// which alpha and beta cannot be told apart: the fit then goes
	// through the origin (alpha 0), which overstates the time of larger
	// batches and so errs on the side of the SLO.
	MinSpread float64
}

// DefaultFitterConfig suits a controller stepped every few seconds.
func DefaultFitterConfig() FitterConfig {
	return FitterConfig{HalfLife: 10 * time.Minute, MaxPoints: 512, MinBatches: 20, MinSpread: 0.5}
}

type point struct {
	t     time.Time
	size  float64 // batch size (or average batch size)
	exec  float64 // mean execution time of those batches
	count float64 // batches behind the mean
}

// Fitter learns a Profile online by weighted least squares of mean batch
// execution time on batch size. Each point is a group of batches of one
// size (or one window's averages), weighted by its batch count and
// discounted exponentially by age. The jitter is the pooled spread: a
// group mean of n batches has variance σ²/n, so n·residual² estimates σ².
// Not safe for concurrent use; the Controller serialises access.
type Fitter struct {
	cfg    FitterConfig
	points []point // ring buffer, oldest at head once full
	head   int
	maxB   int
	// scratch for the regression, reused to keep a step allocation-free
	xs, ys, ws, ns []float64
}

// NewFitter returns an empty fitter.
func NewFitter(cfg FitterConfig) *Fitter {
	if cfg.MaxPoints <= 0 {
		cfg.MaxPoints = DefaultFitterConfig().MaxPoints
	}
	return &Fitter{cfg: cfg}
}

// Add records count batches of the given size that took exec seconds in
// total, observed at t.
func (f *Fitter) Add(t time.Time, size float64, count, execSeconds float64) {
	if count <= 0 || size < 1 || execSeconds <= 0 || math.IsNaN(execSeconds) {
		return
	}
	p := point{t: t, size: size, exec: execSeconds / count, count: count}
	if len(f.points) < f.cfg.MaxPoints {
		f.points = append(f.points, p)
	} else {
		f.points[f.head] = p
		f.head = (f.head + 1) % len(f.points)
	}
	if b := int(math.Ceil(size)); b > f.maxB {
		f.maxB = b
	}
}

// AddObservation feeds the batch statistics of o (or its averages when it
// has none).
func (f *Fitter) AddObservation(o Observation) {
	if len(o.BatchStats) > 0 {
		for _, s := range o.BatchStats {
			f.Add(o.Time, float64(s.Size), s.Count, s.ExecSeconds)
		}
		return
	}
	if o.Batches > 0 && o.Requests > 0 {
		f.Add(o.Time, o.Requests/o.Batches, o.Batches, o.ExecSeconds)
	}
}

// Fit returns the profile at time now, and false while there is too little
// data to trust.
func (f *Fitter) Fit(now time.Time) (Profile, bool) {
	f.xs, f.ys, f.ws, f.ns = f.xs[:0], f.ys[:0], f.ws[:0], f.ns[:0]
	var total float64
	lambda := math.Ln2 / f.cfg.HalfLife.Seconds()
	for _, p := range f.points {
		age := now.Sub(p.t).Seconds()
		if age < 0 {
			age = 0
		}
		w := p.count
		if f.cfg.HalfLife > 0 {
			w *= math.Exp(-lambda * age)
		}
		if w < 1e-9 {
			continue
		}
		f.xs, f.ys, f.ws, f.ns = append(f.xs, p.size), append(f.ys, p.exec), append(f.ws, w), append(f.ns, p.count)
		total += w
	}
	if total < f.cfg.MinBatches || len(f.xs) == 0 {
		return Profile{}, false
	}
	_, sd := stat.MeanStdDev(f.xs, f.ws)
	var alpha, beta float64
	origin := len(f.xs) < 3 || !(sd >= f.cfg.MinSpread)
	if !origin {
		alpha, beta = stat.LinearRegression(f.xs, f.ys, f.ws, false)
		// A negative intercept or slope is noise around a flat or
		// proportional profile; refit through the origin, conservatively.
		origin = alpha < 0 || beta <= 0
	}
	if origin {
		alpha, beta = 0, weightedRatio(f.ys, f.xs, f.ws)
	}
	jitter := pooledJitter(f.xs, f.ys, f.ws, f.ns, alpha, beta)
	return Profile{Alpha: alpha, Beta: beta, Jitter: jitter, Batches: total, MaxObservedBatch: f.maxB, Identified: !origin}, true
}

// weightedRatio is Σ w·y / Σ w·x: the slope through the origin that keeps
// the weighted means on the line.
func weightedRatio(ys, xs, ws []float64) float64 {
	var num, den float64
	for i := range xs {
		num += ws[i] * ys[i]
		den += ws[i] * xs[i]
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// pooledJitter estimates the per-batch standard deviation from group means.
// A group of n batches has a mean residual r with variance σ²/n, so n·r²
// estimates σ²; the estimates are averaged with the groups' discounts
// d = w/n, and scaled by G/(G−2) for the two fitted parameters.
func pooledJitter(xs, ys, ws, ns []float64, alpha, beta float64) float64 {
	g := float64(len(xs))
	if g <= 2 {
		return 0
	}
	var ss, sd float64
	for i, x := range xs {
		r := ys[i] - (alpha + beta*x)
		d := ws[i] / ns[i]
		ss += d * ns[i] * r * r
		sd += d
	}
	if sd == 0 {
		return 0
	}
	return math.Sqrt(ss / sd * g / (g - 2))
}
