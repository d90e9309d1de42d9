"""`istioctl analyze --istiod` against a real istiod: the findings come from the objects
istiod serves (its /debug/configz), and follow edits of its config directory.

istiod watches a directory holding a VirtualService bound to a Gateway that does not exist and
two mesh VirtualServices for the same host: analyze reports IST0101 and IST0109 (exit 79), with
no file reference (the objects come from istiod). Adding the Gateway and removing the duplicate
makes the analysis clean (exit 0) once istiod has reloaded.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .istiod import IstiodProcess
from .mesh import remove_config, write_config
from .net import wait_until

ISTIOCTL = Path(sys.executable).parent / "istioctl"

SERVICES = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
"""
ROUTES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: public, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [edge]
  http: [{route: [{destination: {host: reviews.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.example.com]
  http: [{route: [{destination: {host: reviews.example.com}}]}]
"""
DUPLICATE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-canary, namespace: default}
spec:
  hosts: [reviews.example.com]
  http: [{timeout: 1s, route: [{destination: {host: reviews.example.com}}]}]
"""
GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {app: edge}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: [shop.example.com]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: edge-1, namespace: default}
spec: {address: 127.0.0.1, labels: {app: edge}}
"""
CONFLICT = (
    "The VirtualServices default/reviews,default/reviews-canary associated with mesh gateway "
    "define the same host */reviews.example.com which can lead to undefined behavior. This can "
    "be fixed by merging the conflicting VirtualServices into a single resource."
)


def analyze(istiod: IstiodProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ISTIOCTL), "analyze", "--istiod", istiod.http_url, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_analyze_a_running_istiod(
    tmp_path: Path, istiod_factory: Callable[..., IstiodProcess]
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    write_config(config, "services.yaml", SERVICES)
    write_config(config, "routes.yaml", ROUTES)
    write_config(config, "canary.yaml", DUPLICATE)
    istiod = istiod_factory(config)

    result = analyze(istiod)
    assert result.stdout.splitlines() == [
        'Error [IST0101] (VirtualService default/public) Referenced gateway not found: "edge"',
        f"Error [IST0109] (VirtualService default/reviews-canary) {CONFLICT}",
        f"Error [IST0109] (VirtualService default/reviews) {CONFLICT}",
    ], result.stderr
    assert result.returncode == 79
    assert "Analyzers found issues when analyzing namespace: default." in result.stderr

    write_config(config, "gateway.yaml", GATEWAY)
    remove_config(config, "canary.yaml")
    clean = wait_until(
        lambda: (r := analyze(istiod)).returncode == 0 and r,
        20.0,
        0.2,
        "istioctl analyze to find nothing once istiod reloaded",
    )
    assert clean.stdout == "\n"
    assert clean.stderr == "\u2714 No validation issues found when analyzing namespace: default.\n"
