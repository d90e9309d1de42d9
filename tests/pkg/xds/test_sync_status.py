"""Istio's per-type sync classification (statusgen debugSyncStatus), plus the in-sync reconnect."""

from __future__ import annotations

import pytest

from pkg.xds.sync_status import ClientStatus, ConfigStatus, client_status, config_status


@pytest.mark.parametrize(
    ("sent", "acked", "rejected", "in_sync", "expected"),
    [
        ("", "", False, False, ConfigStatus.NOT_SENT),
        ("n1", "n1", False, False, ConfigStatus.SYNCED),
        ("n2", "n1", False, False, ConfigStatus.STALE),  # acked an older nonce
        ("n1", "", False, False, ConfigStatus.STALE),  # sent, no ACK yet
        ("n2", "n1", True, False, ConfigStatus.ERROR),  # NACKed: Envoy keeps n1
        ("n1", "n1", True, False, ConfigStatus.ERROR),  # the error wins, as in Istio
        ("", "", False, True, ConfigStatus.SYNCED),  # reconnected up to date: nothing sent
        ("n3", "n1", False, True, ConfigStatus.STALE),  # later sends decide
    ],
)
def test_config_status(
    sent: str, acked: str, rejected: bool, in_sync: bool, expected: ConfigStatus
) -> None:
    got = config_status(nonce_sent=sent, nonce_acked=acked, rejected=rejected, in_sync=in_sync)
    assert got is expected


def test_client_status_follows_config_status() -> None:
    assert client_status(ConfigStatus.SYNCED) is ClientStatus.CLIENT_ACKED
    assert client_status(ConfigStatus.ERROR) is ClientStatus.CLIENT_NACKED
    assert client_status(ConfigStatus.STALE) is ClientStatus.CLIENT_REQUESTED
    assert client_status(ConfigStatus.NOT_SENT) is ClientStatus.CLIENT_REQUESTED
    assert client_status(ConfigStatus.UNKNOWN) is ClientStatus.CLIENT_UNKNOWN
