# infercast — see README.md. `make demo` runs the whole loop on embedded
# defaults; `make test` runs every unit and integration test with -race.
GO ?= go
# go-nvml's header marks some calls deprecated; the warnings are noise.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations

.PHONY: all build test test-short lint demo bench tools e2e load backtest-table clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# tools installs the pinned external tools (Prometheus, promtool, amtool,
# helm, kubeconform, ghz) into a cache reused between runs.
tools:
	@bash hack/tools.sh >/dev/null

test: tools
	INFERCAST_TOOLS_BIN="$$(bash hack/tools.sh)" INFERCAST_REQUIRE_TOOLS=1 \
		$(GO) test -race -count=1 -timeout 20m ./...
	# The batch controller's trace replays are single-threaded and CPU-bound:
	# they skip under -race (which finds nothing there) and run here without.
	$(GO) test -count=1 -timeout 10m -run TestControllerOnRealTraces ./pkg/batchctl/batchsim/

# test-short: unit tests only, no external tools, for a quick loop.
test-short:
	$(GO) test -short -count=1 ./...

lint: tools
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/
	INFERCAST_TOOLS_BIN="$$(bash hack/tools.sh)" bash hack/lint-metrics.sh

demo:
	$(GO) run ./cmd/adapter demo

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# e2e: a real kube-apiserver, kube-controller-manager, KEDA and Prometheus
# on 127.0.0.1 around the adapter (docs/e2e.md); binaries are cached.
e2e: tools
	INFERCAST_TOOLS_BIN="$$(bash hack/tools.sh)" INFERCAST_REQUIRE_TOOLS=1 bash hack/e2e.sh

# load: ghz against the KEDA endpoint at 1,000 req/s (docs/serving.md).
load: tools
	INFERCAST_TOOLS_BIN="$$(bash hack/tools.sh)" bash hack/ghz-load.sh

# backtest-table: the twelve backtests of docs/planner.md.
backtest-table:
	bash hack/backtest-table.sh

clean:
	rm -rf bin out
