"""AuthorizationPolicy end to end: real istiod, two real secure Envoy sidecars (sleep → httpbin
over mTLS, see security_helpers) and real ext_authz servers (ext_authz.py), on loopback.

1. ALLOW by source principal: sleep's mTLS requests pass, a plaintext request straight to
   httpbin's sidecar (no peer certificate, no principal) gets `403 RBAC: access denied`, and
   allowing another principal only shuts sleep out too.
2. DENY by path beats everything else; other paths still pass.
3. CUSTOM with the HTTP and the gRPC ext_authz provider: only the policy's paths are sent to
   the authorization server, which allows requests carrying `x-ext-authz: allow`.

One istiod (its mesh config names both providers) and the sidecars serve every test; each test
writes its policies to one file and removes it, waiting for the sidecar to follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from .ext_authz import ALLOW, DECISION_HEADER, GrpcExtAuthz, HttpExtAuthz, ext_authz_servers
from .mesh import join_docs, remove_config, write_config
from .net import allocate_ip, wait_until
from .security_helpers import HTTPBIN_PORT, SecureMesh, secure_mesh, spiffe_id
from .traffic import Response, request

POLICY = "authz.yaml"
SLEEP_ID = spiffe_id("default", "sleep")
DENIED = b"RBAC: access denied"


@dataclass
class AuthzMesh:
    mesh: SecureMesh
    http_authz: HttpExtAuthz
    grpc_authz: GrpcExtAuthz

    def via_client(self, path: str = "/", headers: dict[str, str] | None = None) -> Response:
        return request(
            self.mesh.client_ip, HTTPBIN_PORT, "GET", path, host="httpbin", headers=headers
        )

    def direct(self, path: str = "/") -> Response:
        return request(self.mesh.server_ip, HTTPBIN_PORT, "GET", path, host="httpbin")

    def applied(self) -> set[str]:
        """Names of the AuthorizationPolicies in httpbin's sidecar's listeners (its RBAC
        policy keys `ns[..]-policy[<name>]-rule[..]`)."""
        text = json.dumps(self.mesh.server.config_section("ListenersConfigDump"))
        return set(re.findall(r"-policy\[([^\]]+)\]-rule", text))

    def apply(self, *docs: str) -> None:
        """Replace the policies and wait until httpbin's sidecar has exactly them."""
        text = join_docs(*docs)
        write_config(self.mesh.config_dir, POLICY, text)
        names = set(re.findall(r"metadata: \{name: ([\w-]+),", text))
        wait_until(lambda: self.applied() == names, 15, message=f"policies {sorted(names)}")

    def clear(self) -> None:
        remove_config(self.mesh.config_dir, POLICY)
        wait_until(lambda: not self.applied(), 15, message="policies removed")


def ext_authz_yaml(name: str, ip: str, port: int, protocol: str) -> str:
    return f"""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {{name: {name}, namespace: default}}
        spec:
          hosts: [{name}.default.svc.cluster.local]
          location: MESH_INTERNAL
          resolution: STATIC
          ports: [{{number: {port}, name: {protocol.lower()}, protocol: {protocol}}}]
          endpoints: [{{address: {ip}}}]
        """


def policy(name: str, spec: str) -> str:
    return f"""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {{name: {name}, namespace: default}}
        spec:
          selector: {{matchLabels: {{app: httpbin}}}}
{spec}
        """


@pytest.fixture(scope="module")
def authz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthzMesh]:
    ip = allocate_ip()
    with ext_authz_servers(ip) as (http_authz, grpc_authz):
        mesh_config = f"""
            extensionProviders:
            - name: http-authz
              envoyExtAuthzHttp:
                service: ext-authz-http.default.svc.cluster.local
                port: {http_authz.port}
                includeRequestHeadersInCheck: [{DECISION_HEADER}]
            - name: grpc-authz
              envoyExtAuthzGrpc:
                service: ext-authz-grpc.default.svc.cluster.local
                port: {grpc_authz.port}
            """
        with secure_mesh(tmp_path_factory.mktemp("authz"), mesh_config=mesh_config) as mesh:
            write_config(
                mesh.config_dir,
                "ext-authz.yaml",
                join_docs(
                    ext_authz_yaml("ext-authz-http", ip, http_authz.port, "HTTP"),
                    ext_authz_yaml("ext-authz-grpc", ip, grpc_authz.port, "GRPC"),
                ),
            )
            yield AuthzMesh(mesh, http_authz, grpc_authz)


def denied(resp: Response) -> bool:
    return resp.status == 403 and DENIED in resp.body


def test_allow_by_source_principal(authz: AuthzMesh) -> None:
    allow_sleep = """
          rules:
          - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    """
    authz.apply(policy("allow-sleep", allow_sleep))
    try:
        assert denied(authz.direct())
        for _ in range(5):
            resp = authz.via_client()
            assert resp.status == 200, (resp.status, resp.body[:200])
            assert denied(authz.direct())
        allow_other = """
          rules:
          - from: [{source: {principals: ["cluster.local/ns/default/sa/other"]}}]
        """
        authz.apply(policy("allow-other", allow_other))
        assert denied(authz.via_client())
    finally:
        authz.clear()


def test_deny_by_path(authz: AuthzMesh) -> None:
    deny_private = """
          action: DENY
          rules:
          - to: [{operation: {paths: ["/private/*"]}}]
    """
    authz.apply(policy("deny-private", deny_private))
    try:
        assert denied(authz.via_client("/private/x"))
        assert authz.via_client("/public").status == 200
        assert denied(authz.direct("/private/y"))
    finally:
        authz.clear()


@pytest.mark.parametrize("provider", ["http-authz", "grpc-authz"])
def test_custom_ext_authz(authz: AuthzMesh, provider: str) -> None:
    server = authz.http_authz if provider == "http-authz" else authz.grpc_authz
    custom = f"""
          action: CUSTOM
          provider: {{name: {provider}}}
          rules:
          - to: [{{operation: {{paths: ["/admin/*"]}}}}]
    """
    authz.apply(policy("ext", custom))
    try:
        refused = authz.via_client("/admin/a")
        assert refused.status == 403, (refused.status, refused.body[:200])
        assert "/admin/a" in server.checked
        allowed = authz.via_client("/admin/b", headers={DECISION_HEADER: ALLOW})
        assert allowed.status == 200, (allowed.status, allowed.body[:200])
        assert "/admin/b" in server.checked
        before = list(server.checked)
        assert authz.via_client("/other").status == 200
        assert server.checked == before  # not a path of the policy: no check
    finally:
        authz.clear()
