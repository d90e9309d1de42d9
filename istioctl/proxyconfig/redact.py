"""Remove key material from decoded Envoy configuration, wherever it sits.

Envoy's own `/config_dump` already shows private keys as `[redacted]`, but a dump file may
come from anywhere (a hand-made one, another tool, istiod's view), and proxy-config must never
print a key in any output format. So every decoded message is walked, `Any` payloads
included, and:

- `TlsCertificate.private_key`, `.pkcs12` and `.password`, every key of
  `TlsSessionTicketKeys`, and `GenericSecret.secret(s)` held inline become `[redacted]`
  (file names and environment variable names are kept: they are not the key);
- any other string or bytes field holding a PEM private key (`PRIVATE KEY-----`) is
  redacted as well (a key pasted into an unrelated field, or into a `TypedStruct`);
- the value of an `authorization` / `proxy-authorization` header in `HeaderValue`s (the
  bearer token a pyistio bootstrap sends to istiod sits in the xDS cluster's gRPC metadata)
  becomes `[redacted]`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, descriptor_pool, message_factory
from google.protobuf.message import Message

REDACTED = "[redacted]"
_PEM_KEY = "PRIVATE KEY-----"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})

_TLS = "envoy.extensions.transport_sockets.tls.v3."
_TLS_CERTIFICATE = _TLS + "TlsCertificate"
_TICKET_KEYS = _TLS + "TlsSessionTicketKeys"
_GENERIC_SECRET = _TLS + "GenericSecret"
_DATA_SOURCE = "envoy.config.core.v3.DataSource"
_HEADER_VALUE = "envoy.config.core.v3.HeaderValue"
_ANY = "google.protobuf.Any"

_KEY_FIELDS = {_TLS_CERTIFICATE: ("private_key", "pkcs12", "password")}
_TEXT = (descriptor.FieldDescriptor.TYPE_STRING, descriptor.FieldDescriptor.TYPE_BYTES)


def redact(message: Message) -> bool:
    """Redact key material in `message` and everything it contains, in place; True when
    something was redacted."""
    name = message.DESCRIPTOR.full_name
    if name == _ANY:
        return _redact_any(message)
    changed = False
    if name == _HEADER_VALUE:
        changed |= _redact_header(message)
    for field_name in _KEY_FIELDS.get(name, ()):
        if message.HasField(field_name):
            changed |= _redact_data_source(getattr(message, field_name))
    if name == _TICKET_KEYS:
        changed |= _redact_ticket_keys(message)
    if name == _GENERIC_SECRET:
        changed |= _redact_generic_secret(message)
    for field, value in message.ListFields():
        changed |= _redact_field(message, field, value)
    return changed


def _redact_field(message: Message, field: descriptor.FieldDescriptor, value: Any) -> bool:
    repeated = field.is_repeated
    changed = False
    entry = field.message_type
    if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE and entry is not None:
        if entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            if value_field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
                for item in value.values():
                    changed |= redact(item)
            elif value_field.type in _TEXT:
                for key, item in list(value.items()):
                    if _holds_key(item):
                        value[key] = _redacted_like(item)
                        changed = True
            return changed
        for item in value if repeated else (value,):
            changed |= redact(item)
        return changed
    if field.type not in _TEXT:
        return False
    if repeated:
        for index, item in enumerate(value):
            if _holds_key(item):
                value[index] = _redacted_like(item)
                changed = True
    elif _holds_key(value):
        setattr(message, field.name, _redacted_like(value))
        changed = True
    return changed


def _redact_any(value: Any) -> bool:
    full_name = value.type_url.rsplit("/", 1)[-1]
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        # Undecodable here: judge by the raw bytes alone.
        if _holds_key(value.value):
            value.value = b""
            return True
        return False
    inner: Message = message_factory.GetMessageClass(desc)()
    inner.ParseFromString(value.value)
    if not redact(inner):
        return False
    prefix = value.type_url[: -len(full_name)].rstrip("/")
    value.Pack(inner, type_url_prefix=prefix, deterministic=True)
    return True


def _redact_data_source(source: Any) -> bool:
    which = source.WhichOneof("specifier")
    if which == "inline_bytes" and source.inline_bytes != REDACTED.encode():
        source.inline_bytes = REDACTED.encode()
        return True
    if which == "inline_string" and source.inline_string != REDACTED:
        source.inline_string = REDACTED
        return True
    return False


def _redact_ticket_keys(keys: Any) -> bool:
    changed = False
    for key in keys.keys:
        changed |= _redact_data_source(key)
    return changed


def _redact_generic_secret(secret: Any) -> bool:
    changed = False
    if secret.HasField("secret"):
        changed |= _redact_data_source(secret.secret)
    for name in list(secret.secrets):
        changed |= _redact_data_source(secret.secrets[name])
    return changed


def _redact_header(header: Any) -> bool:
    if header.key.lower() not in _SECRET_HEADERS:
        return False
    changed = False
    if header.value and header.value != REDACTED:
        header.value = REDACTED
        changed = True
    if header.raw_value and header.raw_value != REDACTED.encode():
        header.raw_value = REDACTED.encode()
        changed = True
    return changed


def _holds_key(value: str | bytes) -> bool:
    if isinstance(value, bytes):
        return _PEM_KEY.encode() in value
    return _PEM_KEY in value


def _redacted_like(value: str | bytes) -> str | bytes:
    return REDACTED.encode() if isinstance(value, bytes) else REDACTED
