"""AuthorizationPolicy → Envoy filters for one proxy (Istio's authz plugin and builder).

- `custom_http_filters(view)`: CUSTOM policies: per provider a shadow RBAC filter and an
  `envoy.filters.http.ext_authz` filter (or a DENY RBAC filter when the provider is unusable);
- `rbac_http_filters(view)`: ALLOW/DENY/AUDIT policies: `envoy.filters.http.rbac` filters in
  the order AUDIT (action LOG), DENY, ALLOW;
- `custom_network_filters(view)`, `rbac_network_filters(view)`: the same for TCP chains
  (`envoy.filters.network.rbac`, stat prefix `tcp.`; `envoy.filters.network.ext_authz` for
  gRPC providers only).

A proxy no policy applies to gets no filter at all. Principals are matched on the peer
certificate's URI SAN (`authenticated.principal_name`), so they need mTLS; request principals
and claims on the JWT payload `envoy.filters.http.jwt_authn` leaves in dynamic metadata under
`payload`. Results are memoized per push by (namespace, labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pilot.model.authorization import ApplicablePolicies
from pilot.model.proxy_view import ProxyView
from pilot.networking.authz import builder
from pilot.networking.authz.trust_domain import TrustDomainBundle


def applicable_policies(view: ProxyView) -> ApplicablePolicies:
    return view.push.authorization.policies_for(view.namespace, view.labels)


def _memoized(
    view: ProxyView, kind: str, build: Callable[[ApplicablePolicies, TrustDomainBundle], list[Any]]
) -> list[Any]:
    key = ("authz", kind, view.namespace, tuple(sorted(view.labels.items())))

    def compute() -> tuple[Any, ...]:
        policies = applicable_policies(view)
        if policies.empty:
            return ()
        mesh = view.push.mesh
        return tuple(
            build(policies, TrustDomainBundle.of(mesh.trust_domain, mesh.trust_domain_aliases))
        )

    return list(view.push.memo(key, compute))


def custom_http_filters(view: ProxyView) -> list[Any]:
    """ext_authz (with its shadow RBAC) HTTP filters of the proxy's CUSTOM policies."""
    return _memoized(view, "custom-http", lambda p, b: builder.custom_http(p, b, view.push))


def rbac_http_filters(view: ProxyView) -> list[Any]:
    """RBAC HTTP filters of the proxy's AUDIT, DENY and ALLOW policies, in that order."""
    return _memoized(view, "rbac-http", builder.rbac_http)


def custom_network_filters(view: ProxyView) -> list[Any]:
    """ext_authz (with its shadow RBAC) network filters of the proxy's CUSTOM policies."""
    return _memoized(view, "custom-tcp", lambda p, b: builder.custom_tcp(p, b, view.push))


def rbac_network_filters(view: ProxyView) -> list[Any]:
    """RBAC network filters of the proxy's AUDIT, DENY and ALLOW policies, in that order."""
    return _memoized(view, "rbac-tcp", builder.rbac_tcp)


__all__ = [
    "applicable_policies",
    "custom_http_filters",
    "custom_network_filters",
    "rbac_http_filters",
    "rbac_network_filters",
]
