"""`istioctl analyze` through the installed console script: Istio's output forms, thresholds,
exit codes (0, 79 issues, 65 unparseable input, 64 bad -o, 1 errors), inputs (files,
directories, stdin, a running istiod's /debug/configz) and Istio's own Bookinfo samples."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
BOOKINFO = (PROJECT / "../shared/conformance/bookinfo").resolve()
ISTIOCTL = Path(sys.executable).parent / "istioctl"
DOCS = "See https://istio.io/v1.28/docs/reference/config/analysis for more information about"
FOUND = "Error: Analyzers found issues when analyzing namespace: default.\n" + DOCS

MISSING_GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews.example.com]
  gateways: [nope]
  http:
  - directResponse: {status: 200}
"""
WARNING_ONLY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody}
spec:
  selector: {matchLabels: {app: nobody}}
"""
CLEAN = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"""


def istioctl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ISTIOCTL), "analyze", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_issue_found_prints_istios_line_and_exits_79(tmp_path: Path) -> None:
    path = write(tmp_path, "vs.yaml", MISSING_GATEWAY)
    result = istioctl(path)
    assert result.returncode == 79
    assert result.stdout == (
        f"Error [IST0101] (VirtualService default/reviews {path}:7) Referenced gateway not found: "
        '"nope"\n'
    )
    assert result.stderr == FOUND + " causes and resolutions.\n"


def test_no_issues(tmp_path: Path) -> None:
    one = write(tmp_path, "a.yaml", CLEAN)
    result = istioctl(one)
    assert (result.returncode, result.stdout) == (0, "\n")
    assert result.stderr == f"\u2714 No validation issues found when analyzing {one}.\n"
    two = write(tmp_path, "b.yml", CLEAN.replace("httpbin", "other"))
    result = istioctl("-f", one, "-f", two)
    assert result.returncode == 0
    assert result.stderr == (
        f"\u2714 No validation issues found when analyzing:\n  - {one}\n  - {two}\n"
    )


def test_thresholds(tmp_path: Path) -> None:
    path = write(tmp_path, "ap.yaml", WARNING_ONLY)
    default = istioctl(path)
    assert default.returncode == 0  # a Warning is below the default failure threshold (Error)
    assert default.stdout.startswith("Warning [IST0127] (AuthorizationPolicy default/nobody")
    strict = istioctl("--failure-threshold", "Warning", path)
    assert (strict.returncode, strict.stdout) == (79, default.stdout)
    quiet = istioctl("--output-threshold", "Error", "--failure-threshold", "warning", path)
    assert (quiet.returncode, quiet.stdout) == (79, "\n")
    bad = istioctl("--failure-threshold", "fatal", path)
    assert bad.returncode == 1 and "invalid level 'fatal'" in bad.stderr


def test_json_and_yaml_output(tmp_path: Path) -> None:
    path = write(tmp_path, "vs.yaml", MISSING_GATEWAY)
    as_json = istioctl("-o", "json", path)
    assert as_json.returncode == 0  # istioctl sets the exit status only in log format
    assert json.loads(as_json.stdout) == [
        {
            "code": "IST0101",
            "documentationUrl": "https://istio.io/v1.28/docs/reference/config/analysis/ist0101/"
            "?ref=istioctl-analyze",
            "level": "Error",
            "message": 'Referenced gateway not found: "nope"',
            "origin": "VirtualService default/reviews",
            "reference": f"{path}:7",
        }
    ]
    assert as_json.stdout.startswith("[\n\t{\n\t\t")  # tab-indented, as Go's MarshalIndent
    as_yaml = istioctl("-o", "yaml", path)
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)
    assert istioctl("-o", "json", write(tmp_path, "ok.yaml", CLEAN)).stdout == "[]\n"


def test_usage_and_input_errors(tmp_path: Path) -> None:
    bad_format = istioctl("-o", "xml", write(tmp_path, "ok.yaml", CLEAN))
    assert bad_format.returncode == 64
    assert bad_format.stderr == (
        "Error: xml not a valid option for format. See istioctl analyze --help\n"
    )
    missing = istioctl(str(tmp_path / "absent.yaml"))
    assert missing.returncode == 1
    assert missing.stderr == f"Error: stat {tmp_path / 'absent.yaml'}: no such file or directory\n"


def test_unparseable_documents_exit_65_unless_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", CLEAN + "---\nkind: [unclosed\n")
    result = istioctl(path)
    assert result.returncode == 65
    assert result.stdout == "\n"
    assert result.stderr.splitlines() == [
        "Error(s) adding files:",
        f"\t* error processing {path}[1]: YAML syntax error at line 10, column 1: while parsing a"
        " flow sequence: did not find expected ',' or ']'",
        "No validation issues found when analyzing namespace: default (but 1 file could not be"
        " parsed).",
        "Error: Some files couldn't be parsed.",
    ]
    assert istioctl("--ignore-unknown", path).returncode == 0
    # Issues win over parse errors.
    assert istioctl(path, write(tmp_path, "vs.yaml", MISSING_GATEWAY)).returncode == 79


def test_schema_errors_are_messages_not_parse_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dr.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: d}\nspec:\n  host: ''\n",
    )
    result = istioctl(path)
    assert result.returncode == 79
    assert result.stdout.startswith(
        f"Error [IST0106] (DestinationRule default/d {path}:5) Schema validation error: spec.host:"
    )


def test_directories_stdin_and_namespaces(tmp_path: Path) -> None:
    write(tmp_path, "dir/sub/vs.yaml", MISSING_GATEWAY.replace("name: reviews", "name: r1"))
    write(tmp_path, "dir/notes.txt", "not yaml")
    other = MISSING_GATEWAY.replace("name: reviews", "{name: r2, namespace: prod}").replace(
        "metadata:\n  {", "metadata: {"
    )
    write(tmp_path, "dir/prod.json", json.dumps(yaml.safe_load(other)))
    result = istioctl("-R", str(tmp_path / "dir"))
    assert result.returncode == 79
    assert [line.split(")")[0] for line in result.stdout.splitlines()] == [
        f"Error [IST0101] (VirtualService default/r1 {tmp_path}/dir/sub/vs.yaml:7"
    ]
    assert (
        f"Skipping file {tmp_path}/dir/notes.txt, recognized file extensions are: "
        "[.json .yaml .yml]"
    ) in result.stderr
    everywhere = istioctl("-A", str(tmp_path / "dir"))
    assert f"(VirtualService prod/r2 {tmp_path}/dir/prod.json) " in everywhere.stdout  # no line
    assert "when analyzing all namespaces" in everywhere.stderr
    prod = istioctl("-n", "prod", "-", stdin=MISSING_GATEWAY)
    assert (prod.returncode, prod.stdout) == (
        79,
        'Error [IST0101] (VirtualService prod/reviews -:7) Referenced gateway not found: "nope"\n',
    )


def test_suppress_and_list(tmp_path: Path) -> None:
    path = write(tmp_path, "vs.yaml", MISSING_GATEWAY)
    result = istioctl("-S", "IST0101=VirtualService default/*", "-S", "IST9999=x", path)
    assert result.returncode == 0
    assert "Warning: Supplied message code 'IST9999' is an unknown message code" in result.stderr
    listing = istioctl("-L")
    assert "* virtualservice.GatewayAnalyzer:\n    Checks the gateways" in listing.stdout


class _Configz(BaseHTTPRequestHandler):
    payloads: dict[str, Any] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.payloads.get(self.path, {})).encode()
        self.send_response(200 if self.path in self.payloads else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def istiod_debug() -> Iterator[tuple[str, dict[str, Any]]]:
    """A stand-in for istiod's debug endpoints: the test fills `payloads[path]`."""
    payloads: dict[str, Any] = {}
    handler = type("Handler", (_Configz,), {"payloads": payloads})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", payloads
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_istiod_configz_with_a_rejection_and_files_on_top(
    tmp_path: Path, istiod_debug: tuple[str, dict[str, Any]]
) -> None:
    url, payloads = istiod_debug
    rejected = yaml.safe_load(MISSING_GATEWAY.replace("gateways: [nope]", "gateways: [mesh]"))
    rejected["status"] = {
        "rejected": {
            "message": "route: invalid",
            "proxy": "web.default",
            "serving": "3",
            "typeUrl": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }
    payloads["/debug/configz"] = [rejected, yaml.safe_load(WARNING_ONLY)]
    payloads["/debug/adsz"] = {
        "clients": [
            {
                "connectionId": "sidecar~127.0.0.2~nb.default~x-1",
                "labels": {"app": "nobody"},
                "metadata": {"NAMESPACE": "default"},
            }
        ]
    }
    result = istioctl("--istiod", url)
    assert result.returncode == 79
    assert result.stdout == (
        "Error [PYI0001] (VirtualService default/reviews) The configuration generated from this"
        ' resource was rejected by proxy web.default (RDS): "route: invalid". istiod serves its'
        " last accepted version 3 instead.\n"
    )
    # A file analyzed on top replaces istiod's version of the same object.
    fixed = write(tmp_path, "vs.yaml", MISSING_GATEWAY.replace("gateways: [nope]", "gateways: []"))
    assert istioctl("--istiod", url, fixed).returncode == 0


def test_istiod_unreachable(closed_port: int) -> None:
    result = istioctl("--istiod", f"127.0.0.1:{closed_port}")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: --istiod: cannot reach http://127.0.0.1:{closed_port}/debug/configz:"
    )


ROUTING_SAMPLES = sorted(
    p.name for p in (BOOKINFO / "networking").glob("*.yaml") if p.name.startswith("virtual-service")
)
# Findings Istio's samples really have when applied with bookinfo.yaml and
# destination-rule-all.yaml: bookinfo.yaml deploys only v1 of details and ratings (their v2,
# mysql and mysql-vm variants are separate samples), so those subsets select no pod.
KNOWN = [
    ("IST0173", "DestinationRule default/details", "The Subset v2"),
    ("IST0173", "DestinationRule default/ratings", "The Subset v2 "),
    ("IST0173", "DestinationRule default/ratings", "The Subset v2-mysql "),
    ("IST0173", "DestinationRule default/ratings", "The Subset v2-mysql-vm "),
]


def _findings(stdout: str) -> list[tuple[str, str, str]]:
    out = []
    for line in stdout.splitlines():
        if not line:
            continue
        code = line.split("[")[1].split("]")[0]
        origin = line.split("(")[1].split(" ../")[0].split(f" {BOOKINFO}")[0]
        out.append((code, origin, line.split(") ", 1)[1]))
    return out


@pytest.mark.parametrize("sample", ROUTING_SAMPLES)
def test_bookinfo_routing_samples_have_only_real_findings(sample: str) -> None:
    result = istioctl(
        str(BOOKINFO / "platform/bookinfo.yaml"),
        str(BOOKINFO / "networking/destination-rule-all.yaml"),
        str(BOOKINFO / "networking/bookinfo-gateway.yaml"),
        str(BOOKINFO / "networking" / sample),
    )
    found = _findings(result.stdout)
    assert len(found) == len(KNOWN), result.stdout
    for (code, origin, text), (want_code, want_origin, want_text) in zip(found, KNOWN, strict=True):
        assert (code, origin) == (want_code, want_origin) and text.startswith(want_text)
    assert result.returncode == 79


def test_other_bookinfo_samples() -> None:
    """Each remaining sample alone with the platform: the findings are real ones."""
    platform = str(BOOKINFO / "platform/bookinfo.yaml")
    net = BOOKINFO / "networking"
    # The mTLS rules: same subsets as destination-rule-all.yaml, same real findings.
    mtls = istioctl(platform, str(net / "destination-rule-all-mtls.yaml"))
    assert [f[:2] for f in _findings(mtls.stdout)] == [k[:2] for k in KNOWN]
    # The second rule has no match after a rule with no match: Istio's own validation warns.
    fault = _findings(istioctl(platform, str(net / "fault-injection-details-v1.yaml")).stdout)
    assert fault == [
        (
            "IST0130",
            "VirtualService default/details",
            "VirtualService rule #1 not used (only the last rule can have no matches).",
        )
    ]
    # TLS origination without caCertificates does not verify googleapis' certificate.
    egress = _findings(istioctl(platform, str(net / "egress-rule-google-apis.yaml")).stdout)
    assert [f[:2] for f in egress] == [
        ("IST0129", "DestinationRule default/originate-tls-for-googleapis")
    ]
    # cert-manager's solver service is created by cert-manager, not by these files.
    certs = istioctl("-A", platform, str(net / "certmanager-gateway.yaml"))
    assert _findings(certs.stdout) == [
        (
            "IST0101",
            "VirtualService istio-system/cert-manager",
            'Referenced host not found: "cert-manager-resolver"',
        )
    ]
    assert istioctl(platform, str(net / "destination-rule-reviews.yaml")).returncode == 0
