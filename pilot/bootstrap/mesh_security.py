"""istiod's security side, wired together: the CA, the token issuer, workload credentials for
SDS, the authenticators, and istiod's own serving certificate for the secure gRPC port.

The serving certificate is issued by the mesh CA for the names proxies dial
(`istiod.istio-system.svc` and friends, the bound address, loopback, ISTIOD_CUSTOM_HOST) and
renewed like a workload certificate; gRPC picks up the new one on the next handshake through
its certificate-config fetcher, so renewal never restarts the server or breaks a stream.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import cast

import grpc

from pilot.features import Features
from pkg.credentials import Credential, Identity
from security.ca.authority import CertificateAuthority
from security.ca.credential_files import PersistentCredentials
from security.ca.source import WorkloadCredentials
from security.server.authenticate import (
    AnyAuthenticator,
    BearerTokenAuthenticator,
    ClientCertAuthenticator,
    authenticate_any_async,
)
from security.tokens import TokenIssuer

log = logging.getLogger(__name__)

SYSTEM_NAMESPACE = "istio-system"
ISTIOD_SERVICE = "istiod"
# What `istioctl bootstrap` puts in the xds-grpc cluster's SNI and SAN check.
ISTIOD_SAN = f"{ISTIOD_SERVICE}.{SYSTEM_NAMESPACE}.svc"
RENEW_CHECK_INTERVAL = 1.0  # seconds between renewal checks


def serving_names(
    domain_suffix: str, hosts: Sequence[str], custom_hosts: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) for istiod's serving certificate."""
    dns = [
        ISTIOD_SAN,
        f"{ISTIOD_SAN}.{domain_suffix}",
        f"{ISTIOD_SERVICE}.{SYSTEM_NAMESPACE}",
        ISTIOD_SERVICE,
        "localhost",
    ]
    ips = ["127.0.0.1", "::1"]
    for host in (*hosts, *custom_hosts):
        host = host.strip()
        if not host:
            continue
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            if host not in dns:
                dns.append(host)
            continue
        if not address.is_unspecified and str(address) not in ips:
            ips.append(str(address))
    return dns, ips


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    state_dir: Path
    trust_domain: str
    trust_domain_aliases: tuple[str, ...]
    domain_suffix: str
    root_namespace: str
    features: Features
    custom_hosts: tuple[str, ...] = ()


def load_ca(settings: SecuritySettings) -> CertificateAuthority:
    """The plugged-in CA of ROOT_CA_DIR if it holds Istio's files, else the self-signed one
    kept in the state dir (blocking: it may generate the root key)."""
    features = settings.features
    ca_dir = Path(features.root_ca_dir)
    return CertificateAuthority.load_or_create(
        settings.state_dir,
        settings.trust_domain,
        cacerts_dir=ca_dir if ca_dir.is_dir() else None,
        root_ttl=timedelta(seconds=features.self_signed_ca_cert_ttl),
        default_ttl=timedelta(seconds=features.workload_cert_ttl),
        max_ttl=timedelta(seconds=features.max_workload_cert_ttl),
        root_grace_ratio=features.root_cert_grace_percentile / 100,
        multi_root=features.multi_root_mesh,
    )


class MeshSecurity:
    """Everything istiod needs to issue and check identities. Build with `create` (blocking:
    it may generate the root key), then `run()` as a supervised task."""

    def __init__(
        self,
        settings: SecuritySettings,
        ca: CertificateAuthority,
        tokens: TokenIssuer,
        extra_authenticators: Sequence[AnyAuthenticator] = (),
    ) -> None:
        features = settings.features
        self.settings = settings
        self.ca = ca
        self.tokens = tokens
        # Kept in the state dir: a restarted istiod serves reconnecting proxies the same ones.
        self.credentials: WorkloadCredentials = PersistentCredentials(
            ca,
            settings.state_dir,
            ttl=timedelta(seconds=features.workload_cert_ttl),
            grace_ratio=features.secret_grace_period_ratio,
            root_check_interval=features.root_cert_check_interval or float("inf"),
        )
        trust_domains = (settings.trust_domain, *settings.trust_domain_aliases)
        # Tried in order, the first success wins (cheap local checks first). Kubernetes mode
        # adds the TokenReview one. Callers on the event loop use `authenticate`.
        self.authenticators: tuple[AnyAuthenticator, ...] = (
            ClientCertAuthenticator(trust_domains),
            BearerTokenAuthenticator(
                tokens, settings.trust_domain, audiences=features.token_audiences
            ),
            *extra_authenticators,
        )
        self._hosts: list[str] = []
        self._serving: Credential | None = None
        self._serving_version = 0
        self.credentials.subscribe(self._on_credentials)

    @classmethod
    def create(cls, settings: SecuritySettings) -> MeshSecurity:
        """Standalone: the CA (plugged-in, or self-signed in the state dir) and the token key
        from the state dir. Kubernetes mode: pilot/bootstrap/kube_security.py."""
        tokens = TokenIssuer.load_or_create(settings.state_dir)
        return cls(settings, load_ca(settings), tokens)

    # ---- authentication ----------------------------------------------------------------

    async def authenticate(self, metadata: Mapping[str, str], peer_uris: Sequence[str]) -> Identity:
        """The caller's identity (client certificate, istiod-issued token, or in Kubernetes
        mode a service-account token checked with TokenReview); AuthenticationError."""
        return await authenticate_any_async(self.authenticators, metadata, peer_uris)

    # ---- istiod's serving certificate --------------------------------------------------

    def serve_on(self, host: str) -> None:
        """Add a host istiod is reached on to its certificate (before `server_credentials`)."""
        if host not in self._hosts:
            self._hosts.append(host)
            self._serving = None

    def _serving_credential(self) -> Credential:
        if self._serving is None:
            dns, ips = serving_names(
                self.settings.domain_suffix, self._hosts, self.settings.custom_hosts
            )
            self._serving = self.ca.serving_credential(
                dns, ips, ttl=timedelta(seconds=self.settings.features.workload_cert_ttl)
            )
            self._serving_version += 1
            log.info("istiod serving certificate issued for %s (serial %x)",
                     ",".join([*dns, *ips]), self._serving.serial)  # fmt: skip
        return self._serving

    def serving_credential(self) -> tuple[Credential, int]:
        """istiod's current serving certificate and its version (bumped on each re-issue), for
        servers that reload it themselves (the HTTPS webhook port)."""
        credential = self._serving_credential()
        return credential, self._serving_version

    def server_credentials(self, require_client_auth: bool = False) -> grpc.ServerCredentials:
        """TLS for a gRPC port with the current serving certificate, swapped on renewal.
        With `require_client_auth`, clients must present a certificate from the mesh CA."""
        served = -1

        def current() -> grpc.ServerCertificateConfiguration:
            credential = self._serving_credential()
            return grpc.ssl_server_certificate_configuration(
                [(credential.key_pem, credential.cert_chain_pem)],
                root_certificates=self.ca.trust_bundle(),
            )

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC before each handshake: only a changed certificate is returned.
            nonlocal served
            if served == self._serving_version and self._serving is not None:
                return None
            config = current()
            served = self._serving_version
            return config

        initial = current()
        served = self._serving_version
        # gRPC documents None as "keep the current one"; its stubs do not say so.
        fetcher = cast("Callable[[], grpc.ServerCertificateConfiguration]", fetch)
        return grpc.dynamic_ssl_server_credentials(
            initial, fetcher, require_client_authentication=require_client_auth
        )

    def _renew_serving_if_due(self) -> None:
        serving = self._serving
        if serving is None:
            return
        left = serving.lifetime_fraction_left(self.ca.now())
        if left < self.settings.features.secret_grace_period_ratio:
            self._serving = None
            self._serving_credential()

    # ---- background ----------------------------------------------------------------------

    async def renew_serving_certificate(self) -> None:
        """Re-issue istiod's certificate when due (workload credentials renew themselves in
        `credentials.run()`)."""
        while True:
            self._renew_serving_if_due()
            await asyncio.sleep(RENEW_CHECK_INTERVAL)

    def _on_credentials(self, identity: Identity | None) -> None:
        if identity is None:  # the trust bundle changed: re-issue under the new root
            self._serving = None
            self._serving_credential()
