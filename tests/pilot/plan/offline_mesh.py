"""A Bookinfo-like config directory for the offline plan tests: productpage in front of
reviews (v1, v2: WorkloadEntries, subsets, a VirtualService sending everything to v1), and an
ingress Gateway whose workload is not in the directory."""

from __future__ import annotations

from pathlib import Path

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: productpage}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: productpage-v1, namespace: default}
spec: {address: 127.0.22.1, labels: {app: productpage}, serviceAccount: bookinfo-productpage}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.20.1, labels: {app: reviews, version: v1}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.20.2, labels: {app: reviews, version: v2}, serviceAccount: bookinfo-reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - {destination: {host: reviews.default.svc.cluster.local, subset: v1}, weight: 100}
    - {destination: {host: reviews.default.svc.cluster.local, subset: v2}, weight: 0}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
"""

UNCHANGED = MESH.split("---")[-2]  # the VirtualService as it is
WEIGHTS = UNCHANGED.replace("weight: 100", "weight: 50").replace("weight: 0}", "weight: 50}")
INVALID = UNCHANGED.replace("weight: 100", "weight: -1")

PRODUCTPAGE = "productpage-v1.default"
GATEWAY = "ingressgateway.default"


def write_mesh(root: Path) -> Path:
    config = root / "config"
    config.mkdir()
    (config / "bookinfo.yaml").write_text(MESH)
    return config
