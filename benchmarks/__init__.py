"""Load harness and benchmark scenarios for pyistio (see docs/performance.md)."""
