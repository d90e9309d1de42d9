"""SNI-DNAT clusters of gateways with AUTO_PASSTHROUGH servers (Istio's
buildOutboundSniDnatClusters, pilot/pkg/networking/core/cluster.go).

For every mesh service port (MESH_EXTERNAL ones excepted) and DestinationRule subset, a copy of
the outbound cluster named in the DNS-SRV form `outbound_.<port>_.<subset>_.<host>` — the SNI a
sidecar's ISTIO_MUTUAL connection carries — with no TLS of its own: the gateway forwards the
client's mTLS bytes unopened. Their endpoints are the mTLS-capable ones only
(`pilot.networking.endpoint`), so nothing reaches a workload without a sidecar.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2

from pilot.model.proxy_view import ProxyView
from pilot.networking import naming
from pilot.networking.cluster import build_outbound_clusters


def build_sni_dnat_clusters(view: ProxyView) -> list[Any]:
    out: list[Any] = []
    for svc in view.scope.services:
        if svc.mesh_external:
            continue
        for cluster in build_outbound_clusters(view, svc):
            key = naming.parse_subset_key(cluster.name)
            if key is None:
                continue
            name = naming.dns_srv_subset_key(key.port, key.subset, key.host)
            cluster.name = name
            cluster.alt_stat_name = naming.stat_prefix(name)
            cluster.ClearField("transport_socket")
            cluster.ClearField("transport_socket_matches")
            if cluster.type == cluster_pb2.Cluster.EDS:
                cluster.eds_cluster_config.service_name = name
            elif cluster.HasField("load_assignment"):
                cluster.load_assignment.cluster_name = name
            out.append(cluster)
    return out
