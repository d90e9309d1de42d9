"""istiod's webhooks and the injected sidecar's identity, against a real istiod (issue 9, item 4).

One istiod for the module. AdmissionReview v1 requests go to /validate and /inject over real
HTTPS (istiod's certificate checked against the mesh root, for `istiod.istio-system.svc`), with
Bookinfo's own objects read in place from ../shared/conformance/bookinfo: its VirtualServices
are allowed, a broken one is denied with the object and field path, its Deployments' pod
templates get a JSONPatch that, applied, gives a valid pod with Istio's sidecar. Last, a real
Envoy with the injected bootstrap (STS call credentials) keeps getting configuration across an
istiod restart after its token file was replaced and the old token revoked — no Envoy restart.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import http.client
import json
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from pkg.inject.bootstrap import StsCredentials, sidecar_bootstrap
from pkg.inject.sidecar import proxy_options
from pkg.proxy_bootstrap import ISTIOD_SAN

from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .net import allocate_ip, split_host_port, wait_until
from .traffic import Response, request

BOOKINFO = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "bookinfo"
PLATFORM = BOOKINFO / "platform" / "bookinfo.yaml"
NETWORKING = BOOKINFO / "networking"
K8S_VERSION = "1.37.0"
JWT = "urn:ietf:params:oauth:token-type:jwt"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"

SERVICE_ENTRY = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.example.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


class Mesh:
    def __init__(self, istiod: IstiodProcess) -> None:
        self.istiod = istiod
        self.root_pem = istiod.get("/v1/root-cert").body
        self.tls = ssl.create_default_context(cadata=self.root_pem.decode())

    def webhook(self, path: str, body: bytes, content_type: str = "application/json") -> Response:
        host, port = split_host_port(self.istiod.address("webhook"))
        conn = http.client.HTTPSConnection(host, port, context=self.tls, timeout=5.0)
        try:
            conn.request("POST", path, body=body, headers={"content-type": content_type})
            resp = conn.getresponse()
            return Response(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()

    def review(self, path: str, obj: Any, *, operation: str = "CREATE",
               kind: str = "Pod", namespace: str = "default") -> dict[str, Any]:  # fmt: skip
        uid = str(uuid.uuid4())
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": kind},
                        "namespace": namespace, "operation": operation, "object": obj},
        }  # fmt: skip
        resp = self.webhook(path, json.dumps(body).encode())
        assert resp.status == 200, resp.body
        answer: dict[str, Any] = resp.json()
        assert answer["apiVersion"] == "admission.k8s.io/v1"
        assert answer["kind"] == "AdmissionReview"
        assert answer["response"]["uid"] == uid
        return answer["response"]

    def post(self, path: str, body: bytes, content_type: str) -> Response:
        host, port = split_host_port(self.istiod.address("http"))
        return request(host, port, "POST", path, body=body,
                       headers={"content-type": content_type}, timeout=5.0)  # fmt: skip

    def token(self, account: str, *, revoke_first: bool = False) -> str:
        body = json.dumps({"namespace": "default", "serviceAccount": account}).encode()
        if revoke_first:
            assert self.post("/v1/token/revoke", body, "application/json").status == 200
        resp = self.post("/v1/token", body, "application/json")
        assert resp.status == 200, resp.body
        token: str = resp.json()["token"]
        return token

    def sts(self, subject: str, **override: str) -> Response:
        form = {"grant_type": EXCHANGE, "subject_token": subject, "subject_token_type": JWT}
        form.update(override)
        return self.post("/token", urlencode(form).encode(), "application/x-www-form-urlencoded")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir = tmp_path_factory.mktemp("webhooks")
    (workdir / "config").mkdir()
    (workdir / "config" / "se-first.yaml").write_text(SERVICE_ENTRY.format(name="first"))
    istiod = IstiodProcess(workdir, required=("grpc", "http", "secure-grpc", "webhook"))
    istiod.start()
    try:
        yield Mesh(istiod)
    finally:
        istiod.stop()


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _bookinfo_pods() -> list[dict[str, Any]]:
    """Bookinfo's Deployments → the pods their ReplicaSets would create."""
    pods = []
    for doc in _documents(PLATFORM):
        if doc["kind"] == "Deployment":
            pod = copy.deepcopy(doc["spec"]["template"])
            pod["metadata"]["generateName"] = f"{doc['metadata']['name']}-5f7b9c-"
            pods.append({"apiVersion": "v1", "kind": "Pod", **pod})
    assert len(pods) == 6
    return pods


# ---- HTTPS and /validate ---------------------------------------------------------------------


def test_webhook_certificate_is_from_the_mesh_ca_for_the_istiod_service(mesh: Mesh) -> None:
    host, port = split_host_port(mesh.istiod.address("webhook"))
    with (
        socket.create_connection((host, port), timeout=5.0) as raw,
        mesh.tls.wrap_socket(raw, server_hostname=ISTIOD_SAN) as tls,
    ):
        cert = tls.getpeercert()
    assert ("DNS", ISTIOD_SAN) in cert["subjectAltName"]
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]


def test_validate_allows_bookinfo_config_and_denies_with_the_field_path(mesh: Mesh) -> None:
    objects = [d for f in sorted(NETWORKING.glob("virtual-service-*.yaml")) for d in _documents(f)]
    objects += _documents(NETWORKING / "destination-rule-all.yaml")
    assert len(objects) > 10
    for obj in objects:
        response = mesh.review("/validate", obj, kind=obj["kind"])
        assert response["allowed"], (obj["metadata"]["name"], response)

    broken = copy.deepcopy(_documents(NETWORKING / "virtual-service-reviews-80-20.yaml")[0])
    broken["spec"]["http"][0]["route"][1]["weight"] = -20
    response = mesh.review("/validate", broken, kind="VirtualService")
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert message.startswith("configuration is invalid: VirtualService/default/reviews: ")
    assert "spec.http[0].route[1].weight" in message

    # Deleting is never checked; kinds outside Istio's groups pass.
    assert mesh.review("/validate", broken, operation="DELETE")["allowed"] is True
    assert mesh.review("/validate", _documents(PLATFORM)[0], kind="Service")["allowed"] is True
    unknown = {**broken, "kind": "VirtualRouter"}
    response = mesh.review("/validate", unknown, kind="VirtualRouter")
    assert response["allowed"] is False
    assert "VirtualRouter" in response["status"]["message"]


def test_malformed_requests_are_refused_with_a_reason(mesh: Mesh) -> None:
    resp = mesh.webhook("/validate", b"{not json")
    assert resp.status == 400 and b"could not decode body" in resp.body
    resp = mesh.webhook("/inject", json.dumps({"kind": "AdmissionReview"}).encode())
    assert resp.status == 400 and b"admission.k8s.io/v1" in resp.body
    no_uid = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}
    resp = mesh.webhook("/validate", json.dumps(no_uid).encode())
    assert resp.status == 400 and b"request.uid" in resp.body
    assert mesh.webhook("/validate", b"x", content_type="text/plain").status == 415


# ---- /inject -----------------------------------------------------------------------------------


def test_inject_patches_bookinfo_pods_into_valid_injected_pods(mesh: Mesh) -> None:
    for pod in _bookinfo_pods():
        response = mesh.review("/inject", pod)
        assert response["allowed"] is True
        assert response["patchType"] == "JSONPatch"
        patch = json.loads(base64.b64decode(response["patch"]))
        injected = jsonpatch.apply_patch(pod, patch)
        spec, meta = injected["spec"], injected["metadata"]
        app = pod["spec"]["containers"][0]["name"]
        assert [c["name"] for c in spec["containers"]] == [app, "istio-proxy"]
        assert [c["name"] for c in spec["initContainers"]] == ["istio-init"]
        proxy = spec["containers"][1]
        assert proxy["securityContext"]["runAsUser"] == 1337
        assert {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"} in proxy[
            "ports"
        ]
        assert proxy["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
        assert "REDIRECT" in spec["initContainers"][0]["args"]
        assert meta["labels"]["security.istio.io/tlsMode"] == "istio"
        assert meta["labels"]["service.istio.io/canonical-name"] == pod["metadata"]["labels"]["app"]
        labels = pod["metadata"]["labels"]
        assert meta["labels"]["service.istio.io/canonical-revision"] == labels["version"]
        status = json.loads(meta["annotations"]["sidecar.istio.io/status"])
        assert status["containers"] == ["istio-proxy"]
        assert meta["annotations"]["kubectl.kubernetes.io/default-container"] == app
        kubernetes_validate.validate(injected, K8S_VERSION, strict=True)
        # Injected once: a second pass leaves it alone.
        assert "patch" not in mesh.review("/inject", injected)


def test_inject_respects_opt_out_host_network_and_system_namespaces(mesh: Mesh) -> None:
    pod = _bookinfo_pods()[0]
    opted_out = copy.deepcopy(pod)
    opted_out["metadata"]["labels"]["sidecar.istio.io/inject"] = "false"
    host_network = copy.deepcopy(pod)
    host_network["spec"]["hostNetwork"] = True
    for obj, namespace in ((opted_out, "default"), (host_network, "default"), (pod, "kube-system")):
        response = mesh.review("/inject", obj, namespace=namespace)
        assert response["allowed"] is True and "patch" not in response


# ---- the injected sidecar's identity -------------------------------------------------------


def test_sts_exchanges_a_service_account_token_and_refuses_bad_requests(mesh: Mesh) -> None:
    subject = mesh.token("sts-check")
    resp = mesh.sts(subject)
    assert resp.status == 200, resp.body
    answer = resp.json()
    assert answer["token_type"] == "Bearer"
    assert answer["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert 0 < answer["expires_in"] < 60  # below gRPC's refresh threshold
    # An access token cannot be exchanged again; bad grants and tokens are refused.
    assert mesh.sts(answer["access_token"]).json()["error"] == "invalid_grant"
    assert mesh.sts(subject, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert mesh.sts("not-a-jwt").status == 401
    assert mesh.sts(subject, subject_token_type="x").status == 400


def test_injected_envoy_survives_token_rotation_without_restart(mesh: Mesh, tmp_path: Path) -> None:
    account = "bookinfo-reviews"
    token_file = tmp_path / "istio-token"
    old_token = mesh.token(account)
    token_file.write_text(old_token + "\n")  # as the kubelet writes it
    root_file = tmp_path / "root-cert.pem"
    root_file.write_bytes(mesh.root_pem)
    ip = allocate_ip()
    opts = proxy_options({"app": "reviews"}, account, mesh.istiod.secure_grpc_addr)
    # What the kubelet fills in for $(INSTANCE_IP), $(POD_NAME), $(POD_NAMESPACE).
    opts = dataclasses.replace(
        opts, ip=ip, name="reviews-v1-x1", namespace="default", admin_address=ip
    )
    sts = StsCredentials(f"{mesh.istiod.http_url}/token", str(token_file), str(root_file))
    envoy = EnvoyProcess(sidecar_bootstrap(opts, sts, listen=ip), tmp_path / "envoy")
    with envoy.start():
        envoy.wait_for(lambda: "outbound|80||first.example.com" in envoy.cluster_names(),
                       timeout=20.0, message="config from istiod")  # fmt: skip
        # Istio's readiness port answers from Envoy's own /ready once its config is in.
        wait_until(lambda: request(ip, 15021, "GET", "/healthz/ready").status == 200,
                   10.0, message="15021 /healthz/ready")  # fmt: skip
        pid = envoy.pid

        # The kubelet rotates the token; the old one becomes worthless.
        new_token = mesh.token(account, revoke_first=True)
        tmp = token_file.with_suffix(".new")
        tmp.write_text(new_token + "\n")
        tmp.replace(token_file)
        assert mesh.sts(old_token).status == 401

        # istiod restarts: Envoy must reconnect, exchanging the new token, and get new config.
        (mesh.istiod.config_dir / "se-second.yaml").write_text(SERVICE_ENTRY.format(name="second"))
        mesh.istiod.restart()
        envoy.wait_for(lambda: "outbound|80||second.example.com" in envoy.cluster_names(),
                       timeout=30.0, message="config after the token rotation")  # fmt: skip
        assert envoy.pid == pid and envoy.running
