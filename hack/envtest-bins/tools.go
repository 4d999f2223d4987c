//go:build tools

// Package tools pins the control-plane binaries that hack/kube-schemas/gen.sh
// builds: kube-apiserver and etcd, to serve a real /openapi/v2 from which the
// chart's kubeconform schemas are generated; and kube-controller-manager,
// whose HPA controller the end-to-end suite (hack/e2e.sh, test/e2e) runs.
// It lives in its own module so the project's go.mod never carries
// k8s.io/kubernetes.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
