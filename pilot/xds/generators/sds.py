"""SDS generator: certificates over the ADS stream.

- `default`: the key and SPIFFE certificate chain of the proxy's verified identity;
- `ROOTCA`: the mesh trust bundle;
- `kubernetes://NAME` (and `kubernetes://NAME-cacert`): a `kubernetes.io/tls` Secret document
  of the proxy's namespace (`tls.crt`/`tls.key`, and `ca.crt`), for Gateway and
  DestinationRule `credentialName`.

Only a proxy whose identity was proven by its credentials gets `default` or a namespace's
secrets (and only its own namespace's): node metadata never decides who gets a key.
"""

from __future__ import annotations

import logging
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.xds.wire import BuiltResource
from pkg.config.model import ConfigKey, Kind
from pkg.credentials import CredentialSource, Identity
from pkg.xds import typeurls

log = logging.getLogger(__name__)

DEFAULT = "default"
ROOT_CA = "ROOTCA"
KUBERNETES_PREFIX = "kubernetes://"
CA_SUFFIX = "-cacert"
ROOT_CA_KEY = ConfigKey(Kind.SECRET, ROOT_CA, "")


class SdsGenerator:
    type_url = typeurls.SECRET

    def __init__(self, credentials: CredentialSource | None) -> None:
        self._credentials = credentials

    def needs_push(self, req: PushRequest) -> bool:
        return req.forced or req.has_kind(Kind.SECRET)

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> list[BuiltResource]:
        if names is None:
            return []
        out = []
        for name in sorted(names):
            secret = self._secret(view, name)
            if secret is not None:
                out.append(BuiltResource.pack(name, secret))
        return out

    def _secret(self, view: ProxyView, name: str) -> Any | None:
        identity = view.proxy.identity
        if name == ROOT_CA:
            if self._credentials is None:
                return None
            out = secret_pb2.Secret(name=name)
            out.validation_context.trusted_ca.inline_bytes = self._credentials.trust_bundle()
            return out
        if identity is None:
            return None  # unauthenticated (plaintext) streams get no keys
        if name == DEFAULT:
            if self._credentials is None:
                return None
            credential = self._credentials.credential(identity)
            out = secret_pb2.Secret(name=name)
            out.tls_certificate.certificate_chain.inline_bytes = credential.cert_chain_pem
            out.tls_certificate.private_key.inline_bytes = credential.key_pem
            return out
        if name.startswith(KUBERNETES_PREFIX):
            return self._kubernetes_secret(view, name)
        return None

    def _kubernetes_secret(self, view: ProxyView, name: str) -> Any | None:
        ref = name[len(KUBERNETES_PREFIX) :]
        namespace = view.namespace
        if "/" in ref:
            namespace, ref = ref.split("/", 1)
        if namespace != view.namespace:
            log.warning("proxy %s may not read secret %s/%s", view.proxy.id, namespace, ref)
            return None
        wants_ca = ref.endswith(CA_SUFFIX)
        base = ref[: -len(CA_SUFFIX)] if wants_ca else ref
        config = _find(view, base, namespace)
        if wants_ca:
            separate = _find(view, ref, namespace)
            ca = _get(separate, "ca.crt") or _get(separate, "cacert") or _get(config, "ca.crt")
            if ca is None:
                log.warning("proxy %s: secret %s/%s has no ca.crt for %s", view.proxy.id,
                            namespace, base, name)  # fmt: skip
                return None
            out = secret_pb2.Secret(name=name)
            out.validation_context.trusted_ca.inline_bytes = ca
            return out
        cert = _get(config, "tls.crt") or _get(config, "cert")
        key = _get(config, "tls.key") or _get(config, "key")
        ca_only = _get(config, "ca.crt") or _get(config, "cacert")
        if cert is None and key is None and ca_only is not None:
            # A CA-only Secret (e.g. a Gateway's caCertCredentialName): a validation context.
            out = secret_pb2.Secret(name=name)
            out.validation_context.trusted_ca.inline_bytes = ca_only
            return out
        if cert is None or key is None:
            log.warning("proxy %s: no kubernetes.io/tls secret %s/%s with tls.crt and tls.key",
                        view.proxy.id, namespace, base)  # fmt: skip
            return None
        out = secret_pb2.Secret(name=name)
        out.tls_certificate.certificate_chain.inline_bytes = cert
        out.tls_certificate.private_key.inline_bytes = key
        return out


def _find(view: ProxyView, name: str, namespace: str) -> Any | None:
    for config in view.push.list(Kind.SECRET):
        if config.name == name and config.namespace == namespace:
            return config
    return None


def _get(config: Any | None, key: str) -> bytes | None:
    if config is None:
        return None
    value: bytes | None = config.spec.get(key)
    return value


def credential_key(identity: Identity | None) -> ConfigKey:
    """The push key of a renewed workload credential (None: the trust bundle changed)."""
    if identity is None:
        return ROOT_CA_KEY
    return ConfigKey(Kind.SECRET, identity.spiffe_id, "")
