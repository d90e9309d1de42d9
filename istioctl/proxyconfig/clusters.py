"""`proxy-config cluster`: istioctl's cluster table (`configdump/cluster.go`).

Columns `SERVICE FQDN  PORT  SUBSET  DIRECTION  TYPE  DESTINATION RULE`, padding 5. A name
that is an Istio subset key is split into its parts (an empty subset shows `-`); any other
name (`BlackHoleCluster`, `xds-grpc`) shows as `NAME - - -`. TYPE is the Envoy discovery
type; DESTINATION RULE is `NAME.NS` from the cluster's provenance metadata. Rows are sorted
by FQDN, subset, port, then direction. Filters match substrings of the cluster name, as
istioctl's: `--fqdn`, `--subset`, `--direction`, and `--port` as `|PORT|`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2

from istioctl.proxyconfig.configdump import ConfigDump, NothingToShow
from istioctl.proxyconfig.names import (
    describe_management,
    is_subset_key,
    parse_subset_key,
    sort_key,
)
from istioctl.proxyconfig.tabwriter import Table

HEADER = ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE")
PADDING = 5


class NoClusters(NothingToShow):
    def __str__(self) -> str:
        return "no clusters found"


@dataclass(frozen=True)
class ClusterFilter:
    fqdn: str = ""
    port: int = 0
    subset: str = ""
    direction: str = ""

    def matches(self, cluster: Any) -> bool:
        name: str = cluster.name
        if self.fqdn and self.fqdn not in name:
            return False
        if self.direction and self.direction not in name:
            return False
        if self.subset and self.subset not in name:
            return False
        return not self.port or f"|{self.port}|" in name


def sorted_clusters(dump: ConfigDump) -> list[Any]:
    """Every cluster istioctl shows, in its order; NoClusters when the dump has none."""
    clusters = dump.clusters()
    if not clusters:
        raise NoClusters()
    return sorted(clusters, key=lambda c: sort_key(c.name))


def selected(dump: ConfigDump, flt: ClusterFilter) -> list[Any]:
    """The clusters `-o json|yaml` prints."""
    return [c for c in sorted_clusters(dump) if flt.matches(c)]


def table(dump: ConfigDump, flt: ClusterFilter, *, with_name: bool = False) -> Table:
    """The table; `with_name` adds istioctl's `all` NAME column (`cluster/NAME`)."""
    rows: list[tuple[str, ...]] = []
    for cluster in selected(dump, flt):
        name = cluster.name
        kind = cluster_pb2.Cluster.DiscoveryType.Name(cluster.type)
        managed_by = describe_management(cluster.metadata if cluster.HasField("metadata") else None)
        if is_subset_key(name):
            key = parse_subset_key(name)
            cells: tuple[str, ...] = (
                key.fqdn,
                str(key.port),
                key.subset or "-",
                key.direction,
                kind,
                managed_by,
            )
            if with_name:
                cells = (f"cluster/{name}", *cells)
        elif with_name and name:
            # istioctl renames the cluster before printing, so both cells carry the prefix.
            cells = (f"cluster/{name}", f"cluster/{name}", "-", "-", "-", kind, managed_by)
        else:
            cells = (name, "-", "-", "-", kind, managed_by)
            if with_name:
                cells = (name, *cells)
        rows.append(cells)
    header = ("NAME", *HEADER) if with_name else HEADER
    return Table(header, tuple(rows), PADDING)
