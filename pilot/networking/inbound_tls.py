"""Inbound filter chain options per PeerAuthentication mode and port protocol (Istio's
filterchain_options.go): which transport (TLS or plaintext) and ALPN a chain matches, whether
it terminates mutual TLS, and whether it speaks HTTP or TCP."""

from __future__ import annotations

from dataclasses import dataclass

from pilot.model.peer_authentication import MTLSMode
from pilot.model.service import Protocol
from pilot.networking.filters import PLAINTEXT_HTTP_ALPNS
from pilot.networking.tls import ALL_ISTIO_MTLS_ALPNS, MTLS_HTTP_ALPNS, MTLS_TCP_ALPNS

TLS = "tls"
RAW = "raw_buffer"


@dataclass(frozen=True, slots=True)
class ChainOption:
    transport: str
    alpns: tuple[str, ...]
    http: bool
    mtls: bool  # terminate mutual TLS with the workload's certificate


_PERMISSIVE_AUTO = (
    ChainOption(TLS, MTLS_HTTP_ALPNS, http=True, mtls=True),
    ChainOption(RAW, PLAINTEXT_HTTP_ALPNS, http=True, mtls=False),
    ChainOption(TLS, MTLS_TCP_ALPNS, http=False, mtls=True),
    ChainOption(RAW, (), http=False, mtls=False),
    ChainOption(TLS, (), http=False, mtls=False),  # one-way TLS from a client without sidecar
)
_PERMISSIVE_HTTP = (
    ChainOption(TLS, ALL_ISTIO_MTLS_ALPNS, http=True, mtls=True),
    ChainOption(RAW, (), http=True, mtls=False),
)
_PERMISSIVE_TCP = (
    ChainOption(TLS, ALL_ISTIO_MTLS_ALPNS, http=False, mtls=True),
    ChainOption(TLS, (), http=False, mtls=False),
    ChainOption(RAW, (), http=False, mtls=False),
)
_STRICT_AUTO = (
    ChainOption(TLS, MTLS_HTTP_ALPNS, http=True, mtls=True),
    ChainOption(TLS, (), http=False, mtls=True),
)
_STRICT_HTTP = (ChainOption(TLS, (), http=True, mtls=True),)
_STRICT_TCP = (ChainOption(TLS, (), http=False, mtls=True),)
_PLAIN_AUTO = (
    ChainOption(RAW, PLAINTEXT_HTTP_ALPNS, http=True, mtls=False),
    ChainOption(RAW, (), http=False, mtls=False),
)
_PLAIN_HTTP = (ChainOption(RAW, (), http=True, mtls=False),)
_PLAIN_TCP = (ChainOption(RAW, (), http=False, mtls=False),)


def chain_options(mode: MTLSMode, protocol: Protocol) -> tuple[ChainOption, ...]:
    kind = "http" if protocol.is_http else "auto" if protocol.is_unsupported else "tcp"
    if mode is MTLSMode.STRICT:
        return {"http": _STRICT_HTTP, "tcp": _STRICT_TCP, "auto": _STRICT_AUTO}[kind]
    if mode is MTLSMode.DISABLE:
        return {"http": _PLAIN_HTTP, "tcp": _PLAIN_TCP, "auto": _PLAIN_AUTO}[kind]
    return {"http": _PERMISSIVE_HTTP, "tcp": _PERMISSIVE_TCP, "auto": _PERMISSIVE_AUTO}[kind]


def server_alpn(option: ChainOption) -> tuple[str, ...]:
    """What the server's TLS context negotiates once the chain is chosen."""
    if option.http:
        return ("h2", "http/1.1")
    return ("istio-peer-exchange", "h2", "http/1.1")
