"""The security filters of a proxy's server side (sidecar inbound chains and gateways), in
Istio's order (listener_builder.go buildHTTPConnectionManager, networkfilter.go):

HTTP:  CUSTOM authz (shadow RBAC + ext_authz) → authn (jwt_authn) → RBAC (AUDIT, DENY, ALLOW)
TCP:   CUSTOM authz (shadow RBAC + ext_authz) → RBAC (AUDIT, DENY, ALLOW), before tcp_proxy

A proxy no policy applies to gets no filter, so its listeners are unchanged.
"""

from __future__ import annotations

from typing import Any

from pilot.model.proxy_view import ProxyView
from pilot.networking.authn import jwt_http_filters
from pilot.networking.authz import (
    custom_http_filters,
    custom_network_filters,
    rbac_http_filters,
    rbac_network_filters,
)


def inbound_http_filters(view: ProxyView) -> list[Any]:
    """HTTP filters to run before fault/cors/router on every server-side HCM of the proxy."""
    return [
        *custom_http_filters(view),
        # authn: RequestAuthentication's jwt_authn, after CUSTOM authz and before RBAC (RBAC
        # reads the JWT payload jwt_authn leaves in metadata).
        *jwt_http_filters(view),
        *rbac_http_filters(view),
    ]


def inbound_network_filters(view: ProxyView) -> list[Any]:
    """Network filters to put before tcp_proxy on every server-side TCP chain of the proxy."""
    return [*custom_network_filters(view), *rbac_network_filters(view)]
