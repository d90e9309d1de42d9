"""Behaviour over bytes: send a simulated call through one proxy's generated xDS.

The simulator is product code (`pilot.simulate.traffic`, a re-implementation of Istio's
`pilot/pkg/simulation/traffic.go`); this module keeps the tests' names for it and adds
`simulate_case`, which builds a golden case's resources and checks them for consistency first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pilot.simulate.traffic import (
    HTTP_INSPECTOR,
    SOCKET_MATCH_METADATA,
    TCP_PROXY_TYPE,
    TLS,
    TLS_INSPECTOR,
    VIRTUAL_INBOUND,
    VIRTUAL_OUTBOUND,
    Call,
    CallMode,
    Error,
    Protocol,
    Result,
    Simulation,
    UpstreamTLS,
)
from tests.helpers.consistency import assert_consistent
from tests.helpers.golden import case_resources
from tests.helpers.xds import ProxySpec

__all__ = [
    "HTTP_INSPECTOR",
    "SOCKET_MATCH_METADATA",
    "TCP_PROXY_TYPE",
    "TLS",
    "TLS_INSPECTOR",
    "VIRTUAL_INBOUND",
    "VIRTUAL_OUTBOUND",
    "Call",
    "CallMode",
    "Error",
    "Protocol",
    "Result",
    "Simulation",
    "UpstreamTLS",
    "simulate_case",
]


def simulate_case(path: Path, proxy: ProxySpec | None = None, **overrides: Any) -> Simulation:
    """The simulation of a golden case's proxy (or of `proxy`, with `overrides` applied), after
    checking the generated resources are consistent."""
    resources = case_resources(path, proxy, **overrides)
    assert_consistent(resources)
    return Simulation(resources)
