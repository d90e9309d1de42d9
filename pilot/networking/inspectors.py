"""Listener inspectors of virtualInbound, per destination port (Istio's populateListenerFilters
in listener_inbound.go).

The TLS and HTTP inspectors read the connection's first bytes before a filter chain is chosen.
On a port none of whose chains matches on TLS (or on an HTTP ALPN) that wait is pointless, and
for server-first protocols (MySQL, SMTP: the server speaks first) it is fatal: with the default
protocolDetectionTimeout of 0 the inspector waits for client bytes that never come. So, as
Istio does, each inspector runs only on the ports whose chains need it, through the listener
filter's `filter_disabled` predicate on the destination port. Port 0 stands for the chains
without a destination port (the passthrough chains for undeclared ports).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2
from envoy.type.v3 import range_pb2

from pilot.networking.filters import http_inspector_filter, tls_inspector_filter

_TLS = "tls"
_HTTP_ALPNS = ("http/1.1", "h2c")  # what Istio checks to decide a chain needs HTTP detection


@dataclass
class _Needs:
    tls: bool = False
    http: bool = False


def _needs_by_port(chains: Iterable[Any]) -> dict[int, _Needs]:
    out: dict[int, _Needs] = {}
    for chain in chains:
        match = chain.filter_chain_match
        port = int(match.destination_port.value) if match.HasField("destination_port") else 0
        needs = out.setdefault(port, _Needs())
        needs.tls = needs.tls or match.transport_protocol == _TLS
        needs.http = needs.http or any(a in _HTTP_ALPNS for a in match.application_protocols)
    return out


def _exclude_ports(ports: Sequence[int]) -> Any:
    """A predicate true on exactly these destination ports (the filter is disabled there)."""
    rules = [
        lc_pb2.ListenerFilterChainMatchPredicate(
            destination_port_range=range_pb2.Int32Range(start=p, end=p + 1)
        )
        for p in ports
    ]
    if len(rules) == 1:
        return rules[0]
    out = lc_pb2.ListenerFilterChainMatchPredicate()
    out.or_match.rules.extend(rules)
    return out


def _include_ports(ports: Sequence[int]) -> Any:
    """A predicate true on every port but these (the filter runs only there)."""
    out = lc_pb2.ListenerFilterChainMatchPredicate()
    out.not_match.CopyFrom(_exclude_ports(ports))
    return out


def _tls_inspector(needs: dict[int, _Needs]) -> Any:
    out = tls_inspector_filter()
    if needs.get(0, _Needs()).tls:
        # On by default (the passthrough chains need it): opt out the ports that do not.
        off = sorted(p for p, n in needs.items() if p and not n.tls)
        if off:
            out.filter_disabled.CopyFrom(_exclude_ports(off))
    else:
        on = sorted(p for p, n in needs.items() if p and n.tls)
        if on:
            out.filter_disabled.CopyFrom(_include_ports(on))
    return out


def _http_inspector(needs: dict[int, _Needs]) -> Any:
    out = http_inspector_filter()
    # As Istio: every port that does not need it, port 0 included, is opted out.
    off = sorted(p for p, n in needs.items() if not n.http)
    if off:
        out.filter_disabled.CopyFrom(_exclude_ports(off))
    return out


def inbound_inspectors(chains: Iterable[Any]) -> list[Any]:
    """The TLS inspector, then the HTTP inspector (it must see what TLS inspection decided),
    each only if some chain needs it and disabled on the ports where none does."""
    needs = _needs_by_port(chains)
    out = []
    if any(n.tls for n in needs.values()):
        out.append(_tls_inspector(needs))
    if any(n.http for n in needs.values()):
        out.append(_http_inspector(needs))
    return out


__all__ = ["inbound_inspectors"]
