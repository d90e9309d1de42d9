"""Replay a request through one proxy's generated Envoy config (`traffic`, `match`, `rbac`) and
explain each step with the Istio object it came from (`explain`)."""
