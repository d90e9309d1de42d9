"""istiod stopping and starting again on the same state dir, in process (the e2e side with
real Envoys is tests/e2e/test_control_plane_death.py):

- stop() ends every connected ADS stream at once with UNAVAILABLE "istiod is shutting down"
  (a status the proxy logs, not a reset, and not after gRPC's grace period);
- a restarted istiod serves a reconnecting workload the certificate it had (no new key, and a
  Delta proxy presenting its versions is sent nothing).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from pilot.xds.server import SHUTDOWN_MESSAGE
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, node
from tests.pilot.bootstrap.test_secure_istiod import (
    Running,
    leaf_of,
    sds_client,
    start_istiod,
)


async def test_stop_ends_streams_with_a_status_at_once(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    r = await start_istiod(tmp_path / "state", tmp_path / "config")
    clients = []
    try:
        for _ in range(3):
            client = await sds_client(r, await r.token("default", "sleep"))
            await client.recv()
            clients.append(client)
        plain = AdsClient(r.plain)
        await plain.sotw(typeurls.CLUSTER, node_=node("app-1.default", ip="127.0.40.2"))
        await plain.recv()
        clients.append(plain)
        started = time.monotonic()
        await r.istiod.stop()
        took = time.monotonic() - started
        for client in clients:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await client.recv(timeout=2.0)
            assert error.value.code() is grpc.StatusCode.UNAVAILABLE
            assert error.value.details() == SHUTDOWN_MESSAGE
    finally:
        for client in clients:
            await client.close()
    # Not gRPC's 1 s grace followed by "Cancelling all calls".
    assert took < 0.8, f"stop() took {took:.2f}s"


async def delta_secrets(r: Running, initial: dict[str, str] | None = None) -> AdsClient:
    token = await r.token("default", "sleep")
    client = AdsClient(
        "", delta=True, channel=r.secure_channel(), metadata=[("authorization", f"Bearer {token}")]
    )
    await client.delta_request(
        typeurls.SECRET,
        subscribe=["default", "ROOTCA"],
        initial=initial,
        node_=node("sleep-1.default", ip="127.0.40.1", service_account="sleep"),
    )
    return client


def default_serial(response: Any) -> int:
    """The serial of the `default` certificate in a Delta response."""
    for wrapper in response.resources:
        if wrapper.name == "default":
            secret = secret_pb2.Secret()
            wrapper.resource.Unpack(secret)
            return leaf_of(secret).serial_number
    raise AssertionError(f"no `default` secret in {[r.name for r in response.resources]}")


async def test_restart_serves_the_same_certificate_and_sends_nothing(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    first = await start_istiod(tmp_path / "state", tmp_path / "config")
    try:
        client = await delta_secrets(first)
        response = await client.recv()
        await client.close()
    finally:
        await first.istiod.stop()
    versions = {r.name: r.version for r in response.resources}
    serial = default_serial(response)

    second = await start_istiod(tmp_path / "state", tmp_path / "config")
    try:
        # A proxy reconnecting with what it holds: in sync, nothing to send.
        client = await delta_secrets(second, initial=versions)
        await client.expect_nothing(0.5)
        await client.close()
        # One that lost its secrets gets the same certificate again (no new key).
        client = await delta_secrets(second)
        again = await client.recv()
        await client.close()
    finally:
        await second.istiod.stop()
    assert default_serial(again) == serial
    assert {r.name: r.version for r in again.resources} == versions
