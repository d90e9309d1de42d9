"""Names, hosts, addresses, ports and labels, checked as Istio and Kubernetes check them.

Functions named `check_*` return an error message, or None when the value is fine.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

_DNS1123_LABEL = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
_WILDCARD_LABEL = re.compile(r"\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?")
# Kubernetes object names (lower case only).
_K8S_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_K8S_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_K8S_DNS1035 = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def is_dns1123_label(value: str) -> bool:
    """Istio's IsDNS1123Label (letters of either case)."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_wildcard_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and _WILDCARD_LABEL.fullmatch(value) is not None


def check_k8s_subdomain(value: str) -> str | None:
    """Kubernetes' IsDNS1123Subdomain, used for most object names."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    if _K8S_SUBDOMAIN.fullmatch(value) is None:
        return (
            f"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            f"'-' or '.', and must start and end with an alphanumeric character: {value!r}"
        )
    return None


def check_k8s_label(value: str) -> str | None:
    """Kubernetes' IsDNS1123Label, used for Namespace names."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if _K8S_LABEL.fullmatch(value) is None:
        return (
            f"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            f"'-', and must start and end with an alphanumeric character: {value!r}"
        )
    return None


def check_k8s_dns1035(value: str) -> str | None:
    """Kubernetes' IsDNS1035Label, used for Service names."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if _K8S_DNS1035.fullmatch(value) is None:
        return (
            f"a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            f"with an alphabetic character, and end with an alphanumeric character: {value!r}"
        )
    return None


def check_qualified_name(key: str) -> str | None:
    """A Kubernetes label or annotation key: `[prefix/]name`."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return f"invalid key {key!r}: prefix part must be non-empty"
        if check_k8s_subdomain(prefix) is not None:
            return f"invalid key {key!r}: prefix part must be a DNS subdomain"
    if not name:
        return f"invalid key {key!r}: name part must be non-empty"
    if len(name) > 63:
        return f"invalid key {key!r}: name part must be no more than 63 characters"
    if _QUALIFIED_NAME.fullmatch(name) is None:
        return (
            f"invalid key {key!r}: name part must consist of alphanumeric characters, '-', '_' or "
            f"'.', and must start and end with an alphanumeric character"
        )
    return None


def check_label_value(value: str) -> str | None:
    if len(value) > 63:
        return f"invalid label value {value!r}: must be no more than 63 characters"
    if _LABEL_VALUE.fullmatch(value) is None:
        return (
            f"invalid label value {value!r}: must be empty or consist of alphanumeric characters, "
            f"'-', '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


def check_labels(labels: Mapping[str, str]) -> list[str]:
    """Istio's labels.Instance.Validate: keys and values as Kubernetes label keys/values."""
    problems = []
    for key, value in labels.items():
        key_problem = check_qualified_name(key)
        if key_problem is not None:
            problems.append(f"invalid tag key: {key!r}")
        elif check_label_value(value) is not None:
            problems.append(f"invalid tag value: {value!r}")
    return problems


# ---- domains ---------------------------------------------------------------------------------


def _dns_preconditions(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {name!r} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def _check_dns1123_labels(domain: str) -> str | None:
    parts = domain.split(".")
    if parts[-1].isdigit():
        return (
            f"domain name {domain!r} invalid (top level domain {parts[-1]!r} cannot be all-numeric)"
        )
    for index, label in enumerate(parts):
        if index == len(parts) - 1 and label == "":
            return None  # a trailing dot is allowed
        if not is_dns1123_label(label):
            return f"domain name {domain!r} invalid (label {label!r} invalid)"
    return None


def check_fqdn(name: str) -> str | None:
    return _dns_preconditions(name) or _check_dns1123_labels(name)


def check_wildcard_domain(domain: str) -> str | None:
    """A domain name that may start with a wildcard label (`*`, `*.x.com`, `*-x.com`)."""
    problem = _dns_preconditions(domain)
    if problem:
        return problem
    first, dot, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f"domain name {domain!r} invalid (label {first!r} invalid)"
    return _check_dns1123_labels(rest) if dot else None


def check_wildcard_domain_for_gateway_vs(sni: bool, domain: str) -> str | None:
    """Hosts of a VirtualService bound to gateways: also `outbound_.<port>_._.<host>` for SNI."""
    problem = _dns_preconditions(domain)
    if problem:
        return problem
    if sni and domain.startswith("outbound_"):
        parts = domain.split("_")
        fmt = "outbound_.<PORT>_._.<HOSTNAME>"
        if len(parts) < 4:
            return f"domain name {domain} invalid, should follow '{fmt}' format"
        port, hostname = parts[1].strip("."), parts[3].strip(".")
        if parts[0] != "outbound":
            return f"domain name {domain!r} invalid (label {parts[0]!r} invalid)"
        if re.search(r"[0-9]", port) is None:
            return f"domain name {domain!r} invalid (label {port!r} invalid). should follow {fmt}"
        if re.search(r"[a-zA-Z]", hostname) is None:
            return (
                f"domain name {domain!r} invalid (label {hostname!r} invalid). should follow {fmt}"
            )
        return None
    return check_wildcard_domain(domain)


def check_partial_wildcard(host: str) -> str | None:
    if "*" in host and len(host) != 1 and not host.startswith("*."):
        return f"partial wildcard {host!r} not allowed"
    return None


def _check_sidecar_or_gateway_host(hostname: str, is_gateway: bool) -> list[str]:
    problems = []
    if hostname != "*" and "." not in hostname:
        problems.append("short names (non FQDN) are not allowed")
    problem = check_wildcard_domain(hostname)
    if problem and not (is_gateway and is_ip(hostname)):
        problems.append(problem)
    partial = check_partial_wildcard(hostname)
    if partial:
        problems.append(partial)
    return problems


def check_namespace_slash_host(host: str, is_gateway: bool, gateway_semantics: bool) -> list[str]:
    """`namespace/dnsName` hosts of Gateway servers (plain hosts allowed) and Sidecar egress."""
    namespace, slash, name = host.partition("/")
    if not slash:
        if is_gateway:
            return _check_sidecar_or_gateway_host(host, True)
        return ["host must be of form namespace/dnsName"]
    problems = []
    if not namespace or not name:
        problems.append("config namespace and dnsName in host entry cannot be empty")
    if not is_gateway:
        ns = namespace.removeprefix("~")
        if ns not in ("", "*", ".") and not is_dns1123_label(ns):
            problems.append(f"invalid namespace value {namespace!r} in sidecar")
    elif (
        namespace not in ("*", ".")
        and not (namespace == "~" and gateway_semantics)
        and not is_dns1123_label(namespace)
    ):
        problems.append(f"invalid namespace value {namespace!r} in gateway")
    return problems + _check_sidecar_or_gateway_host(name, is_gateway)


def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: whether two (possibly wildcard) hosts overlap."""
    if a.startswith("*"):
        if b.startswith("*"):
            return a[1:].endswith(b[1:]) if len(a) >= len(b) else b[1:].endswith(a[1:])
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio's host.Name.SubsetOf: every host matched by `a` is matched by `b`."""
    if a.startswith("*"):
        return b.startswith("*") and len(a) >= len(b) and a[1:].endswith(b[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


# ---- addresses and ports --------------------------------------------------------------------


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_ip(value: str) -> str | None:
    return None if is_ip(value) else f"{value} is not a valid IP"


def check_ip_subnet(value: str) -> str | None:
    """An address or a CIDR block (`1.2.3.4`, `10.0.0.0/8`, `2001:db8::/32`)."""
    if value.count("/") == 1:
        address, _, bits = value.partition("/")
        if not is_ip(address) or not bits.isdigit():
            return f"{value} is not a valid CIDR block"
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value} is not a valid CIDR block"
        return None
    return check_ip(value)


def check_port(port: int) -> str | None:
    if 1 <= port <= 65535:
        return None
    return f"port number {port} must be in the range 1..65535"


def check_port_name(name: str) -> str | None:
    return None if is_dns1123_label(name) else f"invalid port name: {name}"


def check_unix_address(address: str) -> str | None:
    """The path part of a `unix://` address: absolute and not a directory, or `@abstract`."""
    if not address:
        return "unix address must not be empty"
    if address.startswith("@"):
        return None
    if not address.startswith("/") or address.endswith("/"):
        return f"{address} is not an absolute path to a file"
    return None


# ---- protocols -------------------------------------------------------------------------------

_PROTOCOLS = {
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "GRPC",
    "grpc-web": "GRPC-Web",
    "http": "HTTP",
    "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2",
    "https": "HTTPS",
    "tls": "TLS",
    "mongo": "Mongo",
    "redis": "Redis",
    "mysql": "MySQL",
}
UNSUPPORTED = "UnsupportedProtocol"


def parse_protocol(name: str) -> str:
    """Istio's protocol.Parse: a canonical protocol name, or `UnsupportedProtocol`."""
    return _PROTOCOLS.get(name.lower(), UNSUPPORTED)


def is_http(protocol: str) -> bool:
    return protocol in ("HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web")


def is_tls(protocol: str) -> bool:
    return protocol in ("HTTPS", "TLS")


def is_tcp(protocol: str) -> bool:
    return protocol in ("TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL")


def check_protocol(name: str) -> str | None:
    """Empty means protocol sniffing; anything else must be a known protocol."""
    if name and parse_protocol(name) == UNSUPPORTED:
        return f"unsupported protocol: {name}"
    return None
