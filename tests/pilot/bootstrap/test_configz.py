"""/debug/configz shows configuration, never secret material."""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientSession

from pilot.bootstrap.server import REDACTED
from tests.pilot.bootstrap.test_secure_istiod import start_istiod

SECRET = """
apiVersion: v1
kind: Secret
metadata: {name: bookinfo-cert, namespace: istio-system}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: c2VjcmV0LWtleQ==}
stringData: {ca.crt: plain}
"""


async def test_secret_values_are_redacted_and_keys_kept(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "secret.yaml").write_text(SECRET)
    r = await start_istiod(tmp_path / "state", tmp_path / "config")
    try:
        async with (
            ClientSession() as session,
            session.get(f"{r.http}/debug/configz") as response,
        ):
            assert response.status == 200
            body = await response.text()
            objects = await response.json()
    finally:
        await r.istiod.stop()
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    assert secret["data"] == {"tls.crt": REDACTED, "tls.key": REDACTED}
    assert secret["stringData"] == {"ca.crt": REDACTED}
    assert secret["metadata"]["name"] == "bookinfo-cert" and secret["type"] == "kubernetes.io/tls"
    assert "c2VjcmV0LWtleQ==" not in body and "plain" not in body
