"""Sidecar injection (Istio's pkg/kube/inject): the policy, the pod mutation and the Envoy
bootstrap of an injected sidecar; used by istiod's /inject webhook and `istioctl kube-inject`."""
