#!/usr/bin/env bash
# Load run of the KEDA external scaler (docs/serving.md): ghz drives
# GetMetrics at 1,000 requests/s over 1,000 configured workloads against a
# real server on 127.0.0.1 and the test fails unless p99 < 5 ms.
#   INFERCAST_LOAD_RPS, INFERCAST_LOAD_TOTAL, INFERCAST_LOAD_P99_MS override
#   the rate, the request count and the bound.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${INFERCAST_TOOLS_BIN:-$(bash hack/tools.sh)}
INFERCAST_TOOLS_BIN=$bin INFERCAST_REQUIRE_TOOLS=1 INFERCAST_LOAD=1 \
	go test -count=1 -run '^TestGhzLoad$' -v ./pkg/scaler/ | grep -E 'load_test.go|^(ok|FAIL|---)'
