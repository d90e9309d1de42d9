"""The certificate authority: istiod's built-in CA (Istio's IstioCA), self-signed or plugged-in.

Self-signed: an RSA 2048 root (subject O=<trust domain>) created once in its `RootStore` (the
state directory; in Kubernetes mode the `istio-ca-secret` Secret, security/kube_secrets.py)
and loaded on every later start, so a restarted istiod keeps signing with the same root. When
less than 20 % of its life is left, `check_root_rotation` re-issues it with the same key and
subject; the previous root stays in the trust bundle until it expires, and because the key is
unchanged every certificate signed so far also verifies against the new root.

Plugged-in: Istio's `cacerts` files; leaves are signed by ca-cert.pem and served with
cert-chain.pem. `reload_plugged` picks up edited files (a new signer, or with
ISTIO_MULTIROOT_MESH a root added to or dropped from the trust bundle; see
`security.ca.reload`). Leaves carry what Istio puts in them (see `security.pki.issue`); the
SANs come from the caller's identities, never from the CSR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pkg.credentials import Credential
from pkg.errors import CAError
from security import monitoring
from security.ca import reload, storage
from security.ca.errors import CertGenError, CSRError, TTLError
from security.ca.storage import SignerBundle
from security.pki.certs import decode_csr_pem, encode_cert_pem, encode_certs_pem, general_names
from security.pki.issue import CLOCK_SKEW_GRACE, build_leaf_cert, build_root_cert, root_subject
from security.pki.keys import check_leaf_public_key, encode_key_pem, generate_key, generate_rsa_key

log = logging.getLogger(__name__)

DEFAULT_ROOT_TTL = timedelta(days=3650)  # CITADEL_SELF_SIGNED_CA_CERT_TTL
DEFAULT_WORKLOAD_TTL = timedelta(hours=24)  # DEFAULT_WORKLOAD_CERT_TTL
MAX_WORKLOAD_TTL = timedelta(days=90)  # MAX_WORKLOAD_CERT_TTL
ROOT_GRACE_RATIO = 0.2  # CITADEL_SELF_SIGNED_ROOT_CERT_GRACE_PERIOD_PERCENTILE = 20
ROOT_RSA_BITS = 2048  # CITADEL_SELF_SIGNED_CA_RSA_KEY_SIZE


def utc_now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _organization(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else ""


@dataclass(frozen=True, slots=True)
class CAPolicy:
    """How the CA signs and when it rotates (Istio's CITADEL_* and *_CERT_TTL settings)."""

    trust_domain: str
    clock: Callable[[], datetime] = utc_now
    root_ttl: timedelta = DEFAULT_ROOT_TTL
    default_ttl: timedelta = DEFAULT_WORKLOAD_TTL
    max_ttl: timedelta = MAX_WORKLOAD_TTL
    root_grace_ratio: float = ROOT_GRACE_RATIO

    def validate(self) -> None:
        if not self.trust_domain:
            raise CAError("a trust domain is required")
        if not timedelta(0) < self.default_ttl <= self.max_ttl:
            raise CAError(f"default TTL {self.default_ttl} must be positive and <= {self.max_ttl}")
        if self.root_ttl <= CLOCK_SKEW_GRACE or not 0 < self.root_grace_ratio < 1:
            raise CAError(f"invalid root TTL {self.root_ttl} or grace {self.root_grace_ratio}")


class CertificateAuthority:
    """Signs workload and serving certificates and owns the trust bundle (see `load_or_create`)."""

    def __init__(
        self,
        bundle: SignerBundle,
        policy: CAPolicy,
        state_dir: Path | None,
        *,
        cacerts_dir: Path | None = None,
        reload_policy: reload.ReloadPolicy | None = None,
        root_store: storage.RootStore | None = None,
    ) -> None:
        self.policy = policy
        # Where the self-signed root lives; None when plugged in: nothing of ours to persist.
        if root_store is None and state_dir is not None:
            root_store = storage.StateDirRootStore(state_dir)
        self._root_store = root_store
        self._cacerts_dir = cacerts_dir if root_store is None else None  # set when plugged in
        self._reload_policy = reload_policy or reload.ReloadPolicy()
        self._cacerts_seen = reload.fingerprint(self._cacerts_dir) if self._cacerts_dir else ()
        self._bundle = bundle
        self._set_bundle(bundle)

    @classmethod
    def load_or_create(
        cls,
        state_dir: Path,
        trust_domain: str,
        *,
        cacerts_dir: Path | None = None,
        clock: Callable[[], datetime] | None = None,
        root_ttl: timedelta = DEFAULT_ROOT_TTL,
        default_ttl: timedelta = DEFAULT_WORKLOAD_TTL,
        max_ttl: timedelta = MAX_WORKLOAD_TTL,
        root_grace_ratio: float = ROOT_GRACE_RATIO,
        multi_root: bool = False,
    ) -> CertificateAuthority:
        """Plugged-in CA from `cacerts_dir` if it holds Istio's files, else the self-signed one."""
        policy = CAPolicy(trust_domain, clock or utc_now, root_ttl, default_ttl, max_ttl,
                          root_grace_ratio)  # fmt: skip
        policy.validate()
        now = _aware(policy.clock()).replace(microsecond=0)  # certificates have whole seconds
        if cacerts_dir is not None:
            seen = reload.fingerprint(cacerts_dir)
            plugged = storage.load_plugged(cacerts_dir, now)
            if plugged is not None:
                log.info("using plugged-in CA dir=%s signer=%s", cacerts_dir,
                         plugged.signer_cert.subject.rfc4514_string())  # fmt: skip
                ca = cls(plugged, policy, None, cacerts_dir=cacerts_dir,
                         reload_policy=reload.ReloadPolicy(multi_root))  # fmt: skip
                ca._cacerts_seen = seen  # what was loaded, even if edited since
                return ca
        return cls.self_signed(storage.StateDirRootStore(state_dir), policy, now)

    @classmethod
    def self_signed(
        cls, store: storage.RootStore, policy: CAPolicy, now: datetime | None = None
    ) -> CertificateAuthority:
        """The self-signed CA kept in `store`, whose root is created there when it has none
        (CAError when it has none and this istiod may not create one)."""
        policy.validate()
        now = (now or _aware(policy.clock())).replace(microsecond=0)
        trust_domain = policy.trust_domain
        with store.locked():
            bundle = store.load(now)
            if bundle is None:
                if not store.writable:
                    raise CAError(f"no self-signed root in {store} yet")
                key = generate_rsa_key(ROOT_RSA_BITS)
                root = build_root_cert(
                    key, root_subject(trust_domain), now - CLOCK_SKEW_GRACE, now + policy.root_ttl
                )
                bundle = storage.self_signed_bundle(root, key)
                store.save(bundle, with_key=True)
                log.info("created self-signed root %s trust_domain=%s not_after=%s",
                         store, trust_domain, root.not_valid_after_utc.isoformat())  # fmt: skip
            elif _organization(bundle.root) != trust_domain:
                log.warning("stored root is for organization %r, not trust domain %r",
                            _organization(bundle.root), trust_domain)  # fmt: skip
        ca = cls(bundle, policy, None, root_store=store)
        ca.check_root_rotation(now)  # a root that expired while istiod was down is replaced now
        return ca

    @property
    def trust_domain(self) -> str:
        return self.policy.trust_domain

    @property
    def default_ttl(self) -> timedelta:
        return self.policy.default_ttl

    @property
    def max_ttl(self) -> timedelta:
        return self.policy.max_ttl

    # -- read side -------------------------------------------------------------------------

    @property
    def plugged_in(self) -> bool:
        return self._root_store is None

    @property
    def signer_cert(self) -> x509.Certificate:
        """The certificate leaves are signed with (the root when self-signed)."""
        return self._bundle.signer_cert

    @property
    def root_cert(self) -> x509.Certificate:
        """The root current chains end at (the last element of a CSR response)."""
        return self._bundle.root

    def now(self) -> datetime:
        return _aware(self.policy.clock())

    def trust_bundle(self) -> bytes:
        """PEM of every root a peer may chain to (current, previous until it expires, plugged)."""
        return self._bundle.roots_pem

    # -- signing ---------------------------------------------------------------------------

    def sign_csr(
        self, csr_pem: bytes, identities: Sequence[str], ttl: timedelta | None = None
    ) -> list[str]:
        """Sign the CSR's public key for `identities`: PEMs leaf, intermediates…, root last."""
        try:
            csr = decode_csr_pem(csr_pem)
            public_key = csr.public_key()
            check_leaf_public_key(public_key)
        except (CAError, ValueError) as exc:
            raise CSRError(f"invalid CSR: {exc}") from exc
        bundle = self._bundle
        leaf = self._sign(bundle, public_key, identities, ttl)
        certs = [leaf, *bundle.chain, bundle.root]
        return [encode_cert_pem(cert).decode() for cert in certs]

    def issue(self, identities: Sequence[str], ttl: timedelta | None = None) -> Credential:
        """A new EC P-256 key and its certificate for `identities` (SPIFFE ids)."""
        key = generate_key()
        bundle = self._bundle
        leaf = self._sign(bundle, key.public_key(), identities, ttl)
        return self._credential(bundle, leaf, encode_key_pem(key))

    def serving_credential(
        self,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        ttl: timedelta = DEFAULT_WORKLOAD_TTL,
    ) -> Credential:
        """istiod's own TLS certificate, with DNS and IP SANs."""
        return self.issue([*dns_names, *ip_addresses], ttl)

    def _sign(
        self,
        bundle: SignerBundle,
        public_key: CertificatePublicKeyTypes,
        identities: Sequence[str],
        ttl: timedelta | None,
    ) -> x509.Certificate:
        if ttl is None or ttl <= timedelta(0):
            ttl = self.policy.default_ttl
        if ttl > self.policy.max_ttl:
            raise TTLError(
                f"requested TTL {ttl} is greater than the max allowed TTL {self.policy.max_ttl}"
            )
        try:
            sans = general_names(identities)
        except CAError as exc:
            raise CertGenError(str(exc)) from exc
        now = self.now().replace(microsecond=0)
        signer_end = min(
            cert.not_valid_after_utc for cert in (bundle.signer_cert, *bundle.chain, bundle.root)
        )
        if now >= signer_end:
            raise CertGenError(f"signing certificate has expired at {signer_end.isoformat()}")
        not_after = min(now + ttl, signer_end)
        leaf = build_leaf_cert(
            public_key, sans, bundle.signer_cert, bundle.signer_key,
            now - CLOCK_SKEW_GRACE, not_after,
        )  # fmt: skip
        log.info("issued certificate identities=%s serial=%x not_after=%s",
                 ",".join(identities), leaf.serial_number, not_after.isoformat())  # fmt: skip
        return leaf

    def _credential(
        self, bundle: SignerBundle, leaf: x509.Certificate, key_pem: bytes
    ) -> Credential:
        return Credential(
            cert_chain_pem=encode_certs_pem([leaf, *bundle.chain]),
            key_pem=key_pem,
            roots_pem=bundle.roots_pem,
            serial=leaf.serial_number,
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            issued_at=leaf.not_valid_before_utc + CLOCK_SKEW_GRACE,
        )

    # -- root rotation ---------------------------------------------------------------------

    def root_needs_rotation(self, now: datetime | None = None) -> bool:
        """Whether less than `root_grace_ratio` of the current root's lifetime is left."""
        return self._needs_rotation(self._bundle.signer_cert, now or self.now())

    def _needs_rotation(self, root: x509.Certificate, now: datetime) -> bool:
        lifetime = root.not_valid_after_utc - root.not_valid_before_utc
        return root.not_valid_after_utc - now < lifetime * self.policy.root_grace_ratio

    def check_root_rotation(self, now: datetime | None = None) -> bool:
        """Rotate a self-signed root near its end; True when the trust bundle changed.

        Also picks up a rotation another istiod sharing the state dir (or the Secret) did, and
        drops previous roots once they expire; only a writable store's istiod rotates (in
        Kubernetes mode, the leader). Plugged-in CAs are never rotated here (False).
        """
        store = self._root_store
        if store is None:
            return False
        when = _aware(now) if now is not None else self.now()
        before = self._bundle
        try:
            with store.locked():
                bundle = store.load(when)
                if bundle is None:  # the files (or the Secret) are gone
                    bundle = before
                    if store.writable:  # put ours back; a follower keeps its copy
                        store.save(bundle, with_key=True)
                if self._needs_rotation(bundle.signer_cert, when) and store.writable:
                    bundle = self._rotate(store, bundle, when)
        except (CAError, OSError) as exc:
            log.error("root rotation check failed, keeping the current root: %s", exc)
            return False
        self._set_bundle(bundle)
        return bundle.roots != before.roots or bundle.root != before.root

    def _rotate(
        self, store: storage.RootStore, bundle: SignerBundle, now: datetime
    ) -> SignerBundle:
        old = bundle.signer_cert
        now = now.replace(microsecond=0)
        root = build_root_cert(
            bundle.signer_key, old.subject, now - CLOCK_SKEW_GRACE, now + self.policy.root_ttl
        )
        kept = tuple(cert for cert in bundle.roots if cert.not_valid_after_utc > now)
        rotated = storage.self_signed_bundle(root, bundle.signer_key, kept)
        store.save(rotated, with_key=False)
        log.info("rotated self-signed root old_serial=%x old_not_after=%s new_serial=%x "
                 "new_not_after=%s", old.serial_number, old.not_valid_after_utc.isoformat(),
                 root.serial_number, root.not_valid_after_utc.isoformat())  # fmt: skip
        return rotated

    # -- plugged-in reload ------------------------------------------------------------------

    def reload_plugged(self, now: datetime | None = None) -> bool:
        """Re-read edited cacerts files; True when the signer or the trust bundle changed.

        Cheap when nothing changed (a stat of the four files). An incomplete or inconsistent
        set, or a trust bundle change Istio would refuse, is logged and the current CA kept.
        """
        directory = self._cacerts_dir
        if directory is None:
            return False
        seen = reload.fingerprint(directory)
        if seen == self._cacerts_seen:
            return False
        self._cacerts_seen = seen
        when = (_aware(now) if now is not None else self.now()).replace(microsecond=0)
        try:
            new = storage.load_plugged(directory, when)
        except (CAError, OSError, ValueError) as exc:
            log.error("not reloading plugged-in CA dir=%s: %s", directory, exc)
            return False
        if new is None:
            log.error("not reloading plugged-in CA dir=%s: its files are gone", directory)
            return False
        current = self._bundle
        reason = reload.refusal(current, new, self._reload_policy)
        if reason is not None:
            log.warning("not reloading plugged-in CA dir=%s: %s", directory, reason)
            return False
        if reload.same_bundle(current, new):
            return False
        if new.root not in current.roots:
            log.warning("plugged-in CA dir=%s: the new signer chains to a root proxies were not "
                        "sent before; peers still holding the old trust bundle reject its "
                        "certificates until they get the new one (add the root first)",
                        directory)  # fmt: skip
        self._set_bundle(new)
        log.info("reloaded plugged-in CA dir=%s signer=%s roots=%d (was %d)", directory,
                 new.signer_cert.subject.rfc4514_string(), len(new.roots),
                 len(current.roots))  # fmt: skip
        return True

    def _set_bundle(self, bundle: SignerBundle) -> None:
        self._bundle = bundle
        monitoring.ROOT_CERT_EXPIRY_TIMESTAMP.set(bundle.root.not_valid_after_utc.timestamp())
        if bundle.chain:
            end = min(cert.not_valid_after_utc for cert in bundle.chain)
            monitoring.CERT_CHAIN_EXPIRY_TIMESTAMP.set(end.timestamp())
