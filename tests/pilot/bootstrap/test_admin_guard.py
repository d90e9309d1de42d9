"""istiod's debug endpoints for callers that are not on loopback (Istio's
allowAuthenticatedOrLocalhost): 401 without a valid credential, 403 with a workload's token,
200 with an admin credential (a token of a service account in the mesh root namespace). The
request's peer address is the seam: requests go through istiod's real HTTP application and
routing, with aiohttp reporting the given remote address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from tests.pilot.bootstrap.test_secure_istiod import Running, start_istiod

PATHS = ["/debug/syncz", "/debug/configz", "/debug/adsz", "/debug/config_dump?proxyID=x"]


class _Transport:
    def __init__(self, ip: str) -> None:
        self._ip = ip

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self._ip, 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest_asyncio.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    (tmp_path / "config").mkdir()
    r = await start_istiod(tmp_path / "state", tmp_path / "config")
    try:
        yield r
    finally:
        await r.istiod.stop()


async def _get(
    running: Running, path: str, peer: str, token: str | None = None, method: str = "GET"
) -> web.Response:
    app = running.istiod._runners[0].app  # the real `http` server's application
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = make_mocked_request(method, path, headers=headers, app=app,
                                  transport=_Transport(peer))  # fmt: skip
    match = await app.router.resolve(request)
    request._match_info = match
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    return response


@pytest.mark.parametrize("path", PATHS)
async def test_remote_caller_needs_an_admin_credential(running: Running, path: str) -> None:
    security = running.istiod.security
    assert security is not None
    refused = await _get(running, path, "10.1.2.3")
    assert refused.status == 401, refused.text
    forged = await _get(running, path, "10.1.2.3", "eyJhbGciOiJub25lIn0.e30.")
    assert forged.status == 401
    assert "eyJhbGciOiJub25lIn0" not in (forged.text or "")
    workload = await _get(running, path, "10.1.2.3", security.tokens.issue("default", "sleep"))
    assert workload.status == 403, workload.text
    assert "root namespace" in (workload.text or "")
    admin = security.tokens.issue("istio-system", "istioctl")
    allowed = await _get(running, path, "10.1.2.3", admin)
    assert allowed.status == (404 if "proxyID=x" in path else 200), allowed.text  # x: unknown
    security.tokens.revoke("istio-system", "istioctl")
    assert (await _get(running, path, "10.1.2.3", admin)).status == 401  # revoked


async def test_loopback_caller_needs_nothing(running: Running) -> None:
    for peer in ("127.0.0.1", "127.8.9.10", "::1"):
        assert (await _get(running, "/debug/syncz", peer)).status == 200


async def test_remote_caller_cannot_revoke_without_admin_credential(running: Running) -> None:
    security = running.istiod.security
    assert security is not None
    workload = security.tokens.issue("default", "sleep")
    refused = await _get(running, "/v1/token/revoke", "10.1.2.3", workload, method="POST")
    assert refused.status == 403
    assert security.tokens.verify(workload).service_account == "sleep"  # not revoked
