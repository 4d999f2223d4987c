package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// WriteDecisions writes decisions.csv: `timestamp,desired_on_demand,desired_spot`,
// a row per decision time, timestamps in unix seconds.
func WriteDecisions(w io.Writer, ds []Decision) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	bw.WriteString("timestamp,desired_on_demand,desired_spot\n")
	var buf []byte
	for _, d := range ds {
		buf = strconv.AppendInt(buf[:0], d.Time.Unix(), 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(d.OnDemand), 10)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, int64(d.Spot), 10)
		buf = append(buf, '\n')
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("decisions.csv: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("decisions.csv: %w", err)
	}
	return nil
}

// ConfigJSON is Config in summary.json: durations in seconds.
type ConfigJSON struct {
	StepSeconds      float64 `json:"step_seconds"`
	IntervalSeconds  float64 `json:"interval_seconds"`
	Mu               float64 `json:"mu"`
	ColdStartSeconds float64 `json:"cold_start_seconds"`
	QueueSLOSeconds  float64 `json:"queue_slo_seconds"`
	TimeoutSeconds   float64 `json:"timeout_seconds"`
	PriceOnDemand    float64 `json:"price_on_demand_dollars_per_hour"`
	PriceSpot        float64 `json:"price_spot_dollars_per_hour"`
	NoticeSeconds    float64 `json:"notice_seconds"`
}

// JSON returns c with durations in seconds.
func (c Config) JSON() ConfigJSON {
	return ConfigJSON{
		StepSeconds:      c.Step.Seconds(),
		IntervalSeconds:  c.Interval.Seconds(),
		Mu:               c.Mu,
		ColdStartSeconds: c.ColdStart.Seconds(),
		QueueSLOSeconds:  c.QueueSLO.Seconds(),
		TimeoutSeconds:   c.Timeout.Seconds(),
		PriceOnDemand:    c.PriceOnDemand,
		PriceSpot:        c.PriceSpot,
		NoticeSeconds:    c.Notice.Seconds(),
	}
}

// SummaryFile is summary.json: the policy's summary at the top level, the
// scenario, and each baseline's summary under baselines.<name>.
type SummaryFile struct {
	Summary
	Trace     string     `json:"trace"`
	Scale     float64    `json:"scale"`
	Start     time.Time  `json:"start"`
	End       time.Time  `json:"end"`
	SpotPools []string   `json:"spot_pools"`
	Config    ConfigJSON `json:"config"`
	// PolicyFile and Workload say which policy was run (set by the caller).
	PolicyFile string             `json:"policy_file,omitempty"`
	Workload   string             `json:"workload,omitempty"`
	Baselines  map[string]Summary `json:"baselines"`
}

// NewSummaryFile assembles summary.json for a policy's result and its
// baselines' results.
func NewSummaryFile(sc *Scenario, policy *Result, baselines map[string]*Result) SummaryFile {
	f := SummaryFile{
		Summary:   policy.Summary,
		Trace:     sc.Trace.Name,
		Scale:     sc.Scale,
		Start:     sc.Trace.Start,
		End:       sc.Trace.Start.Add(time.Duration(len(sc.arrivals)) * sc.Config.Step),
		SpotPools: []string{},
		Config:    sc.Config.JSON(),
		Baselines: map[string]Summary{},
	}
	for _, p := range sc.Pools {
		f.SpotPools = append(f.SpotPools, p.Name)
	}
	for name, r := range baselines {
		f.Baselines[name] = r.Summary
	}
	return f
}

// WriteSummary writes f as indented JSON.
func WriteSummary(w io.Writer, f SummaryFile) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("summary.json: %w", err)
	}
	return nil
}
