#!/usr/bin/env bash
# Builds the exporter, runs it against its built-in demo fleet on a free
# 127.0.0.1 port, waits until it is ready and has windowed percentiles, and
# checks the live /metrics with `promtool check metrics`. Used by `make lint`.
# promtool comes from $INFERCAST_TOOLS_BIN (hack/tools.sh) or PATH.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
promtool=${INFERCAST_TOOLS_BIN:+$INFERCAST_TOOLS_BIN/promtool}
if [ -z "$promtool" ] || [ ! -x "$promtool" ]; then
	promtool=$(command -v promtool || true)
fi
[ -n "$promtool" ] || { echo "lint-metrics: promtool not found (run hack/tools.sh)" >&2; exit 1; }

work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

export CGO_CFLAGS=${CGO_CFLAGS:-"-O2 -g -Wno-deprecated-declarations"}
(cd "$root" && go build -o "$work/exporter" ./cmd/exporter)

printf 'global: {scrape_interval: 1s, scrape_timeout: 1s}\n' >"$work/exporter.yaml"
# Port 0: the kernel picks a free port; the exporter logs the address.
"$work/exporter" --demo --config.file="$work/exporter.yaml" --web.listen-address=127.0.0.1:0 2>"$work/exporter.log" &
pid=$!
addr=
for _ in $(seq 1 100); do
	addr=$(sed -n 's/.*msg=listening address=\([0-9.:]*\).*/\1/p' "$work/exporter.log" | head -1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/exporter.log" >&2; echo "lint-metrics: exporter exited" >&2; exit 1; }
	sleep 0.2
done
[ -n "$addr" ] || { cat "$work/exporter.log" >&2; echo "lint-metrics: exporter did not log its address" >&2; exit 1; }

url="http://$addr"
for i in $(seq 1 120); do
	if curl -fsS "$url/readyz" >/dev/null 2>&1 &&
		curl -fsS "$url/metrics" | grep -q '^infercast_model_time_to_first_token_seconds{'; then
		break
	fi
	kill -0 "$pid" 2>/dev/null || { cat "$work/exporter.log" >&2; echo "lint-metrics: exporter exited" >&2; exit 1; }
	[ "$i" -eq 120 ] && { cat "$work/exporter.log" >&2; echo "lint-metrics: exporter not ready after 60s" >&2; exit 1; }
	sleep 0.5
done

curl -fsS "$url/metrics" >"$work/metrics.txt"
echo "lint-metrics: promtool check metrics on $(grep -c -v '^#' "$work/metrics.txt") samples from exporter --demo"
"$promtool" check metrics <"$work/metrics.txt"
echo "lint-metrics: ok"
