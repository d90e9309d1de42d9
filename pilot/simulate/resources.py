"""One proxy's decoded Envoy resources, as the simulator reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

HCM_TYPE = "type.googleapis.com/" + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name


class ProxyResources(Protocol):
    """Decoded Envoy messages by name: what a proxy was (or would be) sent."""

    @property
    def listeners(self) -> Mapping[str, Any]: ...

    @property
    def routes(self) -> Mapping[str, Any]: ...

    @property
    def clusters(self) -> Mapping[str, Any]: ...

    @property
    def endpoints(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Resources:
    """A plain `ProxyResources` (istiod builds one from the generators' output)."""

    listeners: Mapping[str, Any] = field(default_factory=dict)
    routes: Mapping[str, Any] = field(default_factory=dict)
    clusters: Mapping[str, Any] = field(default_factory=dict)
    endpoints: Mapping[str, Any] = field(default_factory=dict)


def eds_service_name(cluster: Any) -> str:
    return str(cluster.eds_cluster_config.service_name or cluster.name)
