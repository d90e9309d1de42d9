"""The process's Prometheus registry (not the library's global one), shared by istiod's parts.

Each istiod has one; tests that build several servers in one interpreter share it, which is
fine for counters they read as deltas.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
