"""istiod's webhook port (`--webhook-addr`, 15017; the Service's 443): /validate and /inject
over HTTPS with istiod's serving certificate from the mesh CA, which names
`istiod.istio-system.svc` (what Kubernetes dials) and the listen host.

The certificate is reloaded into the same TLS context whenever MeshSecurity re-issues it
(renewal, new root): new handshakes get the new one, open connections are not broken. In
Kubernetes mode the webhook configurations' caBundle follows the mesh root
(pilot/webhooks/ca_bundle.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from pathlib import Path

from aiohttp import web

from pilot.bootstrap.mesh_security import RENEW_CHECK_INTERVAL, MeshSecurity
from pilot.webhooks.admission import webhook_app
from pkg.inject.sidecar import InjectionSettings

log = logging.getLogger(__name__)


class WebhookServer:
    def __init__(self, security: MeshSecurity, settings: InjectionSettings) -> None:
        self._security = security
        self._settings = settings
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context.set_alpn_protocols(["http/1.1"])
        self._version = -1
        self._runner: web.AppRunner | None = None

    def _load(self) -> None:
        """Load the current serving certificate if it changed since the last load."""
        credential, version = self._security.serving_credential()
        if version == self._version:
            return
        # ssl wants files: a private temporary directory, removed at once.
        with tempfile.TemporaryDirectory(prefix="istiod-webhook-") as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_bytes(credential.cert_chain_pem)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(credential.key_pem)
            self._context.load_cert_chain(cert, key)
        self._version = version
        log.info("webhook serving certificate loaded (serial %x)", credential.serial)

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 = any); the bound port."""
        self._security.serve_on(host)
        self._load()
        runner = web.AppRunner(webhook_app(self._settings), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=self._context, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        if isinstance(server, asyncio.base_events.Server) and server.sockets:
            port = server.sockets[0].getsockname()[1]
        return port

    async def follow_certificate(self) -> None:
        """Reload the certificate when MeshSecurity re-issues it (a supervised task)."""
        while True:
            await asyncio.sleep(RENEW_CHECK_INTERVAL)
            self._load()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
