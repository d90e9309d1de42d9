"""Every Envoy resource name pyistio makes, in Istio's formats (istio-facts.md §3).

Names are part of the contract: istioctl parses `direction|port|subset|host`, users grep for
`outbound|9080|v1|reviews.default.svc.cluster.local`, and route configurations are named by port.
No other module builds these strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

BLACKHOLE_CLUSTER = "BlackHoleCluster"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughCluster"

VIRTUAL_OUTBOUND_LISTENER = "virtualOutbound"
VIRTUAL_INBOUND_LISTENER = "virtualInbound"

# Filter chain names on virtualOutbound / virtualInbound.
VIRTUAL_OUTBOUND_BLACKHOLE_CHAIN = "virtualOutbound-blackhole"
VIRTUAL_OUTBOUND_CATCHALL_CHAIN = "virtualOutbound-catchall-tcp"
VIRTUAL_INBOUND_BLACKHOLE_CHAIN = "virtualInbound-blackhole"
VIRTUAL_INBOUND_CATCHALL_HTTP_CHAIN = "virtualInbound-catchall-http"

# Route names.
DEFAULT_ROUTE = "default"
ALLOW_ANY_ROUTE = "allow_any"
BLOCK_ALL_ROUTE = "block_all"
ALLOW_ANY_VHOST = "allow_any"
BLOCK_ALL_VHOST = "block_all"

# SDS secret names.
SDS_DEFAULT = "default"
SDS_ROOT_CA = "ROOTCA"

# The source address of inbound passthrough traffic, so iptables does not loop it back.
INBOUND_PASSTHROUGH_BIND_IPV4 = "127.0.0.6"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


def outbound_cluster(port: int, subset: str, host: str) -> str:
    return f"outbound|{port}|{subset}|{host}"


def inbound_cluster(port: int) -> str:
    """`inbound|<target port>||`: Istio names inbound clusters by the workload's port."""
    return f"inbound|{port}||"


def dns_srv_subset_key(port: int, subset: str, host: str) -> str:
    """The DNS-SRV form (`outbound_.9080_._.reviews...`), Istio's default ISTIO_MUTUAL SNI."""
    return f"outbound_.{port}_.{subset}_.{host}"


@dataclass(frozen=True, slots=True)
class SubsetKey:
    direction: str
    port: int
    subset: str
    host: str


def parse_subset_key(name: str) -> SubsetKey | None:
    """Parse `direction|port|subset|host` (or the DNS-SRV form); None if it is neither."""
    if name.count("|") == 3:
        direction, port, subset, host = name.split("|")
    elif name.count("_.") >= 3:
        direction, port, subset, host = name.split("_.", 3)
    else:
        return None
    try:
        number = int(port)
    except ValueError:
        return None
    return SubsetKey(direction, number, subset, host)


def listener_name(bind: str, port: int) -> str:
    """Outbound/inbound per-port listeners: `0.0.0.0_9080`, `10.96.0.7_3306`."""
    return f"{bind}_{port}"


def gateway_chain_name(route_name: str) -> str:
    """A gateway filter chain is named after the route configuration its HTTP connection
    manager fetches (`http.8080`, `https.443.https.gw.ns`): Istio leaves these chains nameless,
    a name tells SNI chains apart in config dumps and stats."""
    return route_name


def gateway_stat_prefix(listener: str) -> str:
    """Stat prefix of a gateway HTTP connection manager: `outbound_0.0.0.0_8080;`."""
    return stat_prefix(f"outbound_{listener}")


def inbound_chain_name(port: int) -> str:
    return f"0.0.0.0_{port}"


def sidecar_http_route_name(port: int) -> str:
    """The route configuration shared by HTTP services on one port: `"9080"`."""
    return str(port)


def sniffed_route_name(host: str, port: int) -> str:
    """Route configuration of a protocol-sniffed service bound to its VIP: `host:port`."""
    return f"{host}:{port}"


def virtual_host_name(host: str, port: int) -> str:
    return f"{host}:{port}"


def inbound_virtual_host_name(port: int) -> str:
    return f"inbound|http|{port}"


def stat_prefix(name: str) -> str:
    """Istio's alt_stat_name / delimited stat prefix: the name followed by `;`."""
    return f"{name};"


def inbound_stat_prefix(port: int) -> str:
    return f"inbound_0.0.0.0_{port};"


def outbound_stat_prefix(port: int) -> str:
    return f"outbound_0.0.0.0_{port}"


def config_path(group: str, version: str, kind_kebab: str, namespace: str, name: str) -> str:
    """Provenance metadata value: `/apis/networking.istio.io/v1/namespaces/ns/virtual-service/n`."""
    return f"/apis/{group}/{version}/namespaces/{namespace}/{kind_kebab}/{name}"


def virtual_service_config_path(namespace: str, name: str) -> str:
    return config_path("networking.istio.io", "v1", "virtual-service", namespace, name)


def destination_rule_config_path(namespace: str, name: str) -> str:
    return config_path("networking.istio.io", "v1", "destination-rule", namespace, name)


def gateway_config_path(namespace: str, name: str) -> str:
    return config_path("networking.istio.io", "v1", "gateway", namespace, name)


# RequestAuthentication → envoy.filters.http.jwt_authn. A verified token's payload is dynamic
# metadata of the filter's namespace under one key for every provider (Istio's
# EnvoyJwtFilterPayload): authorization matches `request.auth.*` and routes match
# `@request.auth.claims.*` at path [JWT_PAYLOAD_METADATA_KEY, <claim>, ...] in namespace
# JWT_AUTHN_FILTER.
JWT_AUTHN_FILTER = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD_METADATA_KEY = "payload"


def jwt_provider_name(index: int) -> str:
    """A jwt_authn provider: one per JWT rule, in issuer order (`origins-0`, ...), as Istio."""
    return f"origins-{index}"


def authz_policy_name(namespace: str, name: str, rule: int, prefix: str = "") -> str:
    """Key of an AuthorizationPolicy rule in an RBAC filter's policies:
    `ns[foo]-policy[httpbin]-rule[0]`; CUSTOM rules carry `istio-ext-authz-<provider>-` in front
    (the ext_authz filter keys off that prefix)."""
    return f"{prefix}ns[{namespace}]-policy[{name}]-rule[{rule}]"


# Proxyless gRPC (Istio's grpcgen). A gRPC client dialing `xds:///HOST:PORT` asks LDS for
# `HOST:PORT` (as it spelled it: `echo`, `echo.ns`, or the FQDN); the ApiListener answering it
# names its route configuration like the service's default cluster, `outbound|PORT||FQDN`.


def grpc_listener_name(host: str, port: int) -> str:
    return f"{host}:{port}"


def grpc_route_name(port: int, host: str) -> str:
    return outbound_cluster(port, "", host)


def is_dns_srv_subset_key(name: str) -> bool:
    """`outbound_.9080_._.reviews...`: the name of a gateway's SNI-DNAT cluster (Istio's
    IsDNSSrvSubsetKey), as opposed to `outbound|9080||reviews...`."""
    return name.count("_.") >= 3 and "|" not in name
