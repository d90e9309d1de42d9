"""The static Envoy bootstrap `istioctl validate --envoy` gives `envoy --mode validate`: one
proxy's generated resources (proto JSON, as pilot/render.py prints them) loaded the way Envoy
would load them over ADS. Listeners get their route configurations inlined (for `rds`), EDS
clusters become STATIC with their endpoints, SDS references point at static secrets holding a
throwaway certificate, certificate files are inlined, and the runtime is `istioctl
bootstrap`'s (re2.max_program_size.error_level 32768).
"""

from __future__ import annotations

import copy
import datetime
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HCM = (
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
RUNTIME = {"re2.max_program_size.error_level": 32768}  # as istioctl/bootstrap.py
ADS_CLUSTER = "xds-grpc"
_FILE_SOURCES = ("certificateChain", "privateKey", "trustedCa")


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    node_id: str
    listeners: tuple[dict[str, Any], ...]  # routes already inlined
    clusters: tuple[dict[str, Any], ...]  # EDS made STATIC

    @classmethod
    def of(cls, proxy: dict[str, Any]) -> ProxyConfig:
        routes = {r["name"]: r for r in proxy.get("routes", [])}
        endpoints = {e["clusterName"]: e for e in proxy.get("endpoints", [])}
        return cls(
            proxy["id"],
            tuple(_inline_routes(lst, routes) for lst in proxy.get("listeners", [])),
            tuple(_static_cluster(c, endpoints) for c in proxy.get("clusters", [])),
        )

    def bootstrap(
        self,
        listeners: Sequence[dict[str, Any]] | None = None,
        clusters: Sequence[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        static = {
            "listeners": copy.deepcopy(list(self.listeners if listeners is None else listeners)),
            "clusters": copy.deepcopy(list(self.clusters if clusters is None else clusters)),
        }
        certs: set[str] = set()
        cas: set[str] = set()
        _static_secrets(static, certs, cas)
        ads = {
            "name": ADS_CLUSTER,
            "type": "STATIC",
            "typedExtensionProtocolOptions": {
                HTTP_OPTIONS: {
                    "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
                    "explicitHttpConfig": {"http2ProtocolOptions": {}},
                }
            },
            "loadAssignment": {"clusterName": ADS_CLUSTER},
        }
        return {
            "node": {"id": self.node_id, "cluster": "istio-proxy"},
            "layeredRuntime": {"layers": [{"name": "global config", "staticLayer": RUNTIME}]},
            "dynamicResources": {
                "adsConfig": {
                    "apiType": "GRPC",
                    "transportApiVersion": "V3",
                    "grpcServices": [{"envoyGrpc": {"clusterName": ADS_CLUSTER}}],
                }
            },
            "staticResources": {
                "listeners": static["listeners"],
                "clusters": [ads, *static["clusters"]],
                "secrets": throwaway_secrets(certs, cas),
            },
        }


def hcms(node: Any) -> Iterator[dict[str, Any]]:
    """Every HttpConnectionManager typed config in a listener's JSON."""
    if isinstance(node, dict):
        if node.get("@type") == HCM:
            yield node
        for value in node.values():
            yield from hcms(value)
    elif isinstance(node, list):
        for item in node:
            yield from hcms(item)


def _inline_routes(listener: dict[str, Any], routes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(listener)
    for hcm in hcms(out):
        name = hcm.get("rds", {}).get("routeConfigName")
        if name in routes:
            del hcm["rds"]
            hcm["routeConfig"] = copy.deepcopy(routes[name])
    return out


def _static_cluster(cluster: dict[str, Any], endpoints: dict[str, Any]) -> dict[str, Any]:
    if cluster.get("type") != "EDS":
        return cluster
    out = copy.deepcopy(cluster)
    service = out.pop("edsClusterConfig", {}).get("serviceName") or out["name"]
    out["type"] = "STATIC"
    assignment = copy.deepcopy(endpoints.get(service, {}))
    assignment["clusterName"] = out["name"]
    out["loadAssignment"] = assignment
    return out


@functools.cache
def throwaway_certificate() -> tuple[str, str]:
    """A self-signed certificate and key (PEM) standing in for every secret and cert file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "istioctl-validate")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/validate")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _static_secrets(node: Any, certs: set[str], cas: set[str]) -> None:
    """SDS references → names of static secrets; certificate files → inline PEM."""
    if isinstance(node, list):
        for item in node:
            _static_secrets(item, certs, cas)
        return
    if not isinstance(node, dict):
        return
    cert, key = throwaway_certificate()
    for name, value in list(node.items()):
        if name in _FILE_SOURCES and isinstance(value, dict) and "filename" in value:
            node[name] = {"inlineString": key if name == "privateKey" else cert}
        elif name == "crl" and isinstance(value, dict) and "filename" in value:
            del node[name]  # a CRL file on the proxy's machine: nothing to check here
        elif name == "tlsCertificateSdsSecretConfigs" and isinstance(value, list):
            for ref in value:
                ref.pop("sdsConfig", None)
                certs.add(ref["name"])
        elif name == "validationContextSdsSecretConfig" and isinstance(value, dict):
            value.pop("sdsConfig", None)
            cas.add(value["name"])
        else:
            _static_secrets(value, certs, cas)


def throwaway_secrets(certs: set[str], cas: set[str]) -> list[dict[str, Any]]:
    """Static secrets standing in for the SDS `certs` (certificate + key) and `cas` (trust)."""
    cert, key = throwaway_certificate()
    out: list[dict[str, Any]] = [
        {
            "name": name,
            "tlsCertificate": {
                "certificateChain": {"inlineString": cert},
                "privateKey": {"inlineString": key},
            },
        }
        for name in sorted(certs)
    ]
    out.extend(
        {"name": name, "validationContext": {"trustedCa": {"inlineString": cert}}}
        for name in sorted(cas)
    )
    return out
