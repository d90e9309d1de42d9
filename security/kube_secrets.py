"""istiod's own key material kept in Kubernetes Secrets of its namespace (Kubernetes mode).

- `istio-ca-secret` (type `istio.io/ca-root`, Istio's name, type and data keys): the
  self-signed root. `ca-cert.pem` the current root (the signer), `ca-key.pem` its key,
  `root-cert.pem` the trust bundle (the current root first, then earlier roots of the same key
  that have not expired: kept across a rotation, as the state dir's root-cert.pem is),
  `cert-chain.pem` empty (a self-signed root has no chain). `SecretRootStore` is the
  `security.ca.storage.RootStore` of it: the CA's own rotation code reads and writes it.
- `istiod-token-key` (type `pyistio.io/token-signing-key`, data `token-signing-key.pem`): the
  ES256 key of istiod-issued tokens, so a token one replica issued is accepted by all.

Exactly one replica (the Lease holder) creates and rotates them; the others wait for them and
follow the copies their watches see (`observe`). Writes are updates conditioned on the
resourceVersion last seen, so a replica that lost the Lease without knowing cannot overwrite
the new leader's root (409 Conflict). Reads and writes block: call them off the event loop,
except `load` (no I/O: the last observed copy).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from pkg.errors import CAError
from pkg.kube.client import CONFLICT, KubeClient, status_of
from security.ca import storage
from security.ca.storage import CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT, SignerBundle
from security.pki.certs import encode_certs_pem
from security.pki.keys import encode_key_pem

log = logging.getLogger(__name__)

CA_SECRET = "istio-ca-secret"
CA_SECRET_TYPE = "istio.io/ca-root"
TOKEN_KEY_SECRET = "istiod-token-key"
TOKEN_KEY_SECRET_TYPE = "pyistio.io/token-signing-key"
TOKEN_KEY_DATA = "token-signing-key.pem"
# Secrets holding private keys of istiod itself: never config (see pilot/config/kube.py).
ISTIOD_SECRET_TYPES = (CA_SECRET_TYPE, TOKEN_KEY_SECRET_TYPE)
NOT_FOUND = 404


def secret_data(obj: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The decoded `data` of a Secret object (raw JSON); {} for None."""
    if obj is None:
        return {}
    out = {}
    for key, value in (obj.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value or ""), validate=True)
        except ValueError:
            log.warning("Secret %s: data[%s] is not base64", _name(obj), key)
    return out


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


class IstiodSecret:
    """One istiod-owned Secret: the last copy seen, and conditional writes of it."""

    def __init__(self, kube: KubeClient, namespace: str, name: str, secret_type: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.type = secret_type
        self._latest: dict[str, Any] | None = None
        self._mutex = threading.RLock()

    def __str__(self) -> str:
        return f"Secret {self.namespace}/{self.name}"

    @property
    def latest(self) -> dict[str, Any] | None:
        with self._mutex:
            return self._latest

    def observe(self, obj: Mapping[str, Any] | None) -> bool:
        """The watch saw this copy (None: deleted); whether its data changed."""
        with self._mutex:
            before = secret_data(self._latest)
            # An older copy arriving late (e.g. a relist) does not replace a newer one.
            if obj is not None and self._latest is not None and 0 < _rv(obj) < _rv(self._latest):
                return False
            self._latest = dict(obj) if obj is not None else None
            return secret_data(self._latest) != before

    def fetch(self) -> dict[str, Any] | None:
        """GET it now (blocking); None when it does not exist."""
        try:
            resp = self.kube.core().read_namespaced_secret(
                self.name, self.namespace, _preload_content=False
            )
        except Exception as e:
            if status_of(e) == NOT_FOUND:
                self.observe(None)
                return None
            raise
        obj: dict[str, Any] = json.loads(resp.data)
        self.observe(obj)
        return obj

    def write(self, data: Mapping[str, bytes]) -> dict[str, Any]:
        """Create it, or update the copy last seen (blocking). CAError on a conflict: another
        replica wrote it first (the caller re-reads and follows)."""
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        core = self.kube.core()
        with self._mutex:
            latest = self._latest
        try:
            if latest is None:
                body = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "type": self.type,
                    "data": encoded,
                }
                resp = core.create_namespaced_secret(self.namespace, body, _preload_content=False)
            else:
                body = {**latest, "data": encoded}
                resp = core.replace_namespaced_secret(
                    self.name, self.namespace, body, _preload_content=False
                )
        except Exception as e:
            if status_of(e) == CONFLICT:
                raise CAError(f"{self} was written by another replica meanwhile") from e
            raise
        obj: dict[str, Any] = json.loads(resp.data)
        self.observe(obj)
        log.info("wrote %s (resourceVersion %s)", self, _rv_text(obj))
        return obj


def _rv_text(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _rv(obj: Mapping[str, Any]) -> int:
    text = _rv_text(obj)
    return int(text) if text.isdigit() else 0


class SecretRootStore:
    """`istio-ca-secret` as the CA's `RootStore`; writable while `leading()`."""

    def __init__(self, secret: IstiodSecret, leading: Callable[[], bool]) -> None:
        self.secret = secret
        self._leading = leading
        self._lock = threading.RLock()

    def __str__(self) -> str:
        return str(self.secret)

    @property
    def writable(self) -> bool:
        return self._leading()

    def locked(self) -> AbstractContextManager[Any]:
        return self._lock

    def load(self, now: datetime) -> SignerBundle | None:
        data = secret_data(self.secret.latest)
        if not data.get(CA_CERT):
            return None
        if not data.get(CA_KEY):
            raise CAError(f"{self.secret}: {CA_CERT} without {CA_KEY}")
        return storage.self_signed_from_pem(
            data[CA_CERT], data[CA_KEY], data.get(ROOT_CERT), now, f"{self.secret}: "
        )

    def save(self, bundle: SignerBundle, *, with_key: bool) -> None:
        self.secret.write(
            {
                CA_CERT: encode_certs_pem([bundle.signer_cert]),
                CA_KEY: encode_key_pem(bundle.signer_key),
                ROOT_CERT: bundle.roots_pem,
                CERT_CHAIN: b"",
            }
        )
