"""The Envoy bootstrap of an injected sidecar: `istioctl bootstrap`'s (pkg/proxy_bootstrap.py)
with the identity a pod can keep for its whole life, and Istio's sidecar ports.

There is no pilot-agent, so Envoy itself must keep authenticating to istiod while the
projected service-account token (audience `istio-ca`) is rotated by the kubelet. The ADS
service is a Google gRPC one with STS call credentials (RFC 8693): before a call, when its
cached access token is missing or close to expiry, gRPC reads `subject_token_path` afresh,
exchanges it at istiod's STS endpoint (`POST /token`, pilot/bootstrap/sts_http.py) and sends
the short-lived token istiod answers as `authorization: Bearer ...` on the ADS stream. istiod
issues access tokens that live less than gRPC's refresh threshold (60 s), so every new
stream — each reconnect — exchanges the token file as it is then: a rotated token is picked up
and a revoked or expired one stops working, with no restart.

The node identity comes from the kubelet: `$(INSTANCE_IP)`, `$(POD_NAME)` and
`$(POD_NAMESPACE)` are expanded in the container's arguments from downward-API env vars.
Static listeners serve Istio's sidecar ports from Envoy's admin: 15021 `/healthz/ready`
(Envoy's `/ready`: 200 once the first xDS config is in) and 15090 `/stats/prometheus`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pkg.proxy_bootstrap import (
    ISTIOD_SAN,
    BootstrapOptions,
    render_bootstrap,
    validate,
    xds_transport,
)

TOKEN_PATH = "/var/run/secrets/tokens/istio-token"
ROOT_CERT_PATH = "/var/run/secrets/istio/root-cert.pem"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ADMIN_PORT = 15000
HEALTH_PORT = 15021
PROMETHEUS_PORT = 15090
_ADMIN_CLUSTER = "admin"
_HCM = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "envoy.extensions.filters.http.router.v3.Router"


@dataclass(frozen=True, slots=True)
class StsCredentials:
    """Where the sidecar finds its rotating token and the mesh root, and where it exchanges
    the token (istiod's STS endpoint)."""

    sts_uri: str
    token_path: str = TOKEN_PATH
    root_cert_path: str = ROOT_CERT_PATH


def sidecar_bootstrap(
    opts: BootstrapOptions, sts: StsCredentials, listen: str = "0.0.0.0"
) -> dict[str, Any]:
    """The bootstrap for `opts`, whose ip/name/namespace may be `$(VAR)` placeholders;
    `listen` is the address of the health and Prometheus listeners (the pod's: all)."""
    # Everything but the kubelet's placeholders is checked as `istioctl bootstrap` does.
    validate(
        dataclasses.replace(
            opts,
            ip=_stand_in(opts.ip, "127.0.0.1"),
            name=_stand_in(opts.name, "pod"),
            namespace=_stand_in(opts.namespace, "default"),
        )
    )
    opts = dataclasses.replace(opts, insecure=False)
    bootstrap = render_bootstrap(
        opts, _ads_service(opts, sts), xds_transport({"filename": sts.root_cert_path})
    )
    static = bootstrap["static_resources"]
    static["clusters"].append(_admin_cluster(opts.admin_address, opts.admin_port))
    static["listeners"] = [
        _admin_route_listener("health", listen, HEALTH_PORT, "/healthz/ready", "/ready"),
        _admin_route_listener("prometheus", listen, PROMETHEUS_PORT, "/stats/prometheus", None),
    ]
    return bootstrap


def _stand_in(value: str, valid: str) -> str:
    return valid if value.startswith("$(") and value.endswith(")") else value


def _ads_service(opts: BootstrapOptions, sts: StsCredentials) -> dict[str, Any]:
    return {
        "google_grpc": {
            "target_uri": str(opts.xds_address),
            "stat_prefix": "xds",
            "channel_credentials": {
                "ssl_credentials": {"root_certs": {"filename": sts.root_cert_path}}
            },
            "call_credentials": [
                {
                    "sts_service": {
                        "token_exchange_service_uri": sts.sts_uri,
                        "subject_token_path": sts.token_path,
                        "subject_token_type": JWT_TOKEN_TYPE,
                    }
                }
            ],
            # istiod's certificate names ISTIOD_SAN whatever address is dialled.
            "channel_args": {
                "args": {"grpc.ssl_target_name_override": {"string_value": ISTIOD_SAN}}
            },
        }
    }


def _admin_cluster(host: str, port: int) -> dict[str, Any]:
    address = {"socket_address": {"address": host, "port_value": port}}
    return {
        "name": _ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {
            "cluster_name": _ADMIN_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _admin_route_listener(
    name: str, host: str, port: int, path: str, rewrite: str | None
) -> dict[str, Any]:
    route: dict[str, Any] = {"cluster": _ADMIN_CLUSTER}
    if rewrite is not None:
        route["prefix_rewrite"] = rewrite
    return {
        "name": name,
        "address": {"socket_address": {"address": host, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": f"type.googleapis.com/{_HCM}",
                            "stat_prefix": name,
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": name,
                                        "domains": ["*"],
                                        "routes": [{"match": {"prefix": path}, "route": route}],
                                    }
                                ]
                            },
                            "http_filters": [
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {"@type": f"type.googleapis.com/{_ROUTER}"},
                                }
                            ],
                        },
                    }
                ]
            }
        ],
    }
