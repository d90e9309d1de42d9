"""End-to-end test harness: real Envoy, istiod, backends and traffic on loopback."""
