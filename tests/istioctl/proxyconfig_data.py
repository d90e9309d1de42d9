"""Config dumps for the proxy-config tests, made by our own pipeline.

`make_dump()` runs istiod's generators for one proxy (`tests.helpers.xds.FakeDiscovery`, with
a real CA for SDS), subscribes the way Envoy does (CDS and LDS wildcard, EDS and RDS for the
names those answers need, SDS `default` + `ROOTCA`), and renders what istiod's
`/debug/config_dump` renders (`pilot.xds.config_dump.build_config_dump`). A bootstrap section
made by `istioctl bootstrap`'s own builder (secure mode: it carries a bearer token) is put in
place of istiod's empty one, with the node's build version as Envoy reports it.

The mesh (`MESH_YAML`): `reviews` (HTTP 9080, endpoints v1 and v2) with a DestinationRule
with subsets v1/v2 and a VirtualService splitting /api by weight; `ratings` (HTTP 9080, no
rules); `mongo` (TCP 27017); a Gateway `bookinfo-gateway` on port 8080 with a VirtualService
`bookinfo` sending /reviews to reviews v1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envoy.admin.v3 import config_dump_pb2

from istioctl.bootstrap import BootstrapOptions, SecureMaterial, build_bootstrap
from pilot.xds.config_dump import build_config_dump, to_json
from pilot.xds.connection import Connection
from pilot.xds.generators import generators_for
from pilot.xds.protocol import WatchState
from pkg.credentials import Credential, Identity
from pkg.xds import typeurls
from security.ca.authority import CertificateAuthority
from security.ca.source import WorkloadCredentials
from tests.helpers.xds import FakeDiscovery, ProxySpec

BOOTSTRAP_TYPE = "type.googleapis.com/" + config_dump_pb2.BootstrapConfigDump.DESCRIPTOR.full_name
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzbGVlcCJ9.dG9rZW4tc2lnbmF0dXJl"
ENVOY_BUILD = {
    "version": {"major_number": 1, "minor_number": 40, "patch": 2},
    "metadata": {
        "revision.sha": "9e5580933739775e8bce696a57a2e1bc99368f23",
        "revision.status": "Clean",
        "build.type": "RELEASE",
        "ssl.version": "BoringSSL",
    },
}

MESH_YAML = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.1.0.1, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.1.0.2, labels: {app: reviews, version: v2}, serviceAccount: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080, targetPort: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: default}
spec: {address: 10.1.0.3, labels: {app: ratings}}
---
apiVersion: v1
kind: Service
metadata: {name: mongo, namespace: default}
spec:
  selector: {app: mongo}
  ports: [{name: tcp, port: 27017, targetPort: 27017}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: mongo-1, namespace: default}
spec: {address: 10.1.0.4, labels: {app: mongo}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-route, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-gateway]
  http:
  - match: [{uri: {exact: /reviews}}]
    route:
    - destination: {host: reviews, subset: v1}
"""

SIDECAR = ProxySpec(
    ip="10.1.0.9",
    name="sleep.default",
    labels={"app": "sleep"},
    service_account="sleep",
    authenticated=True,
)
GATEWAY = ProxySpec(
    type="router",
    ip="10.1.0.10",
    name="ingress.istio-system",
    labels={"istio": "ingressgateway"},
    service_account="ingress",
    authenticated=True,
)


@dataclass(frozen=True)
class GeneratedDump:
    data: dict[str, Any]  # the config dump's JSON
    credential: Credential  # what SDS `default` holds
    root_pem: bytes  # what SDS `ROOTCA` holds

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        return path


def make_dump(
    state_dir: Path, spec: ProxySpec = SIDECAR, *, include_eds: bool = True
) -> GeneratedDump:
    ca = CertificateAuthority.load_or_create(state_dir, "cluster.local")
    credentials = WorkloadCredentials(ca)
    discovery = FakeDiscovery(MESH_YAML, credentials=credentials)
    requested = discovery.resources(spec)
    proxy = discovery.proxy(spec)
    conn = Connection(
        f"{spec.name}-1",
        proxy,
        "127.0.0.1:1",
        False,
        generators_for(proxy, discovery.generators),
        lambda: discovery.push,
    )
    conn.watches = {
        typeurls.CLUSTER: WatchState(typeurls.CLUSTER, wildcard=True),
        typeurls.LISTENER: WatchState(typeurls.LISTENER, wildcard=True),
        typeurls.ENDPOINT: WatchState(typeurls.ENDPOINT, names=set(requested.eds_requested)),
        typeurls.ROUTE: WatchState(typeurls.ROUTE, names=set(requested.rds_requested)),
        typeurls.SECRET: WatchState(typeurls.SECRET, names={"default", "ROOTCA"}),
    }
    dump = build_config_dump(conn, discovery.push, None, include_eds=include_eds)
    root_pem = credentials.trust_bundle()
    data = to_json(dump)
    data["configs"][0] = {
        "@type": BOOTSTRAP_TYPE,
        "bootstrap": _bootstrap(spec, root_pem.decode()),
    }
    identity = Identity("cluster.local", spec.namespace, spec.service_account)
    return GeneratedDump(data, credentials.credential(identity), root_pem)


def _bootstrap(spec: ProxySpec, root_pem: str) -> dict[str, Any]:
    name, namespace = spec.name.split(".")
    opts = BootstrapOptions(
        name=name,
        namespace=namespace,
        proxy_type="router" if spec.type == "router" else "sidecar",
        ip=spec.ip,
        labels=dict(spec.labels),
        service_account=spec.service_account,
        istiod="127.0.0.1:15012",
    )
    bootstrap = build_bootstrap(opts, SecureMaterial(token=TOKEN, root_pem=root_pem))
    bootstrap["node"]["user_agent_build_version"] = ENVOY_BUILD
    return bootstrap
