"""How far one xDS type of one proxy stream is in sync, in Envoy's CSDS terms.

istiod reports it (`/debug/syncz`, and `istio.io/debug/syncz` over ADS as
`envoy.service.status.v3.ClientConfig`) and `istioctl proxy-status` shows it. The rule is
Istio's (pilot/pkg/xds/statusgen.go, debugSyncStatus), decided from the stream's nonces:

- ERROR: the proxy rejected (NACKed) the last response, until it ACKs a later one;
- NOT_SENT: nothing was sent on this stream for the type;
- SYNCED: the last nonce sent was acknowledged;
- STALE: sent, but not acknowledged yet (or only an older nonce was).

One case Istio never meets: a proxy that reconnects already holding the current version is
sent nothing (content-hash versions), yet it is in sync. The server records that explicitly
(`in_sync`), so such a proxy shows SYNCED, not NOT_SENT, while nothing was sent.
"""

from __future__ import annotations

from enum import StrEnum


class ConfigStatus(StrEnum):
    """envoy.service.status.v3.ConfigStatus (what the control plane knows)."""

    UNKNOWN = "UNKNOWN"
    SYNCED = "SYNCED"
    NOT_SENT = "NOT_SENT"
    STALE = "STALE"
    ERROR = "ERROR"


class ClientStatus(StrEnum):
    """envoy.service.status.v3.ClientConfigStatus (what the client did with it)."""

    CLIENT_UNKNOWN = "CLIENT_UNKNOWN"
    CLIENT_REQUESTED = "CLIENT_REQUESTED"
    CLIENT_ACKED = "CLIENT_ACKED"
    CLIENT_NACKED = "CLIENT_NACKED"


def config_status(
    *, nonce_sent: str, nonce_acked: str, rejected: bool, in_sync: bool = False
) -> ConfigStatus:
    """Istio's classification of one watched type. `rejected`: the last response was NACKed
    and no later one ACKed; `in_sync`: on this stream the proxy presented the current
    version on its first request, so nothing needed sending."""
    if rejected:
        return ConfigStatus.ERROR
    if not nonce_sent:
        return ConfigStatus.SYNCED if in_sync else ConfigStatus.NOT_SENT
    if nonce_acked == nonce_sent:
        return ConfigStatus.SYNCED
    return ConfigStatus.STALE


def client_status(status: ConfigStatus) -> ClientStatus:
    """The client side of `status`: what the proxy last did with what it was sent."""
    if status is ConfigStatus.ERROR:
        return ClientStatus.CLIENT_NACKED
    if status is ConfigStatus.SYNCED:
        return ClientStatus.CLIENT_ACKED
    if status in (ConfigStatus.NOT_SENT, ConfigStatus.STALE):
        return ClientStatus.CLIENT_REQUESTED
    return ClientStatus.CLIENT_UNKNOWN
