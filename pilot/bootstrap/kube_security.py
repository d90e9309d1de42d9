"""istiod's security duties in Kubernetes mode, wired together.

- Leader election: a `coordination.k8s.io/v1` Lease `istio-ca-leader` in istiod's namespace
  (POD_NAMESPACE, default istio-system), holderIdentity = the replica's name (POD_NAME, default
  the host name). The leader alone creates, repairs and rotates istiod's Secrets and writes the
  `istio-ca-root-cert` ConfigMaps.
- `istio-ca-secret` (the self-signed root) and `istiod-token-key` (the key of istiod-issued
  tokens), see `security.kube_secrets`: at start every replica waits until both exist (the
  leader creates what is missing; the others poll with backoff and listen to their watches)
  before it builds its CA, so it neither listens nor signs, and is not ready, before it has
  the one root of the mesh. Afterwards watches keep every replica on the current copies: a
  rotated root reaches followers through `credentials.refresh(check_root=True)` (the CA's own
  rotation code), a deleted Secret is put back by the leader.
- A plugged-in CA (Istio's `cacerts` Secret mounted at ROOT_CA_DIR, as Istio's Deployment
  does) is used as in standalone mode: no istio-ca-secret then.
- Proxies and CSR callers may also authenticate with Kubernetes service-account tokens
  (TokenReview, `security.server.kube_token`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pilot.bootstrap.mesh_security import MeshSecurity, SecuritySettings, load_ca
from pilot.bootstrap.root_cert_configmaps import CONFIGMAP, RootCertPublisher
from pilot.config.kube_watch import Changed, KindWatcher, Listed, Message, Target
from pilot.config.store import ConfigStore
from pkg.aio import cancel_and_wait, guarded_task
from pkg.config.model import Kind
from pkg.config.schema import SCHEMAS, KindSchema
from pkg.credentials import Identity
from pkg.errors import CAError
from pkg.kube.client import DELETED, KubeClient
from pkg.kube.leader import LeaderElector, LeaseTiming
from security.ca import storage
from security.ca.authority import CAPolicy, CertificateAuthority
from security.kube_secrets import (
    CA_SECRET,
    CA_SECRET_TYPE,
    TOKEN_KEY_DATA,
    TOKEN_KEY_SECRET,
    TOKEN_KEY_SECRET_TYPE,
    IstiodSecret,
    SecretRootStore,
    secret_data,
)
from security.revocation import RevocationList
from security.server.kube_token import TokenReviewAuthenticator
from security.tokens import TokenIssuer, new_signing_key_pem, signing_key_from_pem

log = logging.getLogger(__name__)

LEASE_NAME = "istio-ca-leader"
DEFAULT_NAMESPACE = "istio-system"
WAIT_INITIAL, WAIT_MAX = 0.05, 2.0  # backoff while waiting for the leader's Secrets
STOP_TIMEOUT = 2.0

_SECRET_SCHEMA = next(s for s in SCHEMAS if s.kind is Kind.SECRET)
# The watcher needs only a group and plural: ConfigMaps are no config kind of ours.
_CONFIGMAP_SCHEMA: KindSchema = dataclasses.replace(_SECRET_SCHEMA, plural="configmaps")


@dataclass(frozen=True, slots=True)
class KubeSecuritySettings:
    namespace: str  # istiod's own (POD_NAMESPACE)
    replica: str  # this replica's name (POD_NAME), the Lease holderIdentity
    lease: LeaseTiming

    @classmethod
    def from_env(
        cls, lease_duration: float, env: Mapping[str, str] | None = None
    ) -> KubeSecuritySettings:
        env = os.environ if env is None else env
        return cls(
            namespace=env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE,
            replica=env.get("POD_NAME") or socket.gethostname(),
            lease=LeaseTiming(lease_duration),
        )


def ca_policy(settings: SecuritySettings) -> CAPolicy:
    features = settings.features
    return CAPolicy(
        settings.trust_domain,
        root_ttl=timedelta(seconds=features.self_signed_ca_cert_ttl),
        default_ttl=timedelta(seconds=features.workload_cert_ttl),
        max_ttl=timedelta(seconds=features.max_workload_cert_ttl),
        root_grace_ratio=features.root_cert_grace_percentile / 100,
    )


class KubeSecurity:
    """Build with the API client, then `await create_security(...)` at istiod's start."""

    def __init__(self, kube: KubeClient, store: ConfigStore, settings: KubeSecuritySettings):
        self.kube = kube
        self.settings = settings
        ns = settings.namespace
        self.elector = LeaderElector(
            kube, ns, LEASE_NAME, settings.replica, timing=settings.lease,
            on_change=self._leadership_changed,
        )  # fmt: skip
        self.ca_secret = IstiodSecret(kube, ns, CA_SECRET, CA_SECRET_TYPE)
        self.token_secret = IstiodSecret(kube, ns, TOKEN_KEY_SECRET, TOKEN_KEY_SECRET_TYPE)
        self.root_store = SecretRootStore(self.ca_secret, lambda: self.elector.is_leader)
        self.publisher = RootCertPublisher(
            kube, store, self._trust_bundle, lambda: self.elector.is_leader
        )
        self.security: MeshSecurity | None = None
        self._self_signed = True
        self._watchers: list[KindWatcher] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._seen = asyncio.Event()  # a watch delivered something: look again
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- start -------------------------------------------------------------------------------

    async def create_security(self, settings: SecuritySettings) -> MeshSecurity:
        """Elect, wait for (or create) the shared Secrets, and build MeshSecurity on them."""
        self._loop = asyncio.get_running_loop()
        # Three watches, the Lease, TokenReviews and writes share the client's pool.
        pool = getattr(getattr(self.kube.api_client, "rest_client", None), "pool_manager", None)
        if pool is not None:
            pool.connection_pool_kw["maxsize"] = 16
            pool.clear()
        self._watch(Target(_SECRET_SCHEMA, self.settings.namespace, f"metadata.name={CA_SECRET}"))
        self._watch(
            Target(_SECRET_SCHEMA, self.settings.namespace, f"metadata.name={TOKEN_KEY_SECRET}")
        )
        self._watch(Target(_CONFIGMAP_SCHEMA, "", f"metadata.name={CONFIGMAP}"))
        self._tasks.append(guarded_task(self.elector.run(), name="leader-election"))
        plugged = await asyncio.to_thread(_has_plugged, Path(settings.features.root_ca_dir))
        need = [self.token_secret] if plugged else [self.ca_secret, self.token_secret]
        await self._wait_for(need, ca_policy(settings))
        if plugged:
            self._self_signed = False
            ca = await asyncio.to_thread(load_ca, settings)
        else:
            ca = await asyncio.to_thread(
                CertificateAuthority.self_signed, self.root_store, ca_policy(settings)
            )
        key_pem = secret_data(self.token_secret.latest)[TOKEN_KEY_DATA]
        tokens = TokenIssuer(
            signing_key_from_pem(key_pem, str(self.token_secret)),
            revocations=await asyncio.to_thread(RevocationList.load, settings.state_dir),
        )
        reviewer = TokenReviewAuthenticator(
            self.kube, settings.trust_domain, audiences=settings.features.token_audiences
        )
        security = MeshSecurity(settings, ca, tokens, extra_authenticators=(reviewer,))
        self.security = security
        security.credentials.subscribe(self._credentials_changed)
        self._tasks.append(guarded_task(self.publisher.run(), name="root-cert-configmaps"))
        self.publisher.trust_bundle_changed()
        log.info("Kubernetes security ready: replica %s, %s, leader %s", self.settings.replica,
                 "self-signed root from " + str(self.ca_secret) if self._self_signed
                 else "plugged-in CA", self.elector.holder or "?")  # fmt: skip
        return security

    async def _wait_for(self, secrets: list[IstiodSecret], policy: CAPolicy) -> None:
        delay = WAIT_INITIAL
        while True:
            try:
                for secret in secrets:
                    if secret.latest is None:
                        await asyncio.to_thread(secret.fetch)
            except Exception as e:  # the API server is away: keep trying
                log.warning("cannot read istiod's Secrets: %s", e)
            missing = [s for s in secrets if not secret_data(s.latest)]
            if not missing:
                return
            if self.elector.is_leader:
                try:
                    await asyncio.to_thread(self._create, missing, policy)
                    continue
                except CAError as e:  # another replica wrote first: read theirs
                    log.info("%s", e)
                except Exception as e:
                    log.warning("cannot create %s: %s", ", ".join(map(str, missing)), e)
            log.info("waiting for %s (leader: %s)", ", ".join(map(str, missing)),
                     self.elector.holder or "none yet")  # fmt: skip
            self._seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen.wait(), delay)
            delay = min(WAIT_MAX, delay * 2)

    def _create(self, missing: list[IstiodSecret], policy: CAPolicy) -> None:
        """The leader creates what is missing (in a worker thread)."""
        if self.ca_secret in missing:
            CertificateAuthority.self_signed(self.root_store, policy)  # creates the root
        if self.token_secret in missing:
            self.token_secret.write({TOKEN_KEY_DATA: new_signing_key_pem()})

    # ---- watches ---------------------------------------------------------------------------

    def _watch(self, target: Target) -> None:
        watcher = KindWatcher(self.kube, target, self._deliver)
        self._watchers.append(watcher)
        watcher.start()

    def _deliver(self, message: Message) -> None:
        """From a watch thread: hand it to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._apply, message)

    def _apply(self, message: Message) -> None:
        if message.target.schema.plural == "configmaps":
            if isinstance(message, Listed):
                self.publisher.observe_list(message.items)
            elif isinstance(message, Changed):
                self.publisher.observe(message.type, message.obj)
            return
        if isinstance(message, Listed):
            obj: Mapping[str, Any] | None = message.items[0] if message.items else None
        else:
            obj = None if message.type == DELETED else message.obj
        name = message.target.field_selector.partition("=")[2]
        secret = self.ca_secret if name == CA_SECRET else self.token_secret
        changed = secret.observe(obj)
        self._seen.set()
        if self.security is None:
            return
        if secret is self.token_secret:
            self._token_key_seen(obj)
        elif self._self_signed and (changed or obj is None):
            # The CA's rotation check adopts a new copy, or (leader) puts a deleted one back.
            self.security.credentials.refresh(check_root=True)

    def _token_key_seen(self, obj: Mapping[str, Any] | None) -> None:
        assert self.security is not None
        tokens = self.security.tokens
        if obj is None:
            if self.elector.is_leader:  # put the key every replica signs with back
                self._background(self._restore_token_key(tokens.key_pem), "restore-token-key")
            return
        pem = secret_data(obj).get(TOKEN_KEY_DATA)
        if pem and pem != tokens.key_pem:
            try:
                tokens.set_key(signing_key_from_pem(pem, str(self.token_secret)))
            except CAError as e:
                log.error("not using the new token signing key: %s", e)
                return
            log.warning("token signing key changed in %s: tokens signed with the previous "
                        "key are refused from now on", self.token_secret)  # fmt: skip

    async def _restore_token_key(self, pem: bytes) -> None:
        try:
            await asyncio.to_thread(self.token_secret.write, {TOKEN_KEY_DATA: pem})
        except CAError as e:
            log.info("%s", e)

    # ---- leadership and trust bundle ---------------------------------------------------------

    def _leadership_changed(self, leading: bool) -> None:
        self._seen.set()
        self.publisher.leadership_changed(leading)
        if leading and self.security is not None:
            if self._self_signed and self.ca_secret.latest is None:
                self.security.credentials.refresh(check_root=True)  # put it back
            if self.token_secret.latest is None:
                pem = self.security.tokens.key_pem
                self._background(self._restore_token_key(pem), "restore-token-key")

    def _credentials_changed(self, identity: Identity | None) -> None:
        if identity is None:  # the trust bundle changed
            self.publisher.trust_bundle_changed()

    def _trust_bundle(self) -> bytes:
        return self.security.ca.trust_bundle() if self.security is not None else b""

    def _background(self, coro: Any, name: str) -> None:
        self._tasks.append(guarded_task(coro, name=name))

    # ---- stop --------------------------------------------------------------------------------

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
        await self.elector.release()
        for watcher in self._watchers:
            watcher.stop()

        def join() -> bool:
            return all(w.join(STOP_TIMEOUT) for w in self._watchers)

        await asyncio.to_thread(join)
        self._loop = None


def _has_plugged(ca_dir: Path) -> bool:
    """Whether ROOT_CA_DIR holds Istio's plugged-in CA files (the `cacerts` Secret mounted)."""
    return ca_dir.is_dir() and any((ca_dir / name).is_file() for name in storage.PLUGGED_FILES)
