"""A JWKS server for tests: aiohttp on a loopback address the test picks (port 0), serving
`/jwks` (the public half of an RSA key it signs tokens with), an OpenID discovery document at
`[/<tenant>]/.well-known/openid-configuration` naming `/jwks`, and a few misbehaving paths.
Runs on the test's own event loop; `sign()` makes RS256 tokens with pyjwt."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.pop("key_ops", None)
    jwk.update(kid=kid, alg="RS256", use="sig")
    return jwk


class JwksServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.key = new_key()
        self.kid = "key-1"
        self.jwks = json.dumps({"keys": [public_jwk(self.key, self.kid)]})
        self.status = 200
        self.requests: list[str] = []
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base

    def url(self, path: str = "/jwks") -> str:
        return self.base + path

    def rotate(self) -> None:
        """A new signing key (the JWKS now holds only it)."""
        self.key = new_key()
        self.kid = f"key-{len(self.requests) + 2}"
        self.jwks = json.dumps({"keys": [public_jwk(self.key, self.kid)]})

    def sign(self, claims: dict[str, Any] | None = None, **overrides: Any) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "sub": "alice", "iat": now, "exp": now + 600}
        payload.update(claims or {})
        key = overrides.get("key", self.key)
        kid = overrides.get("kid", self.kid)
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})

    async def start(self) -> JwksServer:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/{tenant}/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/hang", self._hang)
        app.router.add_get("/big", self._big)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.Response(text=self.jwks, content_type="application/json")

    async def _discovery(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.json_response({"issuer": self.issuer, "jwks_uri": self.url("/jwks")})

    async def _redirect(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        raise web.HTTPFound(request.query.get("to", "/jwks"))

    async def _hang(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        await self._release.wait()
        return web.Response(text="late")

    async def _big(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.Response(body=b" " * (2 << 20))
