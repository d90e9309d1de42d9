"""istiod's STS endpoint (RFC 8693 token exchange), how injected sidecars keep an identity.

`POST /token` with a form body `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
`subject_token=<JWT>` and `subject_token_type=urn:ietf:params:oauth:token-type:jwt` (the
fields Istio's security/pkg/stsservice uses). The subject token — the pod's projected
service-account token, re-read from its file by Envoy's gRPC STS call credentials on each
exchange — is checked by istiod's authenticators (standalone tokens, TokenReview in
Kubernetes mode); the answer is a short-lived istiod token for the same identity, which the
secure xDS port accepts:

    {"access_token": ..., "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
     "token_type": "Bearer", "expires_in": 30}

Its lifetime is below gRPC's refresh threshold (60 s), so gRPC exchanges the file's token for
every new ADS stream: a rotated token is used at the next reconnect, a revoked or expired one
fails there. An STS answer cannot itself be exchanged (a subject token must have been issued
for longer than an access token lives), so a leaked access token dies with its 30 s.
Errors are RFC 6749 JSON (`error`, `error_description`), status 400, and 401
when the subject token is refused.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import jwt
from aiohttp import web

from pilot.bootstrap.mesh_security import MeshSecurity
from pkg.errors import AuthenticationError

log = logging.getLogger(__name__)

PATH = "/token"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
# Below gRPC's GRPC_SECURE_TOKEN_REFRESH_THRESHOLD_SECS (60): every new stream re-exchanges.
ACCESS_TOKEN_TTL = timedelta(seconds=30)
MAX_FORM = 64 * 1024


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


class StsHttp:
    def __init__(self, security: MeshSecurity, ttl: timedelta = ACCESS_TOKEN_TTL) -> None:
        self._security = security
        self._ttl = ttl

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.exchange)

    async def exchange(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_FORM:
            return _error(400, "invalid_request", "request body too large")
        if request.content_type != "application/x-www-form-urlencoded":
            return _error(400, "invalid_request",
                          "expected an application/x-www-form-urlencoded body")  # fmt: skip
        form = await request.post()
        grant = form.get("grant_type")
        if grant != GRANT_TYPE:
            return _error(400, "unsupported_grant_type", f"grant_type must be {GRANT_TYPE}")
        if form.get("subject_token_type") != JWT_TYPE:
            return _error(400, "invalid_request", f"subject_token_type must be {JWT_TYPE}")
        subject = form.get("subject_token")
        if not isinstance(subject, str) or not subject.strip():
            return _error(400, "invalid_request", "subject_token: Required value")
        try:
            identity = await self._security.authenticate(
                {"authorization": f"Bearer {subject.strip()}"}, []
            )
        except AuthenticationError as e:
            log.info("STS: subject token refused from %s: %s", request.remote, e)
            return _error(401, "invalid_grant", f"subject token refused: {e}")
        if _lifetime(subject.strip()) <= self._ttl:
            return _error(401, "invalid_grant", "subject token refused: an STS access token "
                          "cannot be exchanged again")  # fmt: skip
        audiences = self._security.settings.features.token_audiences
        token = self._security.tokens.issue(
            identity.namespace, identity.service_account, audience=audiences[0], ttl=self._ttl
        )
        return web.json_response(
            {
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": int(self._ttl.total_seconds()),
            },
            headers={"Cache-Control": "no-store"},
        )


def _lifetime(token: str) -> timedelta:
    """exp - iat of an already authenticated JWT (unknown: an unbounded lifetime)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return timedelta(seconds=float(claims["exp"]) - float(claims["iat"]))
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return timedelta.max
