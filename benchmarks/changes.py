"""The three small files the xDS push benchmark adds to a rendered config, and how it rewrites
them to make a change:

- bench-target.yaml: a ServiceEntry with one endpoint; the endpoint change moves its address
  (endpoints only: istiod should push EDS only);
- bench-route.yaml: a VirtualService on it; the route change edits its rewrite URI (every
  proxy's route config "80" changes);
- bench-policy.yaml: a DestinationRule on it; the cluster change edits its connection pool
  (one cluster changes, on every proxy).

Each change atomically replaces one file (write a hidden temp file, then rename).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TARGET_HOST = "bench-target.bench.example"
CHANGES = ("route", "cluster", "endpoint")


def target_yaml(n: int) -> str:
    """ServiceEntry with one endpoint; `n` picks the endpoint address (endpoint change)."""
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench-target
  namespace: default
spec:
  hosts:
  - {TARGET_HOST}
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints:
  - address: 127.250.{n // 250}.{n % 250 + 1}
"""


def route_yaml(n: int) -> str:
    """VirtualService on the target; `n` picks the rewrite URI (route change)."""
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bench-route
  namespace: default
spec:
  hosts:
  - {TARGET_HOST}
  http:
  - name: bench
    match:
    - uri:
        prefix: /bench
    rewrite:
      uri: /rewritten-{n}
    route:
    - destination:
        host: {TARGET_HOST}
"""


def policy_yaml(n: int) -> str:
    """DestinationRule on the target; `n` picks a connection-pool limit (cluster change)."""
    return f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: bench-policy
  namespace: default
spec:
  host: {TARGET_HOST}
  trafficPolicy:
    connectionPool:
      http:
        http1MaxPendingRequests: {1000 + n}
"""


CHANGE_FILES: dict[str, tuple[str, Callable[[int], str]]] = {
    "route": ("bench-route.yaml", route_yaml),
    "cluster": ("bench-policy.yaml", policy_yaml),
    "endpoint": ("bench-target.yaml", target_yaml),
}


def atomic_write(path: Path, text: str) -> None:
    """Write a hidden temp file next to `path` (istiod ignores dot files) and rename it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_initial(config_dir: Path) -> None:
    """The three files in their starting state (change number 0)."""
    for file_name, make in CHANGE_FILES.values():
        (config_dir / file_name).write_text(make(0))
