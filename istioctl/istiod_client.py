"""Fetch what a secure bootstrap needs from istiod's HTTP server: the mesh trust bundle and a
bearer token for one workload identity.

The API (istiod's `--http-addr`, `istioctl bootstrap --istiod-http URL`):

- `GET {URL}/v1/root-cert` → 200 `text/plain`: the trust bundle, one or more PEM
  certificates.
- `POST {URL}/v1/token`, JSON `{"namespace": NS, "serviceAccount": SA}` → 200 JSON
  `{"token": JWT, "expiresAt": RFC3339, "identity": "spiffe://TD/ns/NS/sa/SA"}`; 403 JSON
  `{"error": …}` when the caller is neither on loopback nor presents an admin credential
  (`authorization: Bearer ADMIN`, here from `ISTIOCTL_ADMIN_TOKEN`); 400 JSON `{"error": …}`
  for bad input.

Standard library only (istioctl talks to istiod over the wire, never by import). Requests
time out, never follow redirects (a redirect could carry the admin credential elsewhere) and
ignore `*_proxy` environment variables (istiod is dialled directly, as Envoy dials it).
Every failure is an `IstiodError` whose message is ready for the user and never holds a
token.
"""

from __future__ import annotations

import datetime
import http.client
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from istioctl.bootstrap import SecureMaterial
from istioctl.http import OPENER, reason
from pkg.version import VERSION

DEFAULT_TIMEOUT = 10.0
ADMIN_TOKEN_ENV = "ISTIOCTL_ADMIN_TOKEN"
ROOT_CERT_PATH = "/v1/root-cert"
TOKEN_PATH = "/v1/token"

_MAX_BODY = 1 << 20
_EXCERPT = 200
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")
_USER_AGENT = f"istioctl/{VERSION}"


class IstiodError(Exception):
    """Talking to istiod failed; the message says what, for the user (never with a token)."""


@dataclass(frozen=True)
class IssuedToken:
    """istiod's answer to a token request (the token kept out of `repr`)."""

    token: str = field(repr=False)
    expires_at: datetime.datetime
    identity: str


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes


def fetch_secure_material(
    base_url: str,
    namespace: str,
    service_account: str,
    *,
    admin_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> SecureMaterial:
    """The trust bundle and a token for `namespace`/`service_account`, from istiod."""
    root_pem = fetch_root_cert(base_url, timeout=timeout)
    issued = request_token(
        base_url, namespace, service_account, admin_token=admin_token, timeout=timeout
    )
    return SecureMaterial(token=issued.token, root_pem=root_pem)


def fetch_root_cert(base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The mesh trust bundle (PEM certificates, re-encoded) from `GET /v1/root-cert`."""
    url = base_url.rstrip("/") + ROOT_CERT_PATH
    response = _request(base_url, urllib.request.Request(url, method="GET"), timeout)
    if response.status != 200:
        raise IstiodError(
            f"istiod answered HTTP {response.status} for {url}: {_error_text(response.body)}"
        )
    try:
        return parse_trust_bundle(response.body)
    except ValueError as err:
        raise IstiodError(f"the mesh root from {url} is not PEM certificates: {err}") from None


def request_token(
    base_url: str,
    namespace: str,
    service_account: str,
    *,
    admin_token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> IssuedToken:
    """A bearer token for `namespace`/`service_account` from `POST /v1/token`.

    `admin_token`, when given, is sent as `authorization: Bearer …` (istiod requires an admin
    credential from callers that are not on its loopback).
    """
    url = base_url.rstrip("/") + TOKEN_PATH
    who = f"{namespace}/{service_account}"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if admin_token is not None:
        if not _HEADER_VALUE.fullmatch(admin_token):
            raise ValueError("the admin token is not a valid header value")
        headers["Authorization"] = f"Bearer {admin_token}"
    body = json.dumps({"namespace": namespace, "serviceAccount": service_account}).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    response = _request(base_url, request, timeout)
    if response.status != 200:
        raise IstiodError(
            f"istiod refused a token for {who}: {_error_text(response.body)}"
            f" (HTTP {response.status})"
        )
    return _parse_token_response(response.body, url, namespace, service_account)


def parse_trust_bundle(pem: bytes | str) -> str:
    """The PEM certificates in `pem`, re-encoded (anything else in it dropped); raises
    ValueError saying why when it holds no certificate or a malformed one."""
    data = pem.encode() if isinstance(pem, str) else pem
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("no -----BEGIN CERTIFICATE----- block")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise ValueError(f"cannot load the certificates: {err}") from None
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def _parse_token_response(
    body: bytes, url: str, namespace: str, service_account: str
) -> IssuedToken:
    # Never quote the body here: it holds the token.
    def malformed(why: str) -> IstiodError:
        return IstiodError(f"istiod's token response from {url} is malformed: {why}")

    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise malformed("not JSON") from None
    if not isinstance(data, dict):
        raise malformed("not a JSON object")
    token, expires, identity = (data.get(k) for k in ("token", "expiresAt", "identity"))
    if not isinstance(token, str) or not _HEADER_VALUE.fullmatch(token):
        raise malformed('"token" is missing or not a valid header value')
    if not isinstance(identity, str) or not identity.startswith("spiffe://"):
        raise malformed('"identity" is missing or not a spiffe:// URI')
    if not isinstance(expires, str):
        raise malformed('"expiresAt" is missing')
    try:
        expires_at = datetime.datetime.fromisoformat(expires)
    except ValueError:
        raise malformed(f'"expiresAt" is not an RFC 3339 time: {expires!r}') from None
    suffix = f"/ns/{namespace}/sa/{service_account}"
    trust_domain = identity.removeprefix("spiffe://").removesuffix(suffix)
    if not identity.endswith(suffix) or not trust_domain or "/" in trust_domain:
        raise IstiodError(
            f"istiod issued a token for {identity}, not for {namespace}/{service_account}"
        )
    return IssuedToken(token=token, expires_at=expires_at, identity=identity)


def _request(base_url: str, request: urllib.request.Request, timeout: float) -> _Response:
    """Send `request`; any HTTP status comes back as a _Response, a transport failure as
    IstiodError("--istiod-http: cannot reach BASE: reason")."""
    request.add_header("User-Agent", _USER_AGENT)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return _Response(response.status, _read(response))
    except urllib.error.HTTPError as err:
        try:
            return _Response(err.code, _read(err))
        finally:
            err.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise IstiodError(f"--istiod-http: cannot reach {base_url}: {reason(err)}") from None


def _read(response: Any) -> bytes:
    body: bytes = response.read(_MAX_BODY + 1)
    if len(body) > _MAX_BODY:
        raise IstiodError(f"istiod's response from {response.url} is over {_MAX_BODY} bytes")
    return body


def _error_text(body: bytes) -> str:
    """The `error` of a JSON error body, else a short printable excerpt of the body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text: str = data["error"]
    else:
        text = body.decode("utf-8", "replace")
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(text) > _EXCERPT:
        text = text[:_EXCERPT] + "…"
    return text or "(empty body)"
