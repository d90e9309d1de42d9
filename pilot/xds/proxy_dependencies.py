"""Does a change concern this proxy at all? (Istio's DefaultProxyNeedsPush, in part.)

A push skips a proxy only when every changed object provably cannot affect it:
- a Pod (its identity changed: labels, service account, IP) only the proxy it is the
  workload of, by the node id's NAME.NS or by the workload lookup (Istio's ProxyUpdate);
- a Gateway never affects a sidecar, a Sidecar never a router;
- a Sidecar, or a namespaced policy (PeerAuthentication, AuthorizationPolicy, ...), affects only
  proxies of its own namespace and of the root namespace's mesh-wide defaults;
- when the proxy's Sidecar scope imports hosts from named namespaces only, a VirtualService of
  another namespace cannot be selected by it, unless it is a delegate some root VirtualService
  refers to. (Services and DestinationRules of other namespaces can still matter: a
  VirtualService may route there.)
Anything else pushes; content-hash versions then keep unchanged resources from being sent.
"""

from __future__ import annotations

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.model.sidecar_scope import WILDCARD_NS
from pilot.xds.protocol import WatchState
from pkg.config.model import ConfigKey, Kind
from pkg.xds import typeurls

_NAMESPACED_POLICIES = frozenset(
    {
        Kind.SIDECAR,
        Kind.PEER_AUTHENTICATION,
        Kind.AUTHORIZATION_POLICY,
        Kind.REQUEST_AUTHENTICATION,
        Kind.TELEMETRY,
        Kind.WASM_PLUGIN,
        Kind.PROXY_CONFIG,
        Kind.ENVOY_FILTER,
    }
)


def _imported_namespaces(view: ProxyView) -> frozenset[str] | None:
    """Namespaces the scope imports hosts from; None when it imports from every namespace."""
    namespaces: set[str] = set()
    for egress in view.scope.egress:
        for ns in egress.hosts:
            if ns == WILDCARD_NS:
                return None
            namespaces.add(ns)
    return frozenset(namespaces)


def _concerns(view: ProxyView, key: ConfigKey, imported: frozenset[str] | None) -> bool:
    kind = key.kind
    if kind is Kind.SECRET:
        return _secret_concerns(view, key)
    if kind is Kind.POD:
        return _pod_concerns(view, key)
    if kind is Kind.GATEWAY:
        return view.is_router
    if kind is Kind.SIDECAR and view.is_router:
        return False
    root = view.push.mesh.root_namespace
    if kind in _NAMESPACED_POLICIES:
        return key.namespace in (view.namespace, root)
    if kind is Kind.VIRTUAL_SERVICE and imported is not None and not view.is_router:
        if (key.namespace, key.name) in view.push.virtual_services.delegate_refs:
            return True  # a delegate: its root may live in an imported namespace
        return key.namespace in imported or key.namespace == root
    return True


def _secret_concerns(view: ProxyView, key: ConfigKey) -> bool:
    """A renewed workload certificate (keyed by SPIFFE id) concerns the proxies of that
    identity; the trust bundle (no namespace) everyone; a Secret document its namespace."""
    if key.name.startswith("spiffe://"):
        identity = view.proxy.identity
        return identity is not None and identity.spiffe_id == key.name
    if not key.namespace:
        return True
    return key.namespace == view.namespace


def _pod_concerns(view: ProxyView, key: ConfigKey) -> bool:
    if key.namespace != view.namespace:
        return False
    if view.proxy.name == f"{key.name}.{key.namespace}":
        return True
    workload = view.workload
    return workload is not None and workload.kind == "Pod" and workload.name == key.name


def proxy_needs_push(view: ProxyView, req: PushRequest) -> bool:
    if req.forced or not req.configs_updated:
        return True
    imported = None if view.is_router else _imported_namespaces(view)
    return any(_concerns(view, key, imported) for key in req.configs_updated)


def incremental_names(req: PushRequest, state: WatchState) -> frozenset[str] | None:
    """For an endpoint-only push, the EDS names that can have changed: those of the services
    whose endpoints changed, plus any forced names. None means "regenerate everything"."""
    if not req.endpoints_only or state.type_url != typeurls.ENDPOINT or state.wildcard:
        return None
    by_host = state.names_by_host()
    picked = {name for key in req.configs_updated for name in by_host.get(key.name, ())}
    picked.update(state.force)
    return frozenset(picked)
