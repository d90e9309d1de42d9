"""`proxy-config route`: istioctl's route table (`configdump/route.go`).

Verbose (the default): `NAME  VHOST NAME  DOMAINS  MATCH  VIRTUAL SERVICE`, one row per
route of each virtual host, except routes to the PassthroughCluster; a virtual host without
routes shows one row matching `/*` whose VIRTUAL SERVICE is `404`. Otherwise `NAME  VIRTUAL
HOSTS` (a count). Padding 5. DOMAINS is the shortest spelling of the host: domains with a port
are dropped, and so are `x.svc.cluster.local` and `x.svc` when `x` is there too; at most two
are shown, then `+ N more...`. VIRTUAL SERVICE is `NAME.NS` from the route's provenance
metadata. Route configurations with numeric names (ports) come first, in numeric order;
the others follow in dump order. `--name` selects one route configuration by exact name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istioctl.proxyconfig.configdump import ConfigDump, NothingToShow
from istioctl.proxyconfig.names import describe_management
from istioctl.proxyconfig.tabwriter import Table

PADDING = 5
PASSTHROUGH = "PassthroughCluster"
MAX_DOMAINS = 2


class NoRoutes(NothingToShow):
    def __str__(self) -> str:
        return "no routes found"


@dataclass(frozen=True)
class RouteFilter:
    name: str = ""
    verbose: bool = True

    def matches(self, config: Any) -> bool:
        return not self.name or config.name == self.name


def sorted_routes(dump: ConfigDump) -> list[Any]:
    routes = dump.routes()
    if not routes:
        raise NoRoutes()
    numeric = sorted((r for r in routes if _is_int(r.name)), key=lambda r: int(r.name))
    return numeric + [r for r in routes if not _is_int(r.name)]


def selected(dump: ConfigDump, flt: RouteFilter) -> list[Any]:
    return [r for r in sorted_routes(dump) if flt.matches(r)]


def table(dump: ConfigDump, flt: RouteFilter, *, with_name: bool = False) -> Table:
    """The table; `with_name` prefixes names with `route/` (istioctl's `all`)."""
    rows: list[tuple[str, ...]] = []
    for config in selected(dump, flt):
        name = f"route/{config.name}" if with_name else config.name
        if not flt.verbose:
            rows.append((name, str(len(config.virtual_hosts))))
            continue
        for vhost in config.virtual_hosts:
            domains = describe_domains(list(vhost.domains))
            for route in vhost.routes:
                if _is_passthrough(route):
                    continue
                metadata = route.metadata if route.HasField("metadata") else None
                rows.append(
                    (
                        name,
                        vhost.name,
                        domains,
                        describe_match(route.match),
                        describe_management(metadata),
                    )
                )
            if not vhost.routes:
                rows.append((name, vhost.name, domains, "/*", "404"))
    header = ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE")
    return Table(header if flt.verbose else ("NAME", "VIRTUAL HOSTS"), tuple(rows), PADDING)


def describe_match(match: Any) -> str:
    """A route match as istioctl writes it (headers and query parameters left out)."""
    parts: list[str] = []
    if match.prefix:
        parts.append(f"{match.prefix}*")
    if match.path_separated_prefix:
        parts.append(f"PathPrefix:{match.path_separated_prefix}")
    if match.path:
        parts.append(match.path)
    if match.HasField("safe_regex"):
        parts.append(f"regex {match.safe_regex.regex}")
    return " ".join(parts)


def describe_domains(domains: list[str]) -> str:
    if not domains:
        return ""
    if len(domains) == 1:
        return domains[0]
    without_port = [
        d
        for d in domains
        if ":" not in d or (d.count(":") > 2 and d.endswith("]"))  # a bare IPv6 [addr]
    ]
    shown = _unexpand(without_port)
    if len(shown) > MAX_DOMAINS:
        return f"{', '.join(shown[:MAX_DOMAINS])} + {len(shown) - MAX_DOMAINS} more..."
    return ", ".join(shown)


def _unexpand(domains: list[str]) -> list[str]:
    """Drop `h.svc.cluster.local` and `h.svc` when the shorter `h` is listed too."""
    present = set(domains)
    drop = set()
    for domain in domains:
        for suffix in (".svc.cluster.local", ".svc"):
            short = domain.removesuffix(suffix)
            if short != domain and short in present:
                drop.add(domain)
    return [d for d in domains if d not in drop]


def _is_passthrough(route: Any) -> bool:
    return bool(
        route.WhichOneof("action") == "route"
        and route.route.WhichOneof("cluster_specifier") == "cluster"
        and route.route.cluster == PASSTHROUGH
    )


def _is_int(text: str) -> bool:
    body = text[1:] if text[:1] in "+-" else text
    return bool(body) and body.isascii() and body.isdigit()
