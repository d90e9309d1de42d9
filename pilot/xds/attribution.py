"""Which config object a proxy's NACK is about: pure functions, no stream state.

Inputs, gathered by the rejection tracker (pilot/xds/rejections.py):
- `changed`: the ConfigKeys of the pushes that made the rejected response differ from the last
  one this proxy accepted on that type (None when unknown: a response to a plain request, e.g.
  a proxy's first, carries content it never had);
- `provenance`: the objects named by the rejected resources' own metadata
  (`filter_metadata["istio"]["config"]`: VirtualService paths on routes, DestinationRule paths
  on clusters), regenerated from the PushContext the response was built from; None when the
  resources carry none (listeners, secrets, endpoints);
- Envoy's message.

Rules, in order: when the changes are known, the changed objects (narrowed to those the
rejected resources name, when some do; none at all when only endpoints or credentials changed);
when they are not, the objects the rejected resources name. Then, if several remain, those with
a value of their own (a regex, a header name, a host; not shared with the other candidates)
quoted in Envoy's message. Exactly one remaining candidate is the attribution; anything else is
reported as unattributed (and nothing is reverted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from pilot.model.push_context import PushContext
from pkg.config.model import Config, ConfigKey, Kind

_METADATA = "envoy.config.core.v3.Metadata"
_MIN_QUOTED = 3  # shorter values ("v1", "80") say nothing when found in a message


@dataclass(frozen=True, slots=True)
class Attribution:
    """The object version a NACK is attributed to (`config`), or why there is none."""

    config: Config[Any] | None
    candidates: tuple[ConfigKey, ...]
    # How the candidates were found and narrowed ("push", "push+provenance", "provenance",
    # each possibly "+message"), or why there is no attribution.
    how: str


def config_key_from_path(path: str) -> ConfigKey | None:
    """`/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME` → its ConfigKey."""
    parts = path.strip("/").split("/")
    if len(parts) != 7 or parts[0] != "apis" or parts[3] != "namespaces":
        return None
    kind_name = "".join(word.capitalize() for word in parts[5].split("-"))
    try:
        kind = Kind(kind_name)
    except ValueError:
        return None
    return ConfigKey(kind, parts[6], parts[4])


def provenance_keys(messages: Iterable[Message]) -> frozenset[ConfigKey]:
    """Every object named by `istio.config` metadata anywhere in `messages` (typed_config
    Anys are not opened)."""
    out: set[ConfigKey] = set()
    for message in messages:
        for metadata in _metadata_in(message):
            fields = metadata.filter_metadata.get("istio")  # type: ignore[attr-defined]
            if fields is None or "config" not in fields.fields:
                continue
            key = config_key_from_path(fields.fields["config"].string_value)
            if key is not None:
                out.add(key)
    return frozenset(out)


def _metadata_in(message: Message) -> Iterator[Message]:
    if message.DESCRIPTOR.full_name == _METADATA:
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            entry_value = field.message_type.fields_by_name["value"]
            if entry_value.message_type is not None:
                for item in value.values():
                    yield from _metadata_in(item)
        elif field.is_repeated:
            for item in value:
                yield from _metadata_in(item)
        else:
            yield from _metadata_in(value)


def find_config(push: PushContext, key: ConfigKey) -> Config[Any] | None:
    """The version of `key` a PushContext was built with."""
    for config in push.configs.get(key.kind, ()):
        if config.key == key:
            return config
    return None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def quoted_in(message: str, candidates: Sequence[Config[Any]]) -> list[Config[Any]]:
    """The candidates with a spec value of their own (shared by no other candidate) that
    Envoy's message quotes."""
    found: list[set[str]] = []
    for config in candidates:
        spec = (config.raw or {}).get("spec", {})
        found.append({s for s in _strings(spec) if len(s) >= _MIN_QUOTED and s in message})
    out = []
    for i, config in enumerate(candidates):
        others = set().union(*(f for j, f in enumerate(found) if j != i))
        if found[i] - others:
            out.append(config)
    return out


def attribute(
    push: PushContext,
    changed: frozenset[ConfigKey] | None,
    provenance: Callable[[], frozenset[ConfigKey] | None],
    message: str,
) -> Attribution:
    """Attribute one NACK (see the module docstring for the rules)."""
    if changed is not None:
        how = "push"
        keys = frozenset(k for k in changed if find_config(push, k) is not None)
        if not keys:
            return Attribution(None, (), "no object changed since the last accepted response")
        if len(keys) > 1:
            named = provenance() or frozenset()
            if keys & named:
                keys, how = keys & named, "push+provenance"
    else:
        how = "provenance"
        named = provenance() or frozenset()
        keys = frozenset(k for k in named if find_config(push, k) is not None)
    candidates = tuple(sorted(keys))
    configs = [c for c in (find_config(push, k) for k in candidates) if c is not None]
    if len(configs) > 1:
        quoted = quoted_in(message, configs)
        if len(quoted) == 1:
            return Attribution(quoted[0], candidates, how + "+message")
    if len(configs) == 1:
        return Attribution(configs[0], candidates, how)
    why = "no candidate object" if not configs else "several candidate objects"
    return Attribution(None, candidates, why)
