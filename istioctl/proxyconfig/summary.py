"""`proxy-config all`: every table at once, as istioctl's PrintFullSummary writes it.

Sections in istioctl's order, each followed by an empty line: the bootstrap version summary,
clusters, listeners, routes, secrets, then the load assignments (the `eds` table). Every table
but the secrets' gets a NAME column (or a name prefix) telling the resource kind:
`cluster/...`, `listener/...`, `route/...`, `secret/...`, `endpoint/...`. `--with-headers`
puts `------ CLUSTER INFO ------` (etc.) above each section. Where istioctl would stop at an
empty section ("no routes found"), pyistio prints that section's header row and goes on.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from istioctl.proxyconfig import bootstrap, clusters, eds, listeners, routes, secrets
from istioctl.proxyconfig.clusters import ClusterFilter
from istioctl.proxyconfig.configdump import ConfigDump, NothingToShow
from istioctl.proxyconfig.endpoints import EndpointFilter
from istioctl.proxyconfig.listeners import ListenerFilter
from istioctl.proxyconfig.routes import RouteFilter
from istioctl.proxyconfig.tabwriter import Table


@dataclass(frozen=True)
class AllFilters:
    cluster: ClusterFilter = field(default_factory=ClusterFilter)
    listener: ListenerFilter = field(default_factory=ListenerFilter)
    route: RouteFilter = field(default_factory=RouteFilter)
    endpoint: EndpointFilter = field(default_factory=EndpointFilter)
    with_headers: bool = False


def full_summary(
    dump: ConfigDump, filters: AllFilters, now: datetime.datetime | None = None
) -> str:
    sections: list[tuple[str, Callable[[], str]]] = [
        ("BOOTSTRAP INFO", lambda: _bootstrap(dump)),
        (
            "CLUSTER INFO",
            lambda: _table(
                lambda: clusters.table(dump, filters.cluster, with_name=True),
                ("NAME", *clusters.HEADER),
                clusters.PADDING,
            ),
        ),
        (
            "LISTENER INFO",
            lambda: _table(
                lambda: listeners.table(dump, filters.listener, with_name=True),
                _listener_header(filters.listener.verbose),
                listeners.PADDING,
            ),
        ),
        (
            "ROUTE INFO",
            lambda: _table(
                lambda: routes.table(dump, filters.route, with_name=True),
                _route_header(filters.route.verbose),
                routes.PADDING,
            ),
        ),
        ("SECRET INFO", lambda: _secrets(dump, now)),
        (
            "ENDPOINTS INFO",
            lambda: _table(
                lambda: eds.table(dump, filters.endpoint, with_name=True),
                eds.HEADER,
                eds.PADDING,
            ),
        ),
    ]
    out: list[str] = []
    for index, (title, build) in enumerate(sections):
        if filters.with_headers:
            out.append(f"------ {title} ------\n\n")
        out.append(build())
        if index < len(sections) - 1:
            out.append("\n")
    return "".join(out)


def _bootstrap(dump: ConfigDump) -> str:
    try:
        return bootstrap.summary(dump)
    except bootstrap.NoBootstrap:
        return ""


def _table(build: Callable[[], Table], header: tuple[str, ...], padding: int) -> str:
    try:
        return build().render()
    except NothingToShow:  # no such resources at all: the header alone
        return Table(header, (), padding).render()


def _secrets(dump: ConfigDump, now: datetime.datetime | None) -> str:
    result = secrets.table(dump, with_prefix=True, now=now)
    return result.render() if isinstance(result, Table) else result + "\n"


def _listener_header(verbose: bool) -> tuple[str, ...]:
    return ("NAME", "ADDRESSES", "PORT", *(("MATCH", "DESTINATION") if verbose else ("TYPE",)))


def _route_header(verbose: bool) -> tuple[str, ...]:
    return (
        ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE")
        if verbose
        else (
            "NAME",
            "VIRTUAL HOSTS",
        )
    )
