"""RequestAuthentication keys through a whole istiod, in process: fetched from a JWKS server on
loopback before the first push, inlined into the jwt_authn filter a proxy gets over ADS,
re-pushed when they rotate, fetched when a new policy names them, and failures reported in
/debug/push_status."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import ClientSession
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2

from pilot.bootstrap.options import parse_options
from pilot.bootstrap.server import Istiod
from pilot.features import Features
from pilot.model.jwks import PUBLIC_ONLY_JWKS
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, node
from tests.helpers.aio import eventually
from tests.helpers.jwks_server import JwksServer
from tests.helpers.xds import http_connection_managers

POLICY = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: default}}
spec:
  jwtRules:
  - {rule}
"""


@pytest_asyncio.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    server = await JwksServer("127.0.0.1").start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def istiod(tmp_path: Path, jwks_server: JwksServer) -> AsyncIterator[Istiod]:
    config = tmp_path / "config"
    config.mkdir()
    rule = f"{{issuer: {jwks_server.issuer}, jwksUri: '{jwks_server.url()}'}}"
    (config / "ra.yaml").write_text(POLICY.format(name="by-uri", rule=rule))
    options = parse_options(
        [
            "--config-dir", str(config), "--state-dir", str(tmp_path / "state"),
            "--grpc-addr", "127.0.0.1:0", "--secure-grpc-addr", "",
            "--http-addr", "127.0.0.1:0", "--monitoring-addr", "", "--webhook-addr", "",
        ]
    )  # fmt: skip
    server = Istiod(options, Features(debounce_after=0.01))
    await server.start()
    yield server
    await server.stop()


def provider_keys(response: Any) -> dict[str, str]:
    """issuer → inline JWKS of the jwt_authn filter in the virtualInbound listener."""
    for resource in response.resources:
        listener = listener_pb2.Listener()
        resource.Unpack(listener)
        if listener.name != "virtualInbound":
            continue
        for _, manager in http_connection_managers(listener):
            for f in manager.http_filters:
                if f.name == "envoy.filters.http.jwt_authn":
                    config = jwt_pb2.JwtAuthentication()
                    f.typed_config.Unpack(config)
                    return {p.issuer: p.local_jwks.inline_string for p in config.providers.values()}
    return {}


async def problems(istiod: Istiod) -> list[str]:
    url = f"http://{istiod.bound['http']}/debug/push_status"
    async with ClientSession() as session, session.get(url) as response:
        found: list[str] = (await response.json())["problems"]
    return found


async def next_listeners(client: AdsClient, previous: Any) -> Any:
    await client.sotw(typeurls.LISTENER, version=previous.version_info, nonce=previous.nonce)
    return await client.recv()


async def test_keys_reach_the_proxy_and_follow_rotation_and_new_policies(
    istiod: Istiod, jwks_server: JwksServer, tmp_path: Path
) -> None:
    client = AdsClient(istiod.bound["grpc"])
    try:
        await client.sotw(typeurls.LISTENER, node_=node("app.default", "127.0.9.1"))
        first = await client.recv()
        # Fetched before the first push: the proxy never sees a placeholder.
        assert provider_keys(first) == {jwks_server.issuer: jwks_server.jwks}
        assert await problems(istiod) == []

        jwks_server.rotate()
        await istiod.jwks.refresh()
        rotated = await next_listeners(client, first)
        assert provider_keys(rotated) == {jwks_server.issuer: jwks_server.jwks}

        # A new policy naming its keys by issuer only: discovered, fetched, pushed.
        issuer = jwks_server.issuer + "/tenant"
        rule = f"{{issuer: '{issuer}'}}"
        (tmp_path / "config" / "more.yaml").write_text(POLICY.format(name="more", rule=rule))
        await client.sotw(typeurls.LISTENER, version=rotated.version_info, nonce=rotated.nonce)
        latest = await client.recv()
        while provider_keys(latest).get(issuer) != jwks_server.jwks:
            latest = await next_listeners(client, latest)
        assert set(provider_keys(latest)) == {jwks_server.issuer, issuer}
        assert "/tenant/.well-known/openid-configuration" in jwks_server.requests
    finally:
        await client.close()


async def test_failures_are_reported_and_reject_tokens(
    istiod: Istiod, jwks_server: JwksServer, tmp_path: Path
) -> None:
    jwks_server.status = 503
    await istiod.jwks.refresh()
    await eventually(lambda: bool(istiod.jwks.problems()), message="refresh failure")
    [problem] = await problems(istiod)
    assert "refresh failed, still serving the JWKS fetched before" in problem

    missing = f"http://127.0.0.1:{jwks_server.port}/nowhere"
    rule = f"{{issuer: other, jwksUri: '{missing}'}}"
    (tmp_path / "config" / "broken.yaml").write_text(POLICY.format(name="broken", rule=rule))
    await eventually(lambda: len(istiod.jwks.problems()) == 2, message="fetch failure")
    found = await problems(istiod)
    assert any(p.startswith(f"jwks {missing}: fetch failed") and "status 404" in p for p in found)

    client = AdsClient(istiod.bound["grpc"])
    try:
        await client.sotw(typeurls.LISTENER, node_=node("app.default", "127.0.9.1"))
        response = await client.recv()
        while "other" not in provider_keys(response):
            response = await next_listeners(client, response)
        assert provider_keys(response)["other"] == PUBLIC_ONLY_JWKS
        assert json.loads(provider_keys(response)[jwks_server.issuer]) == json.loads(
            jwks_server.jwks
        )
    finally:
        await client.close()
