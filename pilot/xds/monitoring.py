"""istiod's xDS and push metrics, with Istio's names, types, labels and buckets, served at
/metrics (Istio: pilot/pkg/xds/monitoring.go, pkg/xds/monitoring.go, pilot/pkg/model/
push_context.go, pilot/pkg/bootstrap/monitoring.go, pkg/version/stats.go).

Metrics live in the process registry of `pkg.monitoring`, shared with the CA's citadel_* ones,
and are exported as Istio exports them (counters without `_total`). Who records what:
- `XdsMetrics` (pilot/xds/metrics_observer.py), an observer of the xDS streams: pilot_xds,
  pilot_xds_pushes, pilot_xds_push_time, pilot_xds_config_size_bytes, the reject counters
  and pilot_xds_expired_nonce;
- the push pipeline, where the time is spent (debounce.py, server.py): pilot_debounce_time,
  pilot_pushcontext_init_seconds, pilot_proxy_queue_time, pilot_xds_send_time,
  pilot_proxy_convergence_time, pilot_push_triggers, pilot_inbound_updates, pilot_services,
  pilot_virt_services, the `*_senderr` pushes, pilot_xds_write_timeout and
  pilot_total_xds_internal_errors.
Hot-path callers use the children resolved here once (`PUSH_TRIGGERS_BY_REASON`, ...), never
`.labels(...)` per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from pilot.model.push_request import PushRequest, TriggerReason
from pkg.monitoring import CONTENT_TYPE, REGISTRY, exposition
from pkg.version import VERSION
from pkg.xds import typeurls

# Istio's buckets (seconds, and bytes for the config size).
PUSH_TIME_BUCKETS: Final = (0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30)
SEND_TIME_BUCKETS: Final = (0.01, 0.1, 1, 3, 5, 10, 20, 30)
PROXY_TIME_BUCKETS: Final = (0.1, 0.5, 1, 3, 5, 10, 20, 30)
DEBOUNCE_BUCKETS: Final = (0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30)
PUSHCONTEXT_INIT_BUCKETS: Final = (0.01, 0.1, 0.5, 1, 3, 5)
CONFIG_SIZE_BUCKETS: Final = (1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000)

XDS_CLIENTS = Gauge(
    "pilot_xds", "Number of endpoints connected to this pilot using XDS.", ["version"],
    registry=REGISTRY,
)  # fmt: skip
XDS_PUSHES = Counter(
    "pilot_xds_pushes", "Pilot build and send errors for lds, rds, cds and eds.", ["type"],
    registry=REGISTRY,
)  # fmt: skip
PUSH_TIME = Histogram(
    "pilot_xds_push_time", "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
    ["type"], buckets=PUSH_TIME_BUCKETS, registry=REGISTRY,
)  # fmt: skip
SEND_TIME = Histogram(
    "pilot_xds_send_time", "Total time in seconds Pilot takes to send generated configuration.",
    buckets=SEND_TIME_BUCKETS, registry=REGISTRY,
)  # fmt: skip
CONFIG_SIZE = Histogram(
    "pilot_xds_config_size_bytes", "Distribution of configuration sizes pushed to clients",
    ["type"], buckets=CONFIG_SIZE_BUCKETS, registry=REGISTRY,
)  # fmt: skip
CONVERGENCE_TIME = Histogram(
    "pilot_proxy_convergence_time",
    "Delay in seconds between config change and a proxy receiving all required configuration.",
    buckets=PROXY_TIME_BUCKETS, registry=REGISTRY,
)  # fmt: skip
QUEUE_TIME = Histogram(
    "pilot_proxy_queue_time",
    "Time in seconds, a proxy is in the push queue before being dequeued.",
    buckets=PROXY_TIME_BUCKETS, registry=REGISTRY,
)  # fmt: skip
DEBOUNCE_TIME = Histogram(
    "pilot_debounce_time",
    "Delay in seconds between the first config enters debouncing and the merged push request "
    "is pushed into the push queue (includes pushcontext_init_seconds).",
    buckets=DEBOUNCE_BUCKETS, registry=REGISTRY,
)  # fmt: skip
PUSHCONTEXT_INIT = Histogram(
    "pilot_pushcontext_init_seconds", "Total time in seconds Pilot takes to init pushContext.",
    buckets=PUSHCONTEXT_INIT_BUCKETS, registry=REGISTRY,
)  # fmt: skip
PUSH_TRIGGERS = Counter(
    "pilot_push_triggers",
    "Total number of times a push was triggered, labeled by reason for the push.", ["type"],
    registry=REGISTRY,
)  # fmt: skip
INBOUND_UPDATES = Counter(
    "pilot_inbound_updates", "Total number of updates received by pilot.", ["type"],
    registry=REGISTRY,
)  # fmt: skip
SERVICES = Gauge("pilot_services", "Total services known to pilot.", registry=REGISTRY)
VIRT_SERVICES = Gauge(
    "pilot_virt_services", "Total virtual services known to pilot.", registry=REGISTRY
)
TOTAL_REJECTS = Counter(
    "pilot_total_xds_rejects", "Total number of XDS responses from pilot rejected by proxy.",
    ["type"], registry=REGISTRY,
)  # fmt: skip
# Istio keeps these four for compatibility, as gauges that only go up, by node and gRPC code.
_REJECT_LABELS = ["node", "err"]
CDS_REJECT = Gauge("pilot_xds_cds_reject", "Pilot rejected CDS configs.", _REJECT_LABELS,
                   registry=REGISTRY)  # fmt: skip
EDS_REJECT = Gauge("pilot_xds_eds_reject", "Pilot rejected EDS.", _REJECT_LABELS,
                   registry=REGISTRY)  # fmt: skip
LDS_REJECT = Gauge("pilot_xds_lds_reject", "Pilot rejected LDS.", _REJECT_LABELS,
                   registry=REGISTRY)  # fmt: skip
RDS_REJECT = Gauge("pilot_xds_rds_reject", "Pilot rejected RDS.", _REJECT_LABELS,
                   registry=REGISTRY)  # fmt: skip
EXPIRED_NONCE = Counter(
    "pilot_xds_expired_nonce", "Total number of XDS requests with an expired nonce.", ["type"],
    registry=REGISTRY,
)  # fmt: skip
WRITE_TIMEOUT = Counter(
    "pilot_xds_write_timeout", "Pilot XDS response write timeouts.", registry=REGISTRY
)
INTERNAL_ERRORS = Counter(
    "pilot_total_xds_internal_errors", "Total number of internal XDS errors in pilot.",
    registry=REGISTRY,
)  # fmt: skip
PILOT_INFO = Gauge(
    "pilot_info", "Pilot version and build information.", ["version"], registry=REGISTRY
)
ISTIO_BUILD = Gauge(
    "istio_build", "Istio component build info", ["component", "tag"], registry=REGISTRY
)

REJECTS_BY_TYPE: Final[Mapping[str, Gauge]] = MappingProxyType(
    {
        typeurls.CLUSTER: CDS_REJECT,
        typeurls.ENDPOINT: EDS_REJECT,
        typeurls.LISTENER: LDS_REJECT,
        typeurls.ROUTE: RDS_REJECT,
    }
)
_SEND_ERROR_TYPES: Final = frozenset(REJECTS_BY_TYPE)  # Istio counts *_senderr for these four

# gRPC status codes by number, named as Go's codes.Code.String() (Istio's `err` label).
GRPC_CODE_NAMES: Final = (
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
)  # fmt: skip


def metric_type(type_url: str) -> str:
    """Istio's GetMetricType: cds/eds/lds/rds/sds/ecds, else the type URL itself."""
    short = typeurls.SHORT_NAMES.get(type_url)
    return short.lower() if short is not None else type_url


def grpc_code_name(code: int) -> str:
    return GRPC_CODE_NAMES[code] if 0 <= code < len(GRPC_CODE_NAMES) else f"Code({code})"


# The children hot paths use, resolved once.
PUSH_TRIGGERS_BY_REASON: Final[Mapping[TriggerReason, Counter]] = MappingProxyType(
    {reason: PUSH_TRIGGERS.labels(type=reason.value) for reason in TriggerReason}
)
_INBOUND_TYPE: Final = {TriggerReason.ENDPOINT: "eds", TriggerReason.SERVICE: "svc"}
INBOUND_BY_REASON: Final[Mapping[TriggerReason, Counter]] = MappingProxyType(
    {
        reason: INBOUND_UPDATES.labels(type=_INBOUND_TYPE.get(reason, "config"))
        for reason in TriggerReason
    }
)


def record_inbound(request: PushRequest) -> None:
    """A config, service or endpoint event reached the debounce (Istio's ConfigUpdate)."""
    for reason, count in request.reasons.items():
        INBOUND_BY_REASON[reason].inc(count)


def record_triggers(request: PushRequest) -> None:
    """A proxy was dequeued for a push with these reasons (Istio's recordPushTriggers)."""
    for reason, count in request.reasons.items():
        PUSH_TRIGGERS_BY_REASON[reason].inc(count)


def record_send_error(type_url: str) -> None:
    """A response could not be written for a reason other than the stream closing."""
    if type_url in _SEND_ERROR_TYPES:
        XDS_PUSHES.labels(type=f"{metric_type(type_url)}_senderr").inc()


def record_build_info(component: str = "pilot") -> None:
    """pilot_info and istio_build, set once at start (Istio's addMonitor)."""
    PILOT_INFO.labels(version=VERSION).set(1)
    ISTIO_BUILD.labels(component=component, tag=VERSION).set(1)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE})


def metrics_app() -> web.Application:
    app = web.Application()
    app.router.add_get("", _metrics)
    app.router.add_get("/", _metrics)
    return app
