//go:build tools

// Package tools pins the KEDA operator and metrics adapter that hack/e2e.sh
// builds for the end-to-end suite (test/e2e). It lives in its own module so
// the project's go.mod never carries KEDA's whole dependency graph.
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
