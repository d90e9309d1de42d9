"""istioctl's proxy-status table (istioctl/pkg/writer/pilot/status.go).

The columns are Istio ≤1.26's, `NAME  CLUSTER  CDS  LDS  EDS  RDS  ECDS  ISTIOD  VERSION`
(padding 5, as its tabwriter); `-v 1` shows, as Istio 1.27's verbose table, one column per
type that is known or watched by any proxy, ordered by type URL (so SDS appears too). A cell
is `SYNCED (5m2s)`, `STALE (..)` or `ERROR (..)` with the age of its last update as
Kubernetes' HumanDuration writes it, `NOT SENT`, or `IGNORED` for a type the proxy does not
watch. VERSION is the proxy's own ISTIO_VERSION. Rows are sorted by proxy name.

Istio's table says nothing about why a type is in ERROR; here each one gets a line under the
table with Envoy's NACK message: `ERROR NAME TYPE: MESSAGE`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from istioctl.proxyconfig.tabwriter import render
from istioctl.proxystatus.model import ProxyStatus, TypeStatus
from pkg.xds import typeurls
from pkg.xds.sync_status import ConfigStatus

PADDING = 5
IGNORED = "IGNORED"
# Istio ≤1.26's fixed columns, in its order.
LEGACY_TYPES = (
    typeurls.CLUSTER,
    typeurls.LISTENER,
    typeurls.ENDPOINT,
    typeurls.ROUTE,
    typeurls.EXTENSION_CONFIG,
)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery's duration.HumanDuration."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def cell(status: TypeStatus | None, now: float) -> str:
    if status is None or status.status is ConfigStatus.UNKNOWN:
        return IGNORED
    if status.status is ConfigStatus.NOT_SENT:
        return "NOT SENT"
    text = status.status.value
    if status.last_updated is not None:
        text += f" ({human_duration(now - status.last_updated)})"
    return text


def columns(proxies: Iterable[ProxyStatus], verbose: bool) -> tuple[str, ...]:
    if not verbose:
        return LEGACY_TYPES
    seen = {t for p in proxies for t in p.types}
    return tuple(sorted(seen | set(LEGACY_TYPES)))


def render_table(proxies: Sequence[ProxyStatus], now: float, verbose: bool = False) -> str:
    types = columns(proxies, verbose)
    header = ("NAME", "CLUSTER", *(typeurls.short_name(t) for t in types), "ISTIOD", "VERSION")
    rows = [
        (
            p.name,
            p.cluster,
            *(cell(p.types.get(t), now) for t in types),
            p.istiod,
            p.version,
        )
        for p in sorted(proxies, key=lambda p: p.name)
    ]
    return render([header, *rows], PADDING)


def render_errors(proxies: Sequence[ProxyStatus]) -> str:
    """One line per type in ERROR: the proxy, the type and Envoy's message."""
    lines = []
    for proxy in sorted(proxies, key=lambda p: p.name):
        for type_url in sorted(proxy.types):
            status = proxy.types[type_url]
            if status.status is ConfigStatus.ERROR:
                message = (status.error or "(no message)").replace("\n", "\n    ")
                lines.append(f"ERROR {proxy.name} {typeurls.short_name(type_url)}: {message}\n")
    return "".join(lines)
