#!/usr/bin/env bash
# Runs the twelve backtests of issue 5 and prints their markdown table:
# nasa-1995-07 x10, nasa-1995-08 x10 and servegen-m-mid x0.01, each with
# mu 2, cold start 180 s, $4.0/$1.4 per replica-hour, queue SLO 5 s, notice
# 120 s, and no spot file / spot-high / spot-medium / spot-low (three zones).
#
#   hack/backtest-table.sh [FILTER]     FILTER keeps runs whose "trace/spot" contains it
#
# Environment: POLICY (a policy file for --policy; default: the planner's
# tuned backtest policy, pkg/capacity/backtest_policy.yaml, or the
# command's built-in copy of it when that file is absent), OUT (keep the runs' outputs there; default: a temporary dir),
# JOBS (parallel runs, default 2), TRACES (default ../shared/traces).
set -euo pipefail
cd "$(dirname "$0")/.."
traces=${TRACES:-../shared/traces}
jobs=${JOBS:-2}
filter=${1:-}
out=${OUT:-}
if [[ -z $out ]]; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
export CGO_CFLAGS=${CGO_CFLAGS:-"-O2 -g -Wno-deprecated-declarations"}
go build -o "$out/adapter" ./cmd/adapter

policy=()
POLICY=${POLICY-pkg/capacity/backtest_policy.yaml}
[[ -n $POLICY && -f $POLICY ]] && policy=(--policy "$POLICY")

runs=()
for ts in "nasa-1995-07.csv 10" "nasa-1995-08.csv 10" "servegen-m-mid.csv 0.01"; do
	for spot in none high medium low; do
		read -r trace scale <<<"$ts"
		[[ -z $filter || "$trace/$spot" == *"$filter"* ]] && runs+=("$trace $scale $spot")
	done
done

run_one() {
	local trace=$1 scale=$2 spot=$3 dir="$out/${1%.csv}-$3"
	local pools=()
	if [[ $spot != none ]]; then
		for z in a b c; do pools+=(--spot "$traces/spot/spot-$spot-$z.json"); done
	fi
	"$out/adapter" backtest --trace "$traces/$trace" --scale "$scale" "${pools[@]}" "${policy[@]}" \
		--mu 2 --cold-start 180 --price-on-demand 4.0 --price-spot 1.4 --queue-slo 5 --notice 120 \
		--compare reactive --out "$dir" >"$dir.log" 2>&1 || { echo "backtest: $trace $spot failed:" >&2; cat "$dir.log" >&2; return 1; }
}

pids=()
for r in "${runs[@]}"; do
	# shellcheck disable=SC2086
	run_one $r &
	pids+=($!)
	while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
((fail == 0)) || exit 1

# field FILE KEY [SECTION]: a number from summary.json, top level or under
# baselines.SECTION (the file is written indented by adapter backtest).
field() {
	awk -v key="\"$2\":" -v sect="${3:-}" '
		/^  "baselines": \{/ { inb = 1 }
		inb && sect != "" && $1 == "\"" sect "\":" { ins = 1 }
		{
			if (sect == "" && !inb && $1 == key) { v = $2; sub(/,$/, "", v); print v; exit }
			if (sect != "" && ins && $1 == key) { v = $2; sub(/,$/, "", v); print v; exit }
		}' "$1"
}

echo "| trace | spot | infercast cost | × oracle | × spot-aware oracle | infercast SLO | reactive cost | reactive SLO | issue's bar |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
for r in "${runs[@]}"; do
	read -r trace scale spot <<<"$r"
	s="$out/${trace%.csv}-$spot/summary.json"
	cost=$(field "$s" cost_dollars) ro=$(field "$s" cost_over_oracle) ra=$(field "$s" cost_over_spot_aware_oracle)
	att=$(field "$s" slo_attainment) rcost=$(field "$s" cost_dollars reactive) ratt=$(field "$s" slo_attainment reactive)
	awk -v t="${trace%.csv} ×$scale" -v sp="$spot" -v c="$cost" -v ro="$ro" -v ra="$ra" -v a="$att" -v rc="$rcost" -v rt="$ratt" 'BEGIN {
		ok = (c < rc && a > rt && a >= 0.995)
		if (sp == "none") ok = ok && a >= 0.999 && ro <= 2.0
		if (sp == "high") ok = ok && a >= 0.999 && ra <= 2.5
		printf "| %s | %s | $%.0f | %.2f | %.2f | %.3f %% | $%.0f | %.3f %% | %s |\n", t, sp, c, ro, ra, 100 * a, rc, 100 * rt, ok ? "met" : "**missed**"
	}'
done
