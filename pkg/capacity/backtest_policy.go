package capacity

import _ "embed"

// BacktestPolicy is the policy tuned for the twelve backtests of the
// planner's acceptance runs (docs/planner.md): `adapter backtest` plans
// with it when no --policy is given, and the backtest table test and
// hack/backtest-table.sh use the same bytes, so the three cannot drift.
//
//go:embed backtest_policy.yaml
var BacktestPolicy []byte
