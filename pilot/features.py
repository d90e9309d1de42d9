"""Istio's tunables, read once from the environment with Istio's names and meanings.

Read in bootstrap and passed down as settings, never read at import time elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from pkg.config.types import Duration
from pkg.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Features:
    # PILOT_DEBOUNCE_AFTER: quiet period before a push (default 100ms).
    debounce_after: float = 0.1
    # PILOT_DEBOUNCE_MAX: longest a push waits while events keep coming (default 10s).
    debounce_max: float = 10.0
    # PILOT_ENABLE_EDS_DEBOUNCE: debounce endpoint-only changes too (default true).
    enable_eds_debounce: bool = True
    # PILOT_PUSH_THROTTLE: concurrent per-proxy pushes; 0 = min(15 + 5 * cores, 100).
    push_throttle: int = 0
    # PILOT_XDS_SEND_TIMEOUT: a stream whose proxy has not taken one response within this is
    # dropped; 0 = never. Istio's historical name; its default was 0, ours
    # is 30s so a proxy that stops reading cannot pin a stream forever.
    xds_send_timeout: float = 30.0
    # DEFAULT_WORKLOAD_CERT_TTL: lifetime of workload certificates istiod issues (24h).
    workload_cert_ttl: float = 24 * 3600.0
    # MAX_WORKLOAD_CERT_TTL: longest TTL a CSR may ask for (90 days).
    max_workload_cert_ttl: float = 90 * 24 * 3600.0
    # SECRET_GRACE_PERIOD_RATIO: renew a certificate when this fraction of its life is left.
    secret_grace_period_ratio: float = 0.5
    # ROOT_CA_DIR: plugged-in CA files (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem).
    root_ca_dir: str = "./etc/cacerts"
    # CITADEL_SELF_SIGNED_CA_CERT_TTL: lifetime of the self-signed root (10 years).
    self_signed_ca_cert_ttl: float = 3650 * 24 * 3600.0
    # CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL: how often root rotation is checked (1h).
    root_cert_check_interval: float = 3600.0
    # CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE: rotate the root when less than
    # this percentage of its lifetime is left (20).
    root_cert_grace_percentile: int = 20
    # ISTIO_MULTIROOT_MESH: accept a changed root-cert.pem in ROOT_CA_DIR while running (a root
    # added to or dropped from the trust bundle: plugged-in root rotation); false.
    multi_root_mesh: bool = False
    # PILOT_REVERT_REJECTED_CONFIG: whose NACKs may revert an object to its last accepted
    # version for the whole mesh: "authenticated" (proxies with a verified identity, on the
    # secure port), "all" (also anonymous plaintext streams: trusted networks only), "none".
    revert_rejected_config: str = "authenticated"
    # UNSAFE_PILOT_XDS_CACHE_VERIFY: rebuild every generated answer from scratch and compare
    # with the shared, cached one; a difference raises (for tests; costly).
    xds_cache_verify: bool = False
    # TOKEN_AUDIENCES: audiences accepted in bearer tokens (istio-ca).
    token_audiences: tuple[str, ...] = ("istio-ca",)
    # PILOT_JWT_PUB_KEY_REFRESH_INTERVAL: how often istiod refetches RequestAuthentication
    # JWKS (20m).
    jwt_pub_key_refresh_interval: float = 20 * 60.0
    # JWKS_RESOLVER_INSECURE_SKIP_VERIFY: fetch https JWKS without verifying the server (false).
    jwks_resolver_insecure_skip_verify: bool = False
    # BLOCKED_CIDRS_IN_JWKS_URIS: address ranges JWKS fetches may not connect to, on top of the
    # always-blocked link-local and cloud metadata addresses (comma separated CIDRs).
    blocked_cidrs_in_jwks_uris: tuple[str, ...] = ()
    # PILOT_SEND_UNHEALTHY_ENDPOINTS: send not-ready (UNHEALTHY) Kubernetes endpoints to
    # proxies, marked unhealthy, instead of leaving them out (false). Terminating endpoints
    # are never sent.
    send_unhealthy_endpoints: bool = False
    # PILOT_HISTORY_MAX_BYTES (ours): memory budget of the history of what each proxy was
    # sent (pilot/xds/history.py; `istioctl proxy-config --at`, `istioctl x diff`), in bytes
    # (64 MiB); the oldest snapshots go first. 0 turns the history off.
    history_max_bytes: int = 64 << 20

    # LEADER_ELECTION_LEASE_DURATION (ours; Istio hard-codes 30s): the Lease of the Kubernetes
    # singleton duties (CA root, istio-ca-root-cert ConfigMaps); renew deadline is half of it,
    # retry period a quarter, as Istio's.
    leader_election_lease_duration: float = 30.0

    @property
    def effective_push_throttle(self) -> int:
        if self.push_throttle > 0:
            return self.push_throttle
        return min(15 + 5 * (os.cpu_count() or 1), 100)


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return Duration.parse(raw).total_seconds()
    except ValueError as e:
        raise ConfigError(f"{name}={raw!r}: {e}") from None


def _one_of(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = (env.get(name) or default).strip().lower()
    if raw not in allowed:
        raise ConfigError(f"{name}={env.get(name)!r}: must be one of {', '.join(allowed)}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "t", "yes"):
        return True
    if lowered in ("0", "false", "f", "no"):
        return False
    raise ConfigError(f"{name}={raw!r}: must be true or false")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be an integer") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r}: must not be negative")
    return value


def _ratio(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be a number") from None
    if not 0 < value < 1:
        raise ConfigError(f"{name}={raw!r}: must be between 0 and 1")
    return value


def _positive_duration(env: Mapping[str, str], name: str, default: float) -> float:
    value = _duration(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name}={env.get(name)!r}: must be positive")
    return value


def _cidrs(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma separated CIDRs (an invalid one is an error: dropping it would unblock a range)."""
    out = []
    for item in (env.get(name) or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as e:
            raise ConfigError(f"{name}={env.get(name)!r}: {e}") from None
    return tuple(out)


def from_env(env: Mapping[str, str] | None = None) -> Features:
    env = os.environ if env is None else env
    return Features(
        debounce_after=_duration(env, "PILOT_DEBOUNCE_AFTER", 0.1),
        debounce_max=_duration(env, "PILOT_DEBOUNCE_MAX", 10.0),
        enable_eds_debounce=_bool(env, "PILOT_ENABLE_EDS_DEBOUNCE", True),
        push_throttle=_int(env, "PILOT_PUSH_THROTTLE", 0),
        xds_send_timeout=_duration(env, "PILOT_XDS_SEND_TIMEOUT", 30.0),
        workload_cert_ttl=_positive_duration(env, "DEFAULT_WORKLOAD_CERT_TTL", 24 * 3600.0),
        max_workload_cert_ttl=_positive_duration(env, "MAX_WORKLOAD_CERT_TTL", 90 * 86400.0),
        secret_grace_period_ratio=_ratio(env, "SECRET_GRACE_PERIOD_RATIO", 0.5),
        root_ca_dir=env.get("ROOT_CA_DIR") or "./etc/cacerts",
        self_signed_ca_cert_ttl=_positive_duration(
            env, "CITADEL_SELF_SIGNED_CA_CERT_TTL", 3650 * 86400.0
        ),
        root_cert_check_interval=_duration(
            env, "CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL", 3600.0
        ),
        root_cert_grace_percentile=_int(
            env, "CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE", 20
        ),
        multi_root_mesh=_bool(env, "ISTIO_MULTIROOT_MESH", False),
        revert_rejected_config=_one_of(
            env, "PILOT_REVERT_REJECTED_CONFIG", ("authenticated", "all", "none"), "authenticated"
        ),
        xds_cache_verify=_bool(env, "UNSAFE_PILOT_XDS_CACHE_VERIFY", False),
        token_audiences=tuple(
            a.strip() for a in (env.get("TOKEN_AUDIENCES") or "istio-ca").split(",") if a.strip()
        ),
        jwt_pub_key_refresh_interval=_positive_duration(
            env, "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", 20 * 60.0
        ),
        jwks_resolver_insecure_skip_verify=_bool(env, "JWKS_RESOLVER_INSECURE_SKIP_VERIFY", False),
        blocked_cidrs_in_jwks_uris=_cidrs(env, "BLOCKED_CIDRS_IN_JWKS_URIS"),
        leader_election_lease_duration=_positive_duration(
            env, "LEADER_ELECTION_LEASE_DURATION", 30.0
        ),
        send_unhealthy_endpoints=_bool(env, "PILOT_SEND_UNHEALTHY_ENDPOINTS", False),
        history_max_bytes=_int(env, "PILOT_HISTORY_MAX_BYTES", 64 << 20),
    )
