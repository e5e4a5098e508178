// Package k8s holds the Kubernetes manifests of hasp's self-hosted
// deployment, applied with `kubectl apply -k infra/k8s`: a three-member
// etcd StatefulSet with peer and client TLS, `hasp serve` with its Service,
// PodDisruptionBudgets, a ServiceMonitor and a PrometheusRule. Its tests
// validate them offline (docs/kubernetes.md explains the deployment).
package k8s

import "embed"

// Manifests are the YAML files of this directory, kustomization.yaml
// included.
//
//go:embed *.yaml
var Manifests embed.FS
