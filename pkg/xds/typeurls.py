"""xDS type URLs and their short names (CDS, EDS, ...), as Istio names them in logs and metrics."""

from __future__ import annotations

from typing import Final

_PREFIX: Final = "type.googleapis.com/"

CLUSTER: Final = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT: Final = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER: Final = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE: Final = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET: Final = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"
EXTENSION_CONFIG: Final = _PREFIX + "envoy.config.core.v3.TypedExtensionConfig"
DEBUG_SYNCZ: Final = "istio.io/debug/syncz"
DEBUG_CONFIG_DUMP: Final = "istio.io/debug/config_dump"

SHORT_NAMES: Final = {
    CLUSTER: "CDS",
    ENDPOINT: "EDS",
    LISTENER: "LDS",
    ROUTE: "RDS",
    SECRET: "SDS",
    EXTENSION_CONFIG: "ECDS",
}
BY_SHORT_NAME: Final = {v: k for k, v in SHORT_NAMES.items()}

# Types whose requests may be wildcard (empty names = everything) and whose SotW responses
# must carry the complete set (omission is deletion).
WILDCARD_TYPES: Final = frozenset({CLUSTER, LISTENER})

# The order of a push: make before break (clusters and endpoints before what refers to them).
PUSH_ORDER: Final = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, EXTENSION_CONFIG)


def short_name(type_url: str) -> str:
    return SHORT_NAMES.get(type_url, type_url.rsplit(".", 1)[-1])


def metric_type(type_url: str) -> str:
    """Istio's lower-case type label in metrics (cds, eds, lds, rds, sds)."""
    return short_name(type_url).lower()
