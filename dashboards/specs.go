package dashboards

import (
	"math"
	"strconv"
)

// Selectors shared by the queries. Every infercast series carries
// `namespace`, the namespace its exporter or adapter was scraped in
// (Prometheus's target label; the chart installs both in the release
// namespace): the installation, not the models' namespaces, which the
// per-model series do not carry. `model` is the exporter's and the batch
// controller's label, `workload` the planner's and the forecaster's; only
// the SLO series carry both (from the objectives).
const (
	selNS            = `namespace=~"$namespace"`
	selModel         = `namespace=~"$namespace", model=~"$model"`
	selWorkload      = `namespace=~"$namespace", workload=~"$workload"`
	selModelWorkload = `namespace=~"$namespace", model=~"$model", workload=~"$workload"`
)

// nsVar lists the namespaces of metric, the series the dashboard's panels
// read, so that every value listed filters them.
func nsVar(metric string) Variable {
	return Variable{Name: "namespace", Label: "infercast namespace",
		Description: "Namespace infercast's exporter or adapter runs in (the namespace label Prometheus gives its series); not the models' namespaces.",
		Query:       `label_values(` + metric + `, namespace)`}
}

// modelVar lists the models of metric in the selected namespaces.
func modelVar(metric string) Variable {
	return Variable{Name: "model", Label: "Model", Description: "Model served (the exporter's model label).",
		Query: `label_values(` + metric + `{namespace=~"$namespace"}, model)`}
}

// workloadVar lists the workloads of metric in the selected namespaces.
func workloadVar(metric string) Variable {
	return Variable{Name: "workload", Label: "Workload", Description: "Workload of the planner's policy.",
		Query: `label_values(` + metric + `{namespace=~"$namespace"}, workload)`}
}

// All returns every dashboard, in the order of the preview.
func All() []Spec {
	return []Spec{cost(), latency(), capacity(), spot(), batching(), gpus()}
}

func cost() Spec {
	return Spec{
		File: "infercast-cost", UID: "infercast-cost", Title: "infercast / Cost",
		Description:  "What serving costs: spend per request and per 1,000 requests, $/hour by tier and model, the spot share and the savings against running everything on demand, and the burn of the budget.",
		Tags:         []string{"cost"},
		Variables:    []Variable{nsVar("infercast_spend_dollars_per_hour"), modelVar("infercast_spend_dollars_per_hour")},
		VariablesWhy: "`$model` filters every panel. No `$workload`: spend is exported per model and team, and the model-to-workload mapping exists only in the SLO objectives, so a workload variable would hide every model without an objective.",
		Rows: []Row{
			{Title: "Spend", Panels: []Panel{
				{Kind: Stat, Title: "Spend rate", Unit: "currencyUSD", Width: 6, Height: 5,
					Description: "Dollars per hour now, all models and tiers of the selection: GPU node prices from the price catalogue times the share of each node a model uses.",
					Queries:     []Query{{Expr: `sum(infercast_spend_dollars_per_hour{` + selModel + `})`, Legend: "$/hour"}}},
				{Kind: Stat, Title: "Cost per 1,000 requests", Unit: "currencyUSD", Width: 6, Height: 5,
					Description: "The spend rate over the request rate of the last 5 minutes, per 1,000 requests: the number to compare between models, servers and batch settings.",
					Queries:     []Query{{Expr: `1000 * sum(infercast_spend_dollars_per_hour{` + selModel + `}) / 3600 / sum(infercast_model_requests_per_second{` + selModel + `, window="5m"})`, Legend: "$ / 1k requests"}}},
				{Kind: Stat, Title: "Spot share", Unit: "percentunit", Width: 6, Height: 5, Min: ptr(0), Max: ptr(1),
					Description: "Share of spend on spot capacity. The planner keeps an on-demand core and puts the rest on spot with a margin priced from interruption risk.",
					Queries:     []Query{{Expr: `sum(infercast_spend_dollars_per_hour{` + selModel + `, tier="spot"}) / sum(infercast_spend_dollars_per_hour{` + selModel + `})`, Legend: "spot share"}}},
				{Kind: Stat, Title: "Savings against all on-demand", Unit: "currencyUSD", Width: 6, Height: 5,
					Description: "Dollars per hour saved now against running the spot GPUs on demand: each model's on-demand $/GPU-hour times its spot GPUs, minus its spot spend. Models without an on-demand replica to price from are left out.",
					Queries:     []Query{{Expr: `sum(sum by (namespace, team, model) (infercast_spend_dollars_per_hour{` + selModel + `, tier="on-demand"}) / sum by (namespace, team, model) (infercast_spend_gpus{` + selModel + `, tier="on-demand"}) * sum by (namespace, team, model) (infercast_spend_gpus{` + selModel + `, tier="spot"}) - sum by (namespace, team, model) (infercast_spend_dollars_per_hour{` + selModel + `, tier="spot"}))`, Legend: "$/hour saved"}}},
			}},
			{Title: "By tier and model", Panels: []Panel{
				{Title: "$/hour by tier", Unit: "currencyUSD", Width: 12, Stacked: true,
					Description: "Spend rate by capacity tier (on-demand, spot), stacked.",
					Queries:     []Query{{Expr: `sum by (tier) (infercast_spend_dollars_per_hour{` + selModel + `})`, Legend: "{{tier}}"}}},
				{Title: "$/hour by model", Unit: "currencyUSD", Width: 12, Stacked: true,
					Description: "Spend rate by model, stacked: showback per model (and team, through the team label).",
					Queries:     []Query{{Expr: `sum by (model) (infercast_spend_dollars_per_hour{` + selModel + `})`, Legend: "{{model}}"}}},
				// Summed over every node's exporter before dividing: each
				// exporter's own per-1,000 figure covers its node's replicas
				// only, and the worst node's is not the model's.
				{Title: "Cost per 1,000 requests by model", Unit: "currencyUSD", Width: 24,
					Description: "Per model, across all its replicas and nodes: the spend rate over the request rate of the last 5 minutes, per 1,000 requests. Rises when replicas idle or batches run small.",
					Queries:     []Query{{Expr: `1000 * sum by (model) (infercast_spend_dollars_per_hour{` + selModel + `}) / 3600 / sum by (model) (infercast_model_requests_per_second{` + selModel + `, window="5m"})`, Legend: "{{model}}"}}},
			}},
			{Title: "Budget", Panels: []Panel{
				{Title: "Spend rate against budget", Unit: "currencyUSD", Width: 24,
					Description: "Spend rate by team against the team's budget (the chart's prometheusRule.budgets); the InfercastSpendOverBudget alert fires when the hourly average stays above it.",
					Queries: []Query{
						{Expr: `sum by (team) (infercast_spend_dollars_per_hour{` + selModel + `})`, Legend: "{{team}} spend"},
						{Expr: `max by (team) (infercast:budget_dollars_per_hour)`, Legend: "{{team}} budget"},
					}},
			}},
		},
	}
}

func latency() Spec {
	q := func(metric, quantile string) Query {
		return Query{Expr: `max by (model) (` + metric + `{` + selModel + `, window="1m", quantile="` + quantile + `"})`, Legend: "{{model}} " + percentile(quantile)}
	}
	return Spec{
		File: "infercast-latency", UID: "infercast-latency", Title: "infercast / Latency & SLO",
		Description:  "What users wait for: end-to-end latency percentiles against the SLO, time to first token and per output token, queue time, SLO attainment and the error budget left.",
		Tags:         []string{"latency", "slo"},
		Variables:    []Variable{nsVar("infercast_model_request_latency_seconds"), modelVar("infercast_model_request_latency_seconds"), workloadVar("infercast:slo_violation:bool")},
		VariablesWhy: "`$model` filters every panel; `$workload` filters the SLO panels (attainment, error budget, objective line), whose series carry the workload of the model's objective. The percentile panels are per model: the exporter's series carry no workload.",
		Rows: []Row{
			{Title: "Latency against the SLO", Panels: []Panel{
				{Title: "End-to-end latency percentiles", Unit: "s", Width: 12,
					Description: "p50, p90, p99 of request latency over a sliding 1-minute window, computed by the exporter from the servers' histogram deltas, against the model's latency objective (the chart's prometheusRule.objectives).",
					Queries: []Query{q("infercast_model_request_latency_seconds", "0.5"), q("infercast_model_request_latency_seconds", "0.9"), q("infercast_model_request_latency_seconds", "0.99"),
						{Expr: `max by (model) (infercast:objective_latency_seconds{model=~"$model", workload=~"$workload"})`, Legend: "{{model}} objective"}}},
				{Title: "SLO attainment", Unit: "percentunit", Width: 6, Kind: Stat, Min: ptr(0), Max: ptr(1),
					Description: "Share of the last 24 hours' minutes in which the 1-minute p99 latency stayed within the SLO (the SLI of the burn-rate alerts).",
					Queries:     []Query{{Expr: `1 - avg_over_time(infercast:slo_violation:bool{` + selModelWorkload + `}[1d])`, Legend: "{{model}}"}}},
				{Title: "Error budget left (30 days)", Unit: "percentunit", Width: 6, Kind: Stat, Max: ptr(1),
					Description: "Share of the 30-day error budget (1 - the objective's target) not yet spent; below 0 the SLO is missed for the month.",
					Queries:     []Query{{Expr: `1 - avg_over_time(infercast:slo_violation:bool{` + selModelWorkload + `}[30d]) / on (model, workload) group_left () infercast:slo_error_budget:ratio`, Legend: "{{model}}"}}},
			}},
			{Title: "Tokens", Panels: []Panel{
				{Title: "Time to first token", Unit: "s", Width: 12,
					Description: "p50 and p99 time to first token over 1 minute: what a streaming user feels first (prefill and queueing).",
					Queries:     []Query{q("infercast_model_time_to_first_token_seconds", "0.5"), q("infercast_model_time_to_first_token_seconds", "0.99")}},
				{Title: "Time per output token", Unit: "s", Width: 12,
					Description: "p50 and p99 inter-token latency over 1 minute: decode speed, which large batches slow down.",
					Queries:     []Query{q("infercast_model_time_per_output_token_seconds", "0.5"), q("infercast_model_time_per_output_token_seconds", "0.99")}},
			}},
			{Title: "Queueing", Panels: []Panel{
				{Title: "Queue time", Unit: "s", Width: 8,
					Description: "p99 and mean time requests wait in the server's queue before running.",
					Queries: []Query{q("infercast_model_queue_time_seconds", "0.99"),
						{Expr: `max by (model) (infercast_model_queue_time_mean_seconds{` + selModel + `, window="1m"})`, Legend: "{{model}} mean"}}},
				{Title: "Backlog and running", Unit: "short", Width: 8,
					Description: "Requests waiting (the backlog) and running, summed over each model's servers.",
					Queries: []Query{
						{Expr: `sum by (model) (infercast_model_requests_waiting{` + selModel + `})`, Legend: "{{model}} waiting"},
						{Expr: `sum by (model) (infercast_model_requests_running{` + selModel + `})`, Legend: "{{model}} running"}}},
				{Title: "Time to drain the backlog", Unit: "s", Width: 8,
					Description: "Backlog divided by current throughput, per server; rising means capacity is short of demand.",
					Queries:     []Query{{Expr: `max by (model) (infercast_model_queue_drain_seconds{` + selModel + `})`, Legend: "{{model}}"}}},
			}},
		},
	}
}

func capacity() Spec {
	return Spec{
		File: "infercast-capacity", UID: "infercast-capacity", Title: "infercast / Capacity",
		Description:  "What the planner decided and why: demand against the forecast, the forecast band, desired and ready replicas by tier and what is not ready yet, the spot margin, the planner's mode and how wrong the forecasts were.",
		Tags:         []string{"capacity", "forecast"},
		Variables:    []Variable{nsVar("infercast_plan_target_replicas"), workloadVar("infercast_plan_target_replicas")},
		VariablesWhy: "`$workload` filters every panel: all come from the planner and the forecaster, per workload. No `$model`: the replicas are the planner's own view per workload (`infercast_plan_observed_replicas`), not the exporter's pods per model.",
		Rows: []Row{
			{Title: "Demand and forecast", Panels: []Panel{
				{Title: "Demand against the sized forecast", Unit: "reqps", Width: 12, Height: 9,
					Description: "Realised demand (the forecaster's scored intervals) against the demand the planner sized for: the forecast quantile of the busiest step of the horizon (reactive: the recent peak).",
					Queries: []Query{
						{Expr: `max by (workload) (rate(infercast_forecast_actual_requests_total{` + selWorkload + `}[5m]))`, Legend: "{{workload}} demand"},
						{Expr: `max by (workload) (infercast_plan_forecast_requests_per_second{` + selWorkload + `})`, Legend: "{{workload}} sized for"},
					}},
				{Title: "Demand against the forecast band", Unit: "reqps", Width: 12, Height: 9,
					Description: "Realised demand against the latest forecast's p50, p90 and p99, in requests per second (per forecast interval divided by the interval), at the busiest exposed horizon: the band the planner sizes within. The band drawn at t is the forecast of the coming horizon, so demand should run inside it, under p90 about nine intervals in ten (the scored figure is the p90 interval coverage panel).",
					Queries: []Query{
						{Expr: `max by (workload) (rate(infercast_forecast_actual_requests_total{` + selWorkload + `}[5m]))`, Legend: "{{workload}} demand"},
						{Expr: forecastBand("50"), Legend: "{{workload}} p50"},
						{Expr: forecastBand("90"), Legend: "{{workload}} p90"},
						{Expr: forecastBand("99"), Legend: "{{workload}} p99"},
					}},
			}},
			{Title: "Replicas", Panels: []Panel{
				{Title: "Desired and ready replicas by tier", Unit: "short", Width: 8,
					Description: "Per workload and capacity tier: desired, the planner's target (margin and fallback included: what KEDA and the HPA are told), against ready, the replicas serving as the planner saw them at its latest decision (adapter serve: the pods of the tier's Deployment with --kubernetes.pods, else estimated from the planner's own launches and notices). Ready lags desired by the cold start; the next panel says where the rest are. Departing: of the ready and starting, those on a node whose stop the cloud announced (maintenance, a retirement, a reboot), whose replacements desired carries on top until the node goes. The exporter's running pods (infercast_spend_replicas) are left out: they are per model, with no workload to set them beside a target; what those pods cost is on the Cost dashboard.",
					Queries: []Query{
						{Expr: `sum by (workload, tier) (infercast_plan_target_replicas{` + selWorkload + `})`, Legend: "{{workload}} {{tier}} desired"},
						{Expr: `sum by (workload, tier) (infercast_plan_observed_replicas{` + selWorkload + `, state="ready"})`, Legend: "{{workload}} {{tier}} ready"},
						{Expr: `sum by (workload, tier) (infercast_plan_observed_replicas{` + selWorkload + `, state="departing"})`, Legend: "{{workload}} {{tier}} departing"},
					}},
				{Title: "Replicas not ready by tier", Unit: "short", Width: 8, Stacked: true,
					Description: "Why ready falls short of desired, per workload and tier, stacked, as the planner saw them at its latest decision: starting (launched, cold start under way), pending (wanted but not placed; on spot, no capacity: the planner falls back to on-demand), terminating (under an interruption notice or being removed; not counted towards the target) and lost (on a node that stopped reporting; replaced before Kubernetes evicts them). Departing replicas, counted in ready or starting, are on the previous panel.",
					Queries: []Query{
						{Expr: `sum by (workload, tier, state) (infercast_plan_observed_replicas{` + selWorkload + `, state!~"ready|departing"})`, Legend: "{{workload}} {{tier}} {{state}}"},
					}},
				{Title: "Spot margin", Unit: "short", Width: 8,
					Description: "Extra spot replicas held against interruptions: the smallest k such that n of n+k survive the replacement window with the target probability, and at least one failure domain's share.",
					Queries:     []Query{{Expr: `sum by (workload) (infercast_plan_margin_replicas{` + selWorkload + `, tier="spot"})`, Legend: "{{workload}}"}}},
			}},
			{Title: "Planner", Panels: []Panel{
				{Kind: StateTimeline, Title: "Planner mode", Unit: "short", Width: 12,
					Description: "Which rule produced the plan: predictive (from the forecast), reactive (forecast unavailable), fallback (spot missing, moved to on-demand) or preview (computed, not acted on).",
					Queries:     []Query{{Expr: `max by (workload, mode) (infercast_plan_mode{` + selWorkload + `}) == 1`, Legend: "{{workload}} {{mode}}"}}},
				{Kind: StateTimeline, Title: "What bound the plan", Unit: "short", Width: 12,
					Description: "The floor or rule that bound the latest target: forecast, current rate, backlog, latency, min or max replicas.",
					Queries:     []Query{{Expr: `max by (workload, bound) (infercast_plan_bound_info{` + selWorkload + `}) == 1`, Legend: "{{workload}} {{bound}}"}}},
				{Title: "Forecast error (WAPE) by horizon", Unit: "percentunit", Width: 12,
					Description: "Realised absolute error of the p50 forecast over actual demand, by horizon, over the last hour: what the forecasts were worth.",
					Queries:     []Query{{Expr: `sum by (workload, horizon_seconds) (rate(infercast_forecast_absolute_error_requests_total{` + selWorkload + `}[1h])) / sum by (workload, horizon_seconds) (rate(infercast_forecast_actual_requests_total{` + selWorkload + `}[1h]))`, Legend: "{{workload}} {{horizon_seconds}}s"}}},
				{Title: "Decisions without their inputs", Unit: "short", Width: 24, Min: ptr(0),
					Description: "Decisions per minute made without demand history (the last good plan served, or sized from live signals) or without live signals (no current-rate, backlog or latency floor under the forecast); a workload decides every decision_interval (4 a minute at 15 s). InfercastAdapterScrapingNothing and InfercastAdapterWithoutLiveSignals fire on them.",
					Queries: []Query{
						{Expr: `60 * sum by (workload) (rate(infercast_plan_history_failures_total{` + selWorkload + `}[5m]))`, Legend: "{{workload}} without history"},
						{Expr: `60 * sum by (workload) (rate(infercast_plan_live_failures_total{` + selWorkload + `}[5m]))`, Legend: "{{workload}} without live signals"},
					}},
				{Title: "p90 interval coverage", Unit: "percentunit", Width: 12, Min: ptr(0), Max: ptr(1),
					Description: "Share of scored intervals whose demand stayed at or below the p90 forecast, over 6 hours: about 0.9 when the intervals are honest; InfercastForecastErrorBeyondInterval fires below 0.8.",
					Queries:     []Query{{Expr: `sum by (workload, horizon_seconds) (rate(infercast_forecast_p90_covered_total{` + selWorkload + `}[6h])) / sum by (workload, horizon_seconds) (rate(infercast_forecast_scored_total{` + selWorkload + `}[6h]))`, Legend: "{{workload}} {{horizon_seconds}}s"}}},
			}},
		},
	}
}

func spot() Spec {
	return Spec{
		File: "infercast-spot", UID: "infercast-spot", Title: "infercast / Spot",
		Description:  "The spot market as the fleet meets it: interruption notices and their rate by pool, the clouds' earlier disruption warnings and what their metadata says the nodes are, spot replicas under notice and pending, spot capacity moved to on-demand, fallbacks, and the interruption risk the planner has learned.",
		Tags:         []string{"spot"},
		Variables:    []Variable{nsVar("infercast_spot_metadata_up"), workloadVar("infercast_plan_fallback_replicas")},
		VariablesWhy: "`$workload` filters the planner's panels: spot replicas terminating and pending, fallback and risk. No `$model`: spot series are per node and pool, plans per workload; neither carries a model.",
		Rows: []Row{
			{Title: "Interruptions", Panels: []Panel{
				{Title: "Interruption notices", Unit: "short", Width: 6,
					Description: "Nodes under an interruption notice now (AWS 2 minutes, GCP 30 seconds, Azure Preempt), by pool.",
					Queries:     []Query{{Expr: `sum by (pool) (infercast_spot_interruption_notice{` + selNS + `})`, Legend: "{{pool}}"}}},
				{Title: "Spot replicas terminating", Unit: "short", Width: 6,
					Description: "Spot replicas of each workload under an interruption notice or being removed, as the planner saw them at its latest decision: they no longer count towards the target, and their capacity moves to on-demand at once (fallback).",
					Queries:     []Query{{Expr: `sum by (workload) (infercast_plan_observed_replicas{` + selWorkload + `, tier="spot", state="terminating"})`, Legend: "{{workload}}"}}},
				{Title: "Interruptions per hour", Unit: "short", Width: 6,
					Description: "Interruption notices per hour by pool: what the planner's margin is priced from.",
					Queries:     []Query{{Expr: `sum by (pool) (increase(infercast_spot_interruptions_total{` + selNS + `}[1h]))`, Legend: "{{pool}}"}}},
				{Title: "Metadata service reachable", Unit: "short", Width: 6, Min: ptr(0), Max: ptr(1),
					Description: "Share of spot nodes whose cloud metadata service answered the last poll: without it notices go unseen.",
					Queries:     []Query{{Expr: `avg by (provider, pool) (infercast_spot_metadata_up{` + selNS + `})`, Legend: "{{provider}} {{pool}}"}}},
			}},
			{Title: "Disruption warnings", Panels: []Panel{
				{Title: "Disruption warnings by kind", Unit: "short", Width: 12,
					Description: "Nodes whose metadata announces a disruption that is not (yet) a spot interruption, by pool and kind: AWS rebalance recommendations (a spot instance at elevated risk) and scheduled events (instance or system reboot, system maintenance, instance stop or retirement; days ahead), GCP host maintenance (terminate: GPU VMs stop, an hour ahead; migrate), Azure reboot, redeploy, freeze and terminate. InfercastNodeDisruptionAnnounced fires for those that stop the node.",
					Queries:     []Query{{Expr: `sum by (pool, kind) (infercast_instance_disruption_warning{` + selNS + `})`, Legend: "{{pool}} {{kind}}"}}},
				{Title: "Nodes by capacity type", Unit: "short", Width: 12,
					Description: "Nodes by pool and the capacity type their cloud metadata says they are (AWS instance-life-cycle, GCP scheduling, Azure priority): a spot pool's nodes should all read spot; nodes whose metadata does not say are not counted.",
					Queries:     []Query{{Expr: `count by (pool, capacity_type) (infercast_instance_capacity_type{` + selNS + `})`, Legend: "{{pool}} {{capacity_type}}"}}},
			}},
			{Title: "Fallback", Panels: []Panel{
				{Title: "Pending replicas", Unit: "short", Width: 6,
					Description: "Replicas of each workload wanted but not placed, by tier, as the planner saw them at its latest decision: spot (the pool has no capacity; the planner carries them on on-demand, next panel; InfercastSpotPending after 10 minutes) and on-demand (no capacity or a quota reached; spot carries them; InfercastOnDemandPending after 10 minutes).",
					Queries: []Query{
						{Expr: `sum by (workload) (infercast_plan_observed_replicas{` + selWorkload + `, tier="spot", state="pending"})`, Legend: "{{workload}} spot"},
						{Expr: `sum by (workload) (infercast_plan_observed_replicas{` + selWorkload + `, tier="on-demand", state="pending"})`, Legend: "{{workload}} on-demand"},
					}},
				{Title: "Capacity moved between tiers", Unit: "short", Width: 6,
					Description: "Replicas of spot capacity the planner carries on on-demand because spot went pending (no capacity) or was interrupted (returns to spot with hysteresis), and of on-demand capacity it carries on spot while on-demand replicas cannot be placed.",
					Queries: []Query{
						{Expr: `sum by (workload) (infercast_plan_fallback_replicas{` + selWorkload + `})`, Legend: "{{workload}} spot on on-demand"},
						{Expr: `sum by (workload) (infercast_plan_spot_cover_replicas{` + selWorkload + `})`, Legend: "{{workload}} on-demand on spot"},
					}},
				{Kind: StateTimeline, Title: "Fallback mode", Unit: "short", Width: 6,
					Description: "Workloads whose plan is in fallback mode: spot capacity missing or interrupted, moved to on-demand.",
					Queries:     []Query{{Expr: `max by (workload) (infercast_plan_mode{` + selWorkload + `, mode="fallback"})`, Legend: "{{workload}}"}}},
				{Title: "Learned interruption risk", Unit: "percentunit", Width: 6,
					Description: "The planner's learned probability that one spot replica, or a whole failure domain, is reclaimed within the replacement window.",
					Queries: []Query{
						{Expr: `max by (workload) (infercast_plan_spot_interruption_probability_ratio{` + selWorkload + `})`, Legend: "{{workload}} replica"},
						{Expr: `max by (workload) (infercast_plan_spot_domain_loss_probability_ratio{` + selWorkload + `})`, Legend: "{{workload}} domain"}}},
			}},
		},
	}
}

func batching() Spec {
	return Spec{
		File: "infercast-batching", UID: "infercast-batching", Title: "infercast / Batching",
		Description:  "How the batch controller tunes the servers: batch size and utilisation, recommended against applied knobs (batch cap, queue delay, the queue timeout that rejects late requests), predicted p99 and capacity, and why it decided what it did.",
		Tags:         []string{"batching"},
		Variables:    []Variable{nsVar("infercast_batch_recommended_max_batch_size"), modelVar("infercast_batch_recommended_max_batch_size")},
		VariablesWhy: "`$model` filters every panel. No `$workload`: the batch controller and the exporter work per model.",
		Rows: []Row{
			{Title: "Batches", Panels: []Panel{
				{Title: "Average batch size", Unit: "short", Width: 12,
					Description: "Average requests per executed batch, per server (Triton: inference count over execution count).",
					Queries:     []Query{{Expr: `avg by (model) (infercast_model_batch_size{` + selModel + `})`, Legend: "{{model}}"}}},
				{Title: "Batch utilisation", Unit: "percentunit", Width: 12, Min: ptr(0), Max: ptr(1),
					Description: "Batch size over the server's max_batch_size: low under load means the knobs, not the traffic, limit batching.",
					Queries:     []Query{{Expr: `avg by (model) (infercast_model_batch_utilization_ratio{` + selModel + `})`, Legend: "{{model}}"}}},
			}},
			{Title: "Knobs", Panels: []Panel{
				{Title: "max_batch_size: recommended and applied", Unit: "short", Width: 8,
					Description: "What the controller recommends against what the server runs with; they differ in recommend-only mode or while a change is rate-limited.",
					Queries: []Query{
						{Expr: `max by (model) (infercast_batch_recommended_max_batch_size{` + selModel + `})`, Legend: "{{model}} recommended"},
						{Expr: `max by (model) (infercast_batch_applied_max_batch_size{` + selModel + `})`, Legend: "{{model}} applied"}}},
				{Title: "max_queue_delay: recommended and applied", Unit: "s", Width: 8,
					Description: "How long a batch may wait to fill, recommended against applied.",
					Queries: []Query{
						{Expr: `max by (model) (infercast_batch_recommended_max_queue_delay_seconds{` + selModel + `})`, Legend: "{{model}} recommended"},
						{Expr: `max by (model) (infercast_batch_applied_max_queue_delay_seconds{` + selModel + `})`, Legend: "{{model}} applied"}}},
				{Title: "Queue timeout: recommended and applied", Unit: "s", Width: 8, Min: ptr(0),
					Description: "How long a request may wait in the queue before the server rejects it (Triton's default_queue_policy with REJECT, the webhook's queue_timeout_seconds), recommended against applied; 0 means no timeout. The controller sets one only for models with reject_late (a request that can no longer meet the SLO fails at once instead of lengthening the batches behind it); without reject_late it leaves the server's own queue policy as it read it, so both lines show that policy (0 when none is known).",
					Queries: []Query{
						{Expr: `max by (model) (infercast_batch_recommended_queue_timeout_seconds{` + selModel + `})`, Legend: "{{model}} recommended"},
						{Expr: `max by (model) (infercast_batch_applied_queue_timeout_seconds{` + selModel + `})`, Legend: "{{model}} applied"}}},
				{Title: "Predicted p99 and capacity", Unit: "s", Width: 12,
					Description: "p99 of queue delay plus execution the fitted profile predicts under the recommended knobs at the planning rate.",
					Queries:     []Query{{Expr: `max by (model) (infercast_batch_predicted_p99_seconds{` + selModel + `})`, Legend: "{{model}} predicted p99"}}},
				{Title: "Planning rate against predicted capacity", Unit: "reqps", Width: 12,
					Description: "Arrival rate the controller plans for against the highest rate the recommended knobs serve within the SLO.",
					Queries: []Query{
						{Expr: `max by (model) (infercast_batch_planning_rate_requests_per_second{` + selModel + `})`, Legend: "{{model}} planning rate"},
						{Expr: `max by (model) (infercast_batch_predicted_throughput_requests_per_second{` + selModel + `})`, Legend: "{{model}} capacity"}}},
			}},
			{Title: "Decisions", Panels: []Panel{
				{Title: "Decisions by reason", Unit: "short", Width: 12, Stacked: true,
					Description: "Controller steps per hour by the reason of their decision (learning, optimal, rate-limited, back-off, ...).",
					Queries:     []Query{{Expr: `sum by (reason) (increase(infercast_batch_decisions_total{` + selModel + `}[1h]))`, Legend: "{{reason}}"}}},
				{Title: "Back-offs and changes", Unit: "short", Width: 12,
					Description: "Multiplicative back-offs after SLO violations, knob changes applied, and failed applies (rolled back), per hour.",
					Queries: []Query{
						{Expr: `sum by (model) (increase(infercast_batch_backoffs_total{` + selModel + `}[1h]))`, Legend: "{{model}} back-offs"},
						{Expr: `sum by (model) (increase(infercast_batch_changes_total{` + selModel + `}[1h]))`, Legend: "{{model}} changes"},
						{Expr: `sum by (model) (increase(infercast_batch_apply_failures_total{` + selModel + `}[1h]))`, Legend: "{{model}} failures"}}},
			}},
		},
	}
}

func gpus() Spec {
	return Spec{
		File: "infercast-gpus", UID: "infercast-gpus", Title: "infercast / GPUs & cold starts",
		Description:  "GPU occupancy and memory per GPU and per pod through NVML, and model-server cold starts: how many and how long.",
		Tags:         []string{"gpu", "cold-start"},
		Variables:    []Variable{nsVar("infercast_gpu_collector_up"), modelVar("infercast_cold_starts_total")},
		VariablesWhy: "`$model` filters the cold-start panels. No `$workload`: nothing here carries it. GPU series are per node and GPU (the per-pod panels show the model pods' own namespace and name as `exported_namespace` and `exported_pod`), so `$model` does not narrow them.",
		Rows: []Row{
			{Title: "GPUs", Panels: []Panel{
				{Title: "GPU utilisation", Unit: "percentunit", Width: 12, Min: ptr(0), Max: ptr(1),
					Description: "Share of time a kernel ran, per GPU (NVML). Low while replicas are up is waste: see InfercastGPUsIdle.",
					Queries:     []Query{{Expr: `max by (node, gpu) (infercast_gpu_utilization_ratio{` + selNS + `})`, Legend: "{{node}} gpu {{gpu}}"}}},
				{Title: "GPU memory used", Unit: "percentunit", Width: 12, Min: ptr(0), Max: ptr(1),
					Description: "Memory allocated over memory installed, per GPU.",
					Queries:     []Query{{Expr: `max by (node, gpu) (infercast_gpu_memory_used_bytes{` + selNS + `} / infercast_gpu_memory_total_bytes{` + selNS + `})`, Legend: "{{node}} gpu {{gpu}}"}}},
				{Title: "GPU utilisation by pod", Unit: "percentunit", Width: 8, Min: ptr(0),
					Description: "Share of each GPU's SM time a container's processes used, from NVML's latest sample of each process within the exporter's look-back window, 30 s by default (process to container through the host's /proc cgroups; whole GPUs only: NVML samples no processes on MIG devices).",
					Queries:     []Query{{Expr: `sum by (exported_namespace, exported_pod) (infercast_gpu_pod_utilization_ratio{` + selNS + `})`, Legend: "{{exported_namespace}}/{{exported_pod}}"}}},
				{Title: "GPU memory by pod", Unit: "bytes", Width: 8, Stacked: true,
					Description: "GPU memory used by each container's processes (process to container through the host's /proc cgroups).",
					Queries:     []Query{{Expr: `sum by (exported_namespace, exported_pod) (infercast_gpu_pod_memory_used_bytes{` + selNS + `})`, Legend: "{{exported_namespace}}/{{exported_pod}}"}}},
				{Kind: Stat, Title: "NVML collection", Unit: "short", Width: 8, Min: ptr(0), Max: ptr(1),
					Description: "Exporters whose NVML collection works (1) or is down (0: no driver, init failed): without it GPU panels are empty.",
					Queries:     []Query{{Expr: `min by (node) (infercast_gpu_collector_up{` + selNS + `})`, Legend: "{{node}}"}}},
			}},
			{Title: "Cold starts", Panels: []Panel{
				{Title: "Cold starts", Unit: "short", Width: 12,
					Description: "Model-server starts per hour: pod starts and container restarts in Kubernetes, process restarts of static targets.",
					Queries:     []Query{{Expr: `sum by (model, source) (increase(infercast_cold_starts_total{` + selModel + `}[1h]))`, Legend: "{{model}} {{source}}"}}},
				{Title: "Cold start duration", Unit: "s", Width: 12,
					Description: "p50 and p90 time from start to first served request, over 6 hours; the planner's horizon must cover the p90.",
					Queries: []Query{
						{Expr: `histogram_quantile(0.5, sum by (model, le) (rate(infercast_cold_start_duration_seconds_bucket{` + selModel + `}[6h])))`, Legend: "{{model}} p50"},
						{Expr: `histogram_quantile(0.9, sum by (model, le) (rate(infercast_cold_start_duration_seconds_bucket{` + selModel + `}[6h])))`, Legend: "{{model}} p90"}}},
			}},
		},
	}
}

// percentile names a quantile label value as a percentile: "0.5" is p50,
// "0.99" p99, "0.999" p99.9.
func percentile(quantile string) string {
	q, err := strconv.ParseFloat(quantile, 64)
	if err != nil || q < 0 || q > 1 {
		panic("dashboards: bad quantile " + quantile)
	}
	// Round away float noise (0.29*100 is 28.999999999999996).
	return "p" + strconv.FormatFloat(math.Round(q*1e4)/1e2, 'f', -1, 64)
}

// forecastBand is a forecast percentile in requests per second: the
// forecaster counts requests per interval of infercast_forecast_step_seconds.
func forecastBand(percentile string) string {
	return `max by (workload) (infercast_forecast_requests{` + selWorkload + `, percentile="` + percentile + `"} / on (namespace, workload) group_left infercast_forecast_step_seconds{` + selWorkload + `})`
}
