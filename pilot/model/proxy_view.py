"""ProxyView: a proxy as one PushContext sees it (workload labels, services, scope, gateway).

Istio recomputes this "proxy state" before each push; here it is a pure function of the proxy
and the snapshot, memoized on the snapshot by proxy id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pilot.model.gateway import MergedGateway, ServiceTarget, merge_gateways
from pilot.model.proxy import NodeType, Proxy
from pilot.model.push_context import PushContext, WorkloadInfo
from pilot.model.sidecar_scope import SidecarScope


@dataclass(frozen=True, slots=True, eq=False)
class ProxyView:
    proxy: Proxy
    push: PushContext
    labels: Mapping[str, str]
    service_account: str
    workload: WorkloadInfo | None
    targets: tuple[ServiceTarget, ...]
    scope: SidecarScope
    gateway: MergedGateway | None

    @property
    def namespace(self) -> str:
        return self.proxy.namespace

    @property
    def is_router(self) -> bool:
        return self.proxy.type is NodeType.ROUTER


def _compute(proxy: Proxy, push: PushContext) -> ProxyView:
    workload = push.workload(proxy.namespace, proxy.ip_addresses, proxy.name)
    labels: Mapping[str, str] = proxy.labels
    service_account = proxy.service_account
    if workload is not None:
        labels = {**dict(proxy.labels), **dict(workload.labels)}
        service_account = workload.service_account or service_account
    targets = push.service_targets(proxy.ip_addresses)
    gateway = None
    if proxy.type is NodeType.ROUTER:
        scope = push.gateway_scope(proxy.namespace)
        gateway = merge_gateways(push.gateways, labels, targets)
    else:
        scope = push.sidecar_scope(proxy.namespace, labels)
    return ProxyView(proxy, push, labels, service_account, workload, targets, scope, gateway)


def proxy_view(proxy: Proxy, push: PushContext) -> ProxyView:
    key = (
        "view",
        proxy.id,
        proxy.service_account,
        tuple(sorted(proxy.labels.items())),
        proxy.identity,
    )
    return push.memo(key, lambda: _compute(proxy, push))
