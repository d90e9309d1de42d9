"""Small helpers to build Envoy protobufs: Any, Duration, Struct metadata and addresses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from google.protobuf import any_pb2, duration_pb2, struct_pb2, wrappers_pb2
from google.protobuf.message import Message

from pkg.config.types import Duration


def to_any(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message, deterministic=True)
    return out


def duration(value: Duration | float | None) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    if value is None:
        return out
    if isinstance(value, Duration):
        out.seconds = value.seconds
        out.nanos = value.nanos
    else:
        out.FromNanoseconds(round(value * 1e9))
    return out


def uint32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def metadata(filter_metadata: Mapping[str, Mapping[str, Any]]) -> base_pb2.Metadata:
    out = base_pb2.Metadata()
    for key, fields in filter_metadata.items():
        out.filter_metadata[key].CopyFrom(to_struct(fields))
    return out


def socket_address(address: str, port: int) -> address_pb2.Address:
    if address.startswith("/") or address.startswith("@"):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=address))
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def ads_config_source(initial_fetch_timeout_zero: bool = True) -> config_source_pb2.ConfigSource:
    source = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )
    if initial_fetch_timeout_zero:
        source.initial_fetch_timeout.CopyFrom(duration_pb2.Duration())
    return source
