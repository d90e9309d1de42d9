"""AuthorizationPolicy and RequestAuthentication end to end: real istiod, three real secure
Envoy sidecars (clients sleep and notsleep → httpbin over mTLS, see security_helpers), real
ext_authz servers (ext_authz.py) and a JWKS server (jwks.py), on loopback.

1. ALLOW by source principal: sleep's mTLS requests pass; notsleep's (another service account,
   also over mTLS) and a plaintext request straight to httpbin's sidecar (no peer certificate,
   no principal) get `403 RBAC: access denied`; allowing another principal only shuts sleep
   out too.
2. ALLOW `when` a request header has a value: only requests carrying it pass.
3. DENY by path beats everything else; other paths still pass.
4. Policies without a selector: a namespace-wide DENY (namespace default) and a root-namespace
   one (istio-system, mesh-wide) both reach httpbin's sidecar, a namespace-wide policy of
   another namespace does not; removing them restores access.
5. CUSTOM with the HTTP and the gRPC ext_authz provider: only the policy's paths are sent to
   the authorization server, which allows requests carrying `x-ext-authz: allow`.
6. RequestAuthentication on httpbin's sidecar with keys istiod fetched from the JWKS server:
   the client app sends `Authorization: Bearer ...` to its own sidecar, which forwards it over
   mTLS; a valid token passes, a bad signature, an expired or a malformed token gets 401, no
   token passes; with an ALLOW on `requestPrincipals: [<issuer>/alice]` only alice's tokens
   pass (another subject, no token: 403).

One istiod (its mesh config names both ext_authz providers) and the sidecars serve every test;
each test writes its policies to one file (RequestAuthentications to another) and removes it,
waiting for httpbin's sidecar to follow (its config_dump), never sleeping.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.helpers.jwks_server import JwksServer, new_key, public_jwk

from .ext_authz import ALLOW, DECISION_HEADER, GrpcExtAuthz, HttpExtAuthz, ext_authz_servers
from .jwks import jwks_server
from .mesh import join_docs, write_config
from .net import allocate_ip, wait_until
from .security_helpers import HTTPBIN_PORT, SecureMesh, secure_mesh, spiffe_id
from .traffic import Response, request

POLICY = "authz.yaml"
AUTHN = "authn.yaml"
SLEEP_ID = spiffe_id("default", "sleep")
DENIED = b"RBAC: access denied"
JWT_AUTHN = "envoy.filters.http.jwt_authn"
NOTSLEEP = "notsleep"


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in `node`, depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


@dataclass
class AuthzMesh:
    mesh: SecureMesh
    http_authz: HttpExtAuthz
    grpc_authz: GrpcExtAuthz

    def via_client(self, path: str = "/", headers: Mapping[str, str] | None = None) -> Response:
        return request(
            self.mesh.client_ip, HTTPBIN_PORT, "GET", path, host="httpbin", headers=headers
        )

    def via_notsleep(self, path: str = "/", headers: Mapping[str, str] | None = None) -> Response:
        """Through the second client sidecar (service account notsleep), also over mTLS."""
        return self.mesh.clients[NOTSLEEP].request("GET", path, headers=headers)

    def direct(self, path: str = "/") -> Response:
        return request(self.mesh.server_ip, HTTPBIN_PORT, "GET", path, host="httpbin")

    def client_paths(self) -> dict[str, Callable[..., Response]]:
        """The ways to reach httpbin over mTLS: through each client sidecar."""
        return {"sleep": self.via_client, NOTSLEEP: self.via_notsleep}

    def all_paths(self) -> dict[str, Callable[..., Response]]:
        """The client sidecars, and plaintext straight to httpbin's sidecar."""
        return {**self.client_paths(), "direct": self.direct}

    def policy_keys(self) -> set[str]:
        """The RBAC policy keys `ns[<ns>]-policy[<name>]-rule[<i>]` in httpbin's sidecar's
        listeners."""
        text = json.dumps(self.mesh.server.config_section("ListenersConfigDump"))
        return set(re.findall(r"ns\[[^\]]+\]-policy\[[^\]]+\]-rule\[\d+\]", text))

    def applied(self) -> set[str]:
        """Names of the AuthorizationPolicies in httpbin's sidecar's listeners (its RBAC
        policy keys `ns[..]-policy[<name>]-rule[..]`)."""
        text = json.dumps(self.mesh.server.config_section("ListenersConfigDump"))
        return set(re.findall(r"-policy\[([^\]]+)\]-rule", text))

    def apply(self, *docs: str, expect: set[str] | None = None) -> None:
        """Replace the policies and wait until httpbin's sidecar has exactly `expect` (by
        default: every policy named in `docs`)."""
        text = join_docs(*docs)
        write_config(self.mesh.config_dir, POLICY, text)
        names = set(re.findall(r"metadata: \{name: ([\w-]+),", text)) if expect is None else expect
        wait_until(lambda: self.applied() == names, 15, message=f"policies {sorted(names)}")

    def clear(self) -> None:
        (self.mesh.config_dir / POLICY).unlink(missing_ok=True)
        wait_until(lambda: not self.applied(), 15, message="policies removed")

    def jwt_providers(self) -> dict[str, str]:
        """issuer → the JWKS (`local_jwks.inline_string`) of every jwt_authn provider in
        httpbin's sidecar's listeners."""
        dump = self.mesh.server.config_section("ListenersConfigDump")
        out: dict[str, str] = {}
        for node in _walk(dump):
            if node.get("name") != JWT_AUTHN:
                continue
            providers = node.get("typed_config", {}).get("providers", {})
            for provider in providers.values():
                jwks = provider.get("local_jwks", {}).get("inline_string", "")
                out[str(provider.get("issuer"))] = str(jwks)
        return out

    def authenticate(self, doc: str, issuer: str, key_n: str) -> None:
        """Write the RequestAuthentication `doc` and wait until httpbin's sidecar validates
        `issuer`'s tokens with the fetched key whose modulus is `key_n`."""
        write_config(self.mesh.config_dir, AUTHN, join_docs(doc))
        wait_until(
            lambda: key_n in self.jwt_providers().get(issuer, ""),
            15,
            message=f"jwt_authn provider for {issuer} with the served key",
        )

    def unauthenticate(self) -> None:
        (self.mesh.config_dir / AUTHN).unlink(missing_ok=True)
        wait_until(lambda: not self.jwt_providers(), 15, message="jwt_authn removed")


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


def unselected_policy(name: str, namespace: str, spec: str) -> str:
    """A policy without a selector: it applies to every workload of `namespace`, or of the
    whole mesh in the root namespace (istio-system)."""
    return f"""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
{spec}
        """


def request_authentication(jwks: JwksServer) -> str:
    return f"""
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {{name: jwt, namespace: default}}
        spec:
          selector: {{matchLabels: {{app: httpbin}}}}
          jwtRules:
          - issuer: "{jwks.issuer}"
            jwksUri: "{jwks.url()}"
        """


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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
        with secure_mesh(
            tmp_path_factory.mktemp("authz"), mesh_config=mesh_config, extra_clients=[NOTSLEEP]
        ) as mesh:
            write_config(
                mesh.config_dir,
                "ext-authz.yaml",
                join_docs(
                    ext_authz_yaml("ext-authz-http", ip, http_authz.port, "HTTP"),
                    ext_authz_yaml("ext-authz-grpc", ip, grpc_authz.port, "GRPC"),
                ),
            )
            yield AuthzMesh(mesh, http_authz, grpc_authz)


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with jwks_server(allocate_ip()) as server:
        yield server


def denied(resp: Response) -> bool:
    return resp.status == 403 and DENIED in resp.body


def test_allow_by_source_principal(authz: AuthzMesh) -> None:
    allow_sleep = """
          rules:
          - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"]}}]
    """
    assert authz.via_notsleep().status == 200  # no policy yet: every client passes
    authz.apply(policy("allow-sleep", allow_sleep))
    try:
        assert denied(authz.direct())
        for _ in range(5):
            resp = authz.via_client()
            assert resp.status == 200, (resp.status, resp.body[:200])
            # The same path over mTLS, but with notsleep's certificate: not the principal.
            refused = authz.via_notsleep()
            assert denied(refused), (refused.status, refused.body[:200])
            assert denied(authz.direct())
        allow_other = """
          rules:
          - from: [{source: {principals: ["cluster.local/ns/default/sa/other"]}}]
        """
        authz.apply(policy("allow-other", allow_other))
        assert denied(authz.via_client())
        assert denied(authz.via_notsleep())
    finally:
        authz.clear()
    assert authz.via_client().status == 200
    assert authz.via_notsleep().status == 200


def test_allow_when_request_header(authz: AuthzMesh) -> None:
    allow_token = """
          rules:
          - when: [{key: "request.headers[x-token]", values: [open-sesame]}]
    """
    authz.apply(policy("allow-token", allow_token))
    try:
        for _ in range(3):
            resp = authz.via_client(headers={"x-token": "open-sesame"})
            assert resp.status == 200, (resp.status, resp.body[:200])
            assert denied(authz.via_client())
            assert denied(authz.via_client(headers={"x-token": "wrong"}))
        # Any source: the condition is on the request only.
        assert authz.via_notsleep(headers={"x-token": "open-sesame"}).status == 200
        assert denied(authz.via_notsleep())
    finally:
        authz.clear()
    assert authz.via_client().status == 200


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


def test_namespace_and_root_namespace_policies(authz: AuthzMesh) -> None:
    def deny_path(path: str) -> str:
        return f"""
          action: DENY
          rules:
          - to: [{{operation: {{paths: ["{path}"]}}}}]
        """

    deny_ns = unselected_policy("deny-ns", "default", deny_path("/ns-secret"))
    # Namespace-wide in another namespace (denying everything): not httpbin's.
    deny_all = """
          action: DENY
          rules: [{}]
        """
    deny_other = unselected_policy("deny-other", "other", deny_all)
    deny_mesh = unselected_policy("deny-mesh", "istio-system", deny_path("/mesh-secret"))
    try:
        authz.apply(deny_ns, deny_other, expect={"deny-ns"})
        assert authz.policy_keys() == {"ns[default]-policy[deny-ns]-rule[0]"}
        for who, via in authz.all_paths().items():
            assert denied(via("/ns-secret")), who
            assert via("/mesh-secret").status == 200, who
            assert via("/public").status == 200, who

        # Root namespace: mesh-wide. The namespace policy is gone, its path open again.
        authz.apply(deny_mesh)
        assert authz.policy_keys() == {"ns[istio-system]-policy[deny-mesh]-rule[0]"}
        for who, via in authz.all_paths().items():
            assert denied(via("/mesh-secret")), who
            assert via("/ns-secret").status == 200, who

        # Both at once.
        authz.apply(deny_ns, deny_mesh, deny_other, expect={"deny-ns", "deny-mesh"})
        assert denied(authz.via_client("/ns-secret"))
        assert denied(authz.via_client("/mesh-secret"))
        assert authz.via_client("/public").status == 200
    finally:
        authz.clear()
    for path in ("/ns-secret", "/mesh-secret"):
        assert authz.via_client(path).status == 200
        assert authz.via_notsleep(path).status == 200


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


def test_request_authentication_and_request_principals(authz: AuthzMesh, jwks: JwksServer) -> None:
    key_n = str(public_jwk(jwks.key, jwks.kid)["n"])
    authz.authenticate(request_authentication(jwks), jwks.issuer, key_n)
    try:
        # A valid token passes; jwt_authn strips it (forwardOriginalToken is false).
        resp = authz.via_client("/headers", headers=bearer(jwks.sign()))
        assert resp.status == 200, (resp.status, resp.body[:200])
        assert "authorization" not in resp.json()["headers"]
        # No token: nothing to validate, and no policy requires one.
        assert authz.via_client().status == 200
        # Invalid tokens are rejected by httpbin's sidecar with 401.
        invalid = {
            "bad signature": jwks.sign(key=new_key()),
            "expired": jwks.sign({"exp": int(time.time()) - 3600}),
            "malformed": "not.a-jwt",
        }
        for what, token in invalid.items():
            resp = authz.via_client(headers=bearer(token))
            assert resp.status == 401, (what, resp.status, resp.body[:200])
            assert b"Jwt" in resp.body, (what, resp.body[:200])

        allow_alice = f"""
          rules:
          - from: [{{source: {{requestPrincipals: ["{jwks.issuer}/alice"]}}}}]
        """
        authz.apply(policy("allow-alice", allow_alice))
        try:
            for who, via in authz.client_paths().items():
                resp = via(headers=bearer(jwks.sign()))
                assert resp.status == 200, (who, resp.status, resp.body[:200])
                bob = via(headers=bearer(jwks.sign({"sub": "bob"})))
                assert denied(bob), (who, bob.status, bob.body[:200])
                other_issuer = via(headers=bearer(jwks.sign({"iss": "https://other.example"})))
                assert other_issuer.status == 401  # no provider for that issuer
                assert denied(via())  # no token, no request principal
            # Authentication still runs first: a forged alice token is a 401, not a 200.
            assert authz.via_client(headers=bearer(jwks.sign(key=new_key()))).status == 401
        finally:
            authz.clear()
        assert authz.via_client(headers=bearer(jwks.sign({"sub": "bob"}))).status == 200
    finally:
        authz.unauthenticate()
    assert authz.via_client(headers=bearer(jwks.sign(key=new_key()))).status == 200
