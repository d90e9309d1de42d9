"""Host names as Istio treats them: short names, FQDNs, `*` wildcards and their ordering."""

from __future__ import annotations

from collections.abc import Iterable


def resolve_short_name(host: str, namespace: str, domain_suffix: str) -> str:
    """Istio's ResolveShortnameToFQDN: `reviews` in namespace `default` becomes
    `reviews.default.svc.cluster.local`; names with a dot, IPs and wildcards stay as they are."""
    if not host or "." in host or host == "*" or host.startswith("*"):
        return host
    # A bare host with no dot is a Kubernetes short name.
    return f"{host}.{namespace}.svc.{domain_suffix}"


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def matches(pattern: str, host: str) -> bool:
    """Whether `host` (possibly a wildcard itself) is covered by `pattern`.

    `*` matches everything; `*.example.com` matches `a.example.com`, `a.b.example.com` and the
    wildcard `*.x.example.com`, but not `example.com`.
    """
    if pattern == host or pattern == "*":
        return True
    if pattern.startswith("*"):
        suffix = pattern[1:]  # ".example.com"
        if host.startswith("*"):
            return host[1:].endswith(suffix)
        return host.endswith(suffix)
    return False


def intersects(a: str, b: str) -> bool:
    """Whether two host patterns can match a common host (Istio's Name.Matches)."""
    return matches(a, b) or matches(b, a)


def specificity_key(host: str) -> tuple[int, int, str]:
    """Sort key: exact hosts first, then wildcards from most to least specific."""
    if host.startswith("*"):
        return (1, -len(host), host)
    return (0, 0, host)


def most_specific_match(host: str, candidates: Iterable[str]) -> str | None:
    """The candidate pattern that matches `host` most specifically (exact wins)."""
    best: str | None = None
    for candidate in candidates:
        if not matches(candidate, host):
            continue
        if best is None or specificity_key(candidate) < specificity_key(best):
            best = candidate
    return best


def short_forms(hostname: str, proxy_namespace: str, domain_suffix: str) -> list[str]:
    """The extra names a sidecar may use for a Kubernetes service host (no port, no VIP).

    `reviews.default.svc.cluster.local` seen from namespace `default` also answers to
    `reviews`, `reviews.default` and `reviews.default.svc`; from another namespace, only
    `reviews.default` and `reviews.default.svc`.
    """
    suffix = f".svc.{domain_suffix}"
    if not hostname.endswith(suffix) or hostname.startswith("*"):
        return []
    base = hostname[: -len(suffix)]  # "reviews.default"
    parts = base.split(".")
    if len(parts) != 2:
        return []
    name, namespace = parts
    out = []
    if namespace == proxy_namespace:
        out.append(name)
    out.append(f"{name}.{namespace}")
    out.append(f"{name}.{namespace}.svc")
    return out
