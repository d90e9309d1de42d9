"""istiod's HTTP endpoints for bootstrapping proxies (pyistio's addition: Istio has an agent and
Kubernetes for this).

- `GET /v1/root-cert`: the mesh trust bundle (PEM). Public, like Istio's `istio-ca-root-cert`
  ConfigMap.
- `POST /v1/token` `{"namespace": NS, "serviceAccount": SA}`: a service-account token for the
  secure xDS port and the CSR API, `{"token", "expiresAt", "identity"}`. Only callers on
  loopback, or presenting an admin credential (`authorization: Bearer <token>` of a service
  account in the mesh root namespace), may ask: a token is an identity.
- `POST /v1/token/revoke` `{"namespace": NS, "serviceAccount": SA}`: refuse every token of
  that identity issued until now (security/revocation.py), `{"identity", "revokedBefore"}`.
  Same callers as `/v1/token`.

`admin_refusal` is also the guard of istiod's /debug endpoints for non-loopback callers
(Istio's allowAuthenticatedOrLocalhost): 401 without a valid credential, 403 for a valid one
that is not an admin's.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pilot.bootstrap.mesh_security import MeshSecurity
from pkg.credentials import Identity
from pkg.errors import AuthenticationError
from security.server.authenticate import bearer_token
from security.tokens import DEFAULT_AUDIENCE

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 401: no valid credential; 403: a valid one without admin rights
    reason: str


def admin_refusal(security: MeshSecurity, request: web.Request) -> Refusal | None:
    """Why the caller may not use admin endpoints, or None: loopback callers may, and callers
    with a token of a service account in the mesh root namespace. Reasons never quote it."""
    if _is_loopback(request.remote):
        return None
    headers = {k.lower(): v for k, v in request.headers.items()}
    if "authorization" not in headers:
        return Refusal(401, "only loopback callers, or callers with an admin credential")
    try:
        found = security.tokens.verify(
            bearer_token(headers), security.settings.features.token_audiences
        )
    except AuthenticationError as e:
        return Refusal(401, f"admin credential refused: {e}")
    if found.namespace != security.settings.root_namespace:
        return Refusal(
            403,
            f"admin credential refused: {found.namespace}/{found.service_account} is not "
            f"in the mesh root namespace {security.settings.root_namespace}",
        )
    return None


class SecurityHttp:
    def __init__(self, security: MeshSecurity) -> None:
        self._security = security

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/root-cert", self.root_cert)
        app.router.add_post("/v1/token", self.token)
        app.router.add_post("/v1/token/revoke", self.revoke)

    async def root_cert(self, request: web.Request) -> web.Response:
        body = self._security.ca.trust_bundle()
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    def _admin(self, request: web.Request) -> str | None:
        """Why the caller may not ask for (or revoke) tokens, or None when it may."""
        refusal = admin_refusal(self._security, request)
        return refusal.reason if refusal is not None else None

    async def _identity_body(self, request: web.Request) -> tuple[Any, str, str] | web.Response:
        """The JSON body and its namespace and serviceAccount, or the 400 response."""
        try:
            body: Any = await request.json()
        except ValueError:
            return _error(400, "body must be JSON: {namespace, serviceAccount}")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object: {namespace, serviceAccount}")
        namespace = body.get("namespace")
        account = body.get("serviceAccount")
        if not isinstance(namespace, str) or not _NAME.match(namespace):
            return _error(400, f"namespace: must be a DNS-1123 name, got {namespace!r}")
        if not isinstance(account, str) or not _NAME.match(account):
            return _error(400, f"serviceAccount: must be a DNS-1123 name, got {account!r}")
        return body, namespace, account

    async def revoke(self, request: web.Request) -> web.Response:
        refused = self._admin(request)
        if refused is not None:
            log.warning("token revocation from %s refused: %s", request.remote, refused)
            return _error(403, refused)
        parsed = await self._identity_body(request)
        if isinstance(parsed, web.Response):
            return parsed
        _, namespace, account = parsed
        cutoff = self._security.tokens.revoke(namespace, account)
        identity = Identity(self._security.settings.trust_domain, namespace, account).spiffe_id
        log.warning("revoked the tokens of %s issued before %s (by %s)",
                    identity, cutoff.isoformat(), request.remote)  # fmt: skip
        return web.json_response({"identity": identity, "revokedBefore": cutoff.isoformat()})

    async def token(self, request: web.Request) -> web.Response:
        refused = self._admin(request)
        if refused is not None:
            log.warning("token request from %s refused: %s", request.remote, refused)
            return _error(403, refused)
        parsed = await self._identity_body(request)
        if isinstance(parsed, web.Response):
            return parsed
        body, namespace, account = parsed
        audience = body.get("audience", DEFAULT_AUDIENCE)
        if not isinstance(audience, str) or not audience:
            return _error(400, f"audience: must be a non-empty string, got {audience!r}")
        tokens = self._security.tokens
        token = tokens.issue(namespace, account, audience=audience)
        issued = tokens.verify(token, (audience,))
        identity = Identity(self._security.settings.trust_domain, namespace, account).spiffe_id
        log.info("issued token for %s to %s", identity, request.remote)
        return web.json_response(
            {"token": token, "expiresAt": issued.expires_at.isoformat(), "identity": identity}
        )
