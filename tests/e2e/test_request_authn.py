"""RequestAuthentication with real Envoy: an ingress gateway validates JWTs with keys istiod
fetched from a JWKS server on loopback (aiohttp, in a thread of this test).

No token passes (authorization decides, and there is none); a valid token passes and its
claim reaches the backend as a header; a token with a bad signature, an expired one, or one of
an issuer whose keys istiod could not fetch is rejected with 401 (the failure is reported in
/debug/push_status). When the server rotates its key, istiod's refresh
(PILOT_JWT_PUB_KEY_REFRESH_INTERVAL) pushes the new keys: new tokens pass, old ones fail.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers.jwks_server import JwksServer, new_key

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    GATEWAY_PORT,
    Bookinfo,
    gateway_options,
    join_docs,
    problems,
    wait_for_backend,
    write_config,
)
from .net import allocate_ip, wait_until
from .traffic import http_get

HOST = "httpbin.example.com"


class ThreadedJwksServer:
    """A JwksServer on its own event loop in a daemon thread (the e2e tests are synchronous)."""

    def __init__(self, ip: str) -> None:
        self.server = JwksServer(ip)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> JwksServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    threaded = ThreadedJwksServer(allocate_ip())
    server = threaded.start()
    yield server
    threaded.stop()


def configs(app: Bookinfo, jwks: JwksServer, down_uri: str) -> str:
    gateway = """
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: gw, namespace: istio-system}
        spec:
          selector: {istio: ingressgateway}
          servers:
          - port: {number: 8080, name: http, protocol: HTTP}
            hosts: ["*"]
        """
    route = f"""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {{name: httpbin, namespace: default}}
        spec:
          hosts: [{HOST}]
          gateways: [istio-system/gw]
          http:
          - route:
            - destination: {{host: {app.fqdn("httpbin")}, port: {{number: 9080}}}}
        """
    policy = f"""
        apiVersion: security.istio.io/v1
        kind: RequestAuthentication
        metadata: {{name: jwt, namespace: istio-system}}
        spec:
          selector: {{matchLabels: {{istio: ingressgateway}}}}
          jwtRules:
          - issuer: {jwks.issuer}
            jwksUri: {jwks.url()}
            outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
          - issuer: https://down.example
            jwksUri: {down_uri}
        """
    return join_docs(app.service_entry("httpbin"), gateway, route, policy)


def test_gateway_validates_tokens_with_fetched_keys(
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
    loopback_ip: str,
    jwks: JwksServer,
) -> None:
    app = Bookinfo.start(backend_factory, ("httpbin-v1",))
    down_uri = f"http://{allocate_ip()}:9/jwks"  # nothing listens there
    istiod = istiod_factory(env={"PILOT_JWT_PUB_KEY_REFRESH_INTERVAL": "1s"})
    write_config(istiod.config_dir, "httpbin.yaml", configs(app, jwks, down_uri))
    gateway = envoy_factory(options=gateway_options(istiod, "ingress", loopback_ip, "sotw"))
    assert gateway is not None
    gw = loopback_ip

    def get(token: str | None) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, body, _ = http_get(gw, GATEWAY_PORT, "/get", host=HOST, headers=headers)
        return status, body

    wait_for_backend(gw, GATEWAY_PORT, "httpbin-v1", host=HOST, path="/get")

    # Without a token: nothing to validate, the request passes.
    assert get(None)[0] == 200
    # A valid token passes; its `sub` claim reaches the backend as a header.
    wait_until(lambda: get(jwks.sign())[0] == 200, 10, message="a valid token to pass")
    status, body = get(jwks.sign({"sub": "bob"}))
    assert status == 200
    assert isinstance(body, dict) and body["headers"]["x-jwt-sub"] == "bob"
    # Rejected with 401: a bad signature, an expired token, an issuer without keys.
    assert get(jwks.sign(key=new_key()))[0] == 401
    assert get(jwks.sign({"exp": int(time.time()) - 3600}))[0] == 401
    assert get(jwks.sign({"iss": "https://down.example"}))[0] == 401
    assert any(p.startswith(f"jwks {down_uri}: fetch failed") for p in problems(istiod))

    # Key rotation: the refresh pushes the new keys.
    old_token = jwks.sign()
    jwks.rotate()
    wait_until(lambda: get(jwks.sign())[0] == 200, 15, message="the rotated key to be served")
    assert get(old_token)[0] == 401
