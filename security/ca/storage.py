"""Where the CA's key material lives: the self-signed state directory and a plugged-in cacerts dir.

Both use Istio's file names. Self-signed (`--state-dir`, the standalone stand-in for the
`istio-ca-secret` Secret):

    ca-key.pem     the root's private key, mode 0600
    ca-cert.pem    the current root, which is also the signer
    root-cert.pem  the trust bundle: the current root first, then earlier roots of the same key
                   that have not expired yet (kept there across a rotation)

Files are written in the order key, ca-cert.pem, root-cert.pem, each atomically, under the
state lock (see `security.statefile`). The loader repairs what a crash between two writes can
leave: a key without a certificate is an unfinished creation (start over); a root-cert.pem
that lacks ca-cert.pem gets it added. A certificate without its key is an error.

Plugged-in (`cacerts`, Istio's format): ca-cert.pem (the signer), ca-key.pem, root-cert.pem,
cert-chain.pem (from the signer up, usually ending with the root). All four or none.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from pkg.errors import CAError
from security.pki.certs import decode_cert_pem, decode_certs_pem, encode_certs_pem
from security.pki.keys import decode_key_pem, encode_key_pem, key_matches, signing_key
from security.pki.verify import ChainError, build_path, check_ca
from security.statefile import PRIVATE_MODE, read_optional, state_lock, write_atomic

log = logging.getLogger(__name__)

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
ROOT_CERT = "root-cert.pem"
CERT_CHAIN = "cert-chain.pem"
PLUGGED_FILES = (CA_CERT, CA_KEY, ROOT_CERT, CERT_CHAIN)


@dataclass(frozen=True, slots=True)
class SignerBundle:
    """What the CA signs with and serves (Istio's KeyCertBundle)."""

    signer_cert: x509.Certificate
    signer_key: CertificateIssuerPrivateKeyTypes = field(repr=False)
    chain: tuple[x509.Certificate, ...]  # served after the leaf, no roots (signer first)
    root: x509.Certificate  # the root `chain` verifies to: last in a CSR response
    roots: tuple[x509.Certificate, ...]  # the trust bundle

    @property
    def roots_pem(self) -> bytes:
        return encode_certs_pem(self.roots)


def self_signed_bundle(
    root: x509.Certificate,
    key: CertificateIssuerPrivateKeyTypes,
    previous: tuple[x509.Certificate, ...] = (),
) -> SignerBundle:
    roots = (root, *(cert for cert in previous if cert != root))
    return SignerBundle(signer_cert=root, signer_key=key, chain=(), root=root, roots=roots)


def load_self_signed(state_dir: Path, now: datetime) -> SignerBundle | None:
    """The stored self-signed CA, or None when there is none yet. Call under the state lock.

    Expired earlier roots are dropped from root-cert.pem; a damaged root-cert.pem is rewritten.
    """
    cert_pem = read_optional(state_dir / CA_CERT)
    key_pem = read_optional(state_dir / CA_KEY)
    if cert_pem is None:
        if key_pem is not None:
            log.warning("state dir %s has %s but no %s: an interrupted creation, starting over",
                        state_dir, CA_KEY, CA_CERT)  # fmt: skip
        return None
    if key_pem is None:
        raise CAError(f"{state_dir / CA_CERT} exists but {state_dir / CA_KEY} is missing")
    stored_roots = read_optional(state_dir / ROOT_CERT)
    bundle = self_signed_from_pem(cert_pem, key_pem, stored_roots, now, f"{state_dir}/")
    if bundle.roots_pem != stored_roots:
        write_atomic(state_dir / ROOT_CERT, bundle.roots_pem)
    return bundle


def self_signed_from_pem(
    cert_pem: bytes, key_pem: bytes, roots_pem: bytes | None, now: datetime, where: str
) -> SignerBundle:
    """A self-signed bundle from the contents of ca-cert.pem, ca-key.pem and root-cert.pem
    (`where` prefixes their names in errors). Expired earlier roots are dropped."""
    root = decode_cert_pem(cert_pem, what=where + CA_CERT)
    key = signing_key(decode_key_pem(key_pem))
    if not key_matches(key, root.public_key()):
        raise CAError(f"{where}{CA_KEY} does not match {where}{CA_CERT}")
    check_ca(root)
    previous: tuple[x509.Certificate, ...] = ()
    if roots_pem:
        try:
            previous = tuple(decode_certs_pem(roots_pem, what=where + ROOT_CERT))
        except CAError as exc:
            log.warning("ignoring unreadable trust bundle: %s", exc)
    kept = tuple(cert for cert in previous if cert.not_valid_after_utc > now)
    return self_signed_bundle(root, key, kept)


def save_self_signed(state_dir: Path, bundle: SignerBundle, *, with_key: bool) -> None:
    """Persist a self-signed bundle (the key only when new). Call under the state lock."""
    if with_key:
        write_atomic(state_dir / CA_KEY, encode_key_pem(bundle.signer_key), PRIVATE_MODE)
    write_atomic(state_dir / CA_CERT, encode_certs_pem([bundle.signer_cert]))
    write_atomic(state_dir / ROOT_CERT, bundle.roots_pem)


class RootStore(Protocol):
    """Where a self-signed root is kept: the state directory (standalone) or the
    `istio-ca-secret` Secret (Kubernetes, `security.ca.secret_store`)."""

    @property
    def writable(self) -> bool:
        """Whether this istiod may create and rotate the root (else it only follows)."""
        ...

    def locked(self) -> AbstractContextManager[None]:
        """Held around a load → (rotate) → save sequence."""
        ...

    def load(self, now: datetime) -> SignerBundle | None:
        """The stored bundle (None when there is none yet). Expired earlier roots dropped."""
        ...

    def save(self, bundle: SignerBundle, *, with_key: bool) -> None:
        """Persist `bundle` (the key only when new)."""
        ...


class StateDirRootStore:
    """The self-signed root in `--state-dir` (files as described above)."""

    writable = True

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def locked(self) -> AbstractContextManager[None]:
        return state_lock(self.state_dir)

    def load(self, now: datetime) -> SignerBundle | None:
        return load_self_signed(self.state_dir, now)

    def save(self, bundle: SignerBundle, *, with_key: bool) -> None:
        save_self_signed(self.state_dir, bundle, with_key=with_key)

    def __str__(self) -> str:
        return f"dir={self.state_dir}"


def load_plugged(cacerts_dir: Path, now: datetime) -> SignerBundle | None:
    """The plugged-in CA in `cacerts_dir`, None when it holds none of Istio's files.

    CAError when the set is incomplete, the key does not match ca-cert.pem, ca-cert.pem is not
    a CA, or it does not chain (through cert-chain.pem) to root-cert.pem.
    """
    present = [name for name in PLUGGED_FILES if (cacerts_dir / name).is_file()]
    if not present:
        return None
    missing = [name for name in PLUGGED_FILES if name not in present]
    if missing:
        raise CAError(
            f"plugged-in CA directory {cacerts_dir} is incomplete: missing {', '.join(missing)} "
            f"(needs {', '.join(PLUGGED_FILES)})"
        )
    signer = decode_cert_pem((cacerts_dir / CA_CERT).read_bytes(), what=str(cacerts_dir / CA_CERT))
    key = signing_key(decode_key_pem((cacerts_dir / CA_KEY).read_bytes()))
    if not key_matches(key, signer.public_key()):
        raise CAError(f"{cacerts_dir / CA_KEY} does not match {cacerts_dir / CA_CERT}")
    try:
        check_ca(signer)
    except ChainError as exc:
        raise CAError(f"{cacerts_dir / CA_CERT} cannot sign certificates: {exc}") from exc
    roots = decode_certs_pem(
        (cacerts_dir / ROOT_CERT).read_bytes(), what=str(cacerts_dir / ROOT_CERT)
    )
    chain_pem = (cacerts_dir / CERT_CHAIN).read_bytes()
    chain = (
        decode_certs_pem(chain_pem, what=str(cacerts_dir / CERT_CHAIN)) if chain_pem.strip() else []
    )
    try:
        path = build_path(signer, chain, roots, now)
    except ChainError as exc:
        raise CAError(
            f"{cacerts_dir / CA_CERT} does not verify through {CERT_CHAIN} to {ROOT_CERT}: {exc}"
        ) from exc
    served = [cert for cert in chain if cert not in roots and cert != signer]
    if signer not in roots:
        served.insert(0, signer)
    return SignerBundle(
        signer_cert=signer, signer_key=key, chain=tuple(served), root=path[-1], roots=tuple(roots)
    )
