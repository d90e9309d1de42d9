"""`istioctl proxy-config|pc RESOURCE [PROXY] [--admin URL | -f FILE | --istiod URL]`.

RESOURCE (with istioctl's aliases): cluster|clusters|c, listener|listeners|l,
route|routes|r, endpoint|endpoints|ep, eds, secret|secrets|s, bootstrap|b, all|a.
The source is exactly one of `--admin URL` (an Envoy admin API), `-f FILE` (a saved
`/config_dump`) or PROXY (`NAME.NAMESPACE` or a node id) read from istiod (`--istiod URL`,
default http://127.0.0.1:8080): what istiod would send that proxy, or with `--at TIME|VERSION`
what it had sent it then (an RFC 3339 time, a duration ago such as 10m, or a push version
from `istioctl x history`; istiod's history, bounded by PILOT_HISTORY_MAX_BYTES). `-o short`
(a table, the default; `bootstrap` defaults to json), `-o json` or `-o yaml` (Envoy's JSON
for the resources). Exit 0 on success, 1 when the source fails or holds nothing to show, 2 for bad
flags.
"""

from __future__ import annotations

import argparse
import datetime
import enum
import sys
from dataclasses import dataclass
from typing import Any

from istioctl.proxyconfig import (
    bootstrap,
    clusters,
    eds,
    endpoints,
    listeners,
    render,
    routes,
    secrets,
    summary,
)
from istioctl.proxyconfig.at import At
from istioctl.proxyconfig.clusters import ClusterFilter
from istioctl.proxyconfig.configdump import (
    ConfigDump,
    DumpError,
    NothingToShow,
    parse_cluster_statuses,
    parse_config_dump,
)
from istioctl.proxyconfig.endpoints import EndpointFilter
from istioctl.proxyconfig.listeners import ListenerFilter
from istioctl.proxyconfig.render import OutputFormat
from istioctl.proxyconfig.routes import RouteFilter
from istioctl.proxyconfig.sources import (
    DEFAULT_TIMEOUT,
    AdminSource,
    FileSource,
    IstiodSource,
    Source,
    SourceError,
    normalize_url,
)
from istioctl.proxyconfig.summary import AllFilters
from istioctl.proxyconfig.tabwriter import Table

DEFAULT_ISTIOD = "http://127.0.0.1:8080"


class Resource(enum.Enum):
    CLUSTER = "cluster"
    LISTENER = "listener"
    ROUTE = "route"
    ENDPOINT = "endpoint"
    EDS = "eds"
    SECRET = "secret"
    BOOTSTRAP = "bootstrap"
    ALL = "all"


_ALIASES = {
    Resource.CLUSTER: ("clusters", "c"),
    Resource.LISTENER: ("listeners", "l"),
    Resource.ROUTE: ("routes", "r"),
    Resource.ENDPOINT: ("endpoints", "ep"),
    Resource.EDS: (),
    Resource.SECRET: ("secrets", "s"),
    Resource.BOOTSTRAP: ("b",),
    Resource.ALL: ("a",),
}
_HELP = {
    Resource.CLUSTER: "cluster configuration of the proxy",
    Resource.LISTENER: "listener configuration of the proxy",
    Resource.ROUTE: "route configuration of the proxy",
    Resource.ENDPOINT: "endpoints of the proxy's clusters (Envoy's live host set)",
    Resource.EDS: "load assignments (EDS) the proxy holds",
    Resource.SECRET: "SDS secrets of the proxy (certificates only, never keys)",
    Resource.BOOTSTRAP: "bootstrap configuration of the proxy",
    Resource.ALL: "all configuration of the proxy",
}


class UsageError(Exception):
    """Bad flags; the message names them."""


@dataclass(frozen=True)
class Request:
    resource: Resource
    source: Source
    output: OutputFormat
    filters: AllFilters


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "proxy-config",
        aliases=["pc"],
        help="retrieve information about a proxy's Envoy configuration",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    resources = parser.add_subparsers(dest="pc_resource_name", metavar="RESOURCE")
    resources.required = True
    common = _common_flags()
    for resource in Resource:
        sub = resources.add_parser(
            resource.value,
            aliases=list(_ALIASES[resource]),
            parents=[common],
            help=_HELP[resource],
            description=f"Retrieve {_HELP[resource]}.",
        )
        _add_filters(sub, resource)
        sub.set_defaults(func=run, pc_resource=resource)
    return parser


def _common_flags() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "proxy",
        nargs="?",
        metavar="PROXY",
        help="NAME.NAMESPACE (or a node id) of a proxy connected to istiod (see --istiod)",
    )
    common.add_argument(
        "--admin", metavar="URL", help="Envoy admin URL, e.g. http://127.0.0.1:15000"
    )
    common.add_argument(
        "-f", "--file", metavar="FILE", help="Envoy config dump JSON file (- for stdin)"
    )
    common.add_argument(
        "--istiod",
        metavar="URL",
        help=f"istiod HTTP URL PROXY's configuration is read from (default {DEFAULT_ISTIOD})",
    )
    common.add_argument(
        "-o", "--output", default=None, help="output format: one of json|yaml|short"
    )
    common.add_argument(
        "--at",
        metavar="TIME|VERSION",
        help="what istiod had sent PROXY then: an RFC 3339 time, a duration ago (10m) or a"
        " push version from `istioctl x history` (istiod's history)",
    )
    common.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="HTTP timeout in seconds"
    )
    return common


def _add_filters(parser: argparse.ArgumentParser, resource: Resource) -> None:
    cluster = resource in (Resource.CLUSTER, Resource.ALL)
    listener = resource in (Resource.LISTENER, Resource.ALL)
    endpoint = resource in (Resource.ENDPOINT, Resource.EDS)
    if cluster:
        parser.add_argument("--fqdn", default="", help="filter clusters by substring of FQDN")
        parser.add_argument("--direction", default="", help="filter clusters by direction")
        parser.add_argument("--subset", default="", help="filter clusters by substring of subset")
    if cluster or listener or endpoint:
        parser.add_argument("--port", type=_port, default=0, help="filter by port")
    if listener or endpoint:
        parser.add_argument("--address", default="", help="filter by address")
    if listener:
        parser.add_argument("--type", default="", help="filter listeners by type (HTTP, TCP)")
    if resource in (Resource.ROUTE, Resource.ALL):
        parser.add_argument("--name", default="", help="filter routes by route config name")
    if listener or resource is Resource.ROUTE:
        parser.add_argument(
            "--verbose",
            type=_bool,
            nargs="?",
            const=True,
            default=True,
            metavar="BOOL",
            help="output more information (default true; --verbose=false for less)",
        )
    if endpoint:
        parser.add_argument("--cluster", default="", help="filter endpoints by cluster name")
        parser.add_argument("--status", default="", help="filter endpoints by health status")
    if resource is Resource.ALL:
        parser.add_argument("--with-headers", action="store_true", help="print section headers")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def run(args: argparse.Namespace) -> int:
    try:
        request = request_from_args(args)
    except UsageError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
    try:
        text = execute(request)
    except (SourceError, NothingToShow) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def request_from_args(args: argparse.Namespace) -> Request:
    resource: Resource = args.pc_resource
    default = OutputFormat.JSON if resource is Resource.BOOTSTRAP else OutputFormat.SHORT
    try:
        output = OutputFormat.parse(args.output) if args.output is not None else default
    except ValueError as err:
        raise UsageError(f"-o: {err}") from None
    verbose = getattr(args, "verbose", True)
    filters = AllFilters(
        cluster=ClusterFilter(
            fqdn=getattr(args, "fqdn", ""),
            port=getattr(args, "port", 0),
            subset=getattr(args, "subset", ""),
            direction=getattr(args, "direction", ""),
        ),
        listener=ListenerFilter(
            address=getattr(args, "address", ""),
            port=getattr(args, "port", 0),
            type=getattr(args, "type", ""),
            verbose=verbose,
        ),
        route=RouteFilter(name=getattr(args, "name", ""), verbose=verbose),
        endpoint=EndpointFilter(
            address=getattr(args, "address", ""),
            port=getattr(args, "port", 0),
            cluster=getattr(args, "cluster", ""),
            status=getattr(args, "status", ""),
        ),
        with_headers=getattr(args, "with_headers", False),
    )
    return Request(resource, source_from_args(args, resource), output, filters)


def source_from_args(args: argparse.Namespace, resource: Resource) -> Source:
    given = [flag for flag, value in (("--admin", args.admin), ("-f", args.file)) if value]
    if args.istiod:
        given.append("--istiod")
    if len(given) > 1:
        raise UsageError(f"give only one source, not {' and '.join(given)}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout: must be positive, got {args.timeout:g}")
    try:
        if args.admin or args.file:
            if getattr(args, "at", None):
                raise UsageError(f"--at reads istiod's history of PROXY; not with {given[0]}")
            if args.proxy:
                raise UsageError(
                    f"PROXY {args.proxy!r} is read from istiod; with {given[0]} leave it out"
                )
            if args.admin:
                return AdminSource(normalize_url("--admin", args.admin), args.timeout)
            return FileSource(args.file)
        if not args.proxy:
            raise UsageError(
                f"proxy-config {resource.value} needs PROXY (read from istiod),"
                " --admin URL or -f FILE"
            )
        url = normalize_url("--istiod", args.istiod or DEFAULT_ISTIOD)
        at = At.parse("--at", args.at) if getattr(args, "at", None) else None
    except ValueError as err:
        raise UsageError(str(err)) from None
    return IstiodSource(url, proxy_id(args.proxy), args.timeout, at)


def proxy_id(text: str) -> str:
    """PROXY as istiod's proxyID: `[pod/]NAME[.NAMESPACE]` (namespace default) or a node id."""
    value = text.strip().removeprefix("pod/")
    if "~" in value or "." in value:
        return value
    return f"{value}.default"


# -- executing -------------------------------------------------------------------------


def execute(request: Request, now: datetime.datetime | None = None) -> str:
    """The text to print; raises SourceError, or NothingToShow."""
    resource, source, fmt, filters = (
        request.resource,
        request.source,
        request.output,
        request.filters,
    )
    if resource is Resource.ENDPOINT:
        return _endpoints(source, fmt, filters.endpoint)
    dump = load(source, include_eds=resource in (Resource.EDS, Resource.ALL))
    short = fmt is OutputFormat.SHORT
    if resource is Resource.CLUSTER:
        if short:
            return clusters.table(dump, filters.cluster).render()
        return render.messages(clusters.selected(dump, filters.cluster), fmt)
    if resource is Resource.LISTENER:
        if short:
            return listeners.table(dump, filters.listener).render()
        return render.messages(listeners.selected(dump, filters.listener), fmt)
    if resource is Resource.ROUTE:
        if short:
            return routes.table(dump, filters.route).render()
        return render.messages(routes.selected(dump, filters.route), fmt)
    if resource is Resource.EDS:
        if short:
            return eds.table(dump, filters.endpoint).render()
        return render.messages(eds.selected(dump, filters.endpoint), fmt)
    if resource is Resource.SECRET:
        if short:
            result = secrets.table(dump, now=now)
            return result.render() if isinstance(result, Table) else result + "\n"
        section = dump.secrets()
        if section is None:
            raise NothingToShow("the config dump has no secrets section")
        return render.message(section, fmt)
    if resource is Resource.BOOTSTRAP:
        if short:
            return bootstrap.summary(dump)
        return render.message(bootstrap.section(dump), fmt)
    if short:
        return summary.full_summary(dump, filters, now)
    return render.message(dump.message, fmt)


def load(source: Source, include_eds: bool = False) -> ConfigDump:
    data = source.config_dump(include_eds=include_eds)
    try:
        return parse_config_dump(data)
    except DumpError as err:
        raise SourceError(f"{source.describe()}: {err}") from None


def _endpoints(source: Source, fmt: OutputFormat, flt: EndpointFilter) -> str:
    raw = source.cluster_statuses()
    if raw is not None:
        try:
            statuses = parse_cluster_statuses(raw)
        except DumpError as err:
            raise SourceError(f"{source.describe()}: {err}") from None
    else:
        assignments = load(source, include_eds=True).load_assignments()
        if assignments is None:
            raise SourceError(
                f"{source.describe()}: neither /clusters?format=json output nor a config dump"
                " with load assignments (save /config_dump?include_eds)"
            )
        statuses = endpoints.from_load_assignments(assignments)
    if fmt is OutputFormat.SHORT:
        return endpoints.table(statuses, flt).render()
    return render.messages(endpoints.selected(statuses, flt), fmt)
