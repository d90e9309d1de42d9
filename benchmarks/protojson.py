"""pyistio's xDS resources as sovereign serves them (proto3 JSON with `@type`) and back, and
the comparison that proves both servers serve equal resources (benchmarks.sovereign_compare)."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.adsclient import ClientSpec
from benchmarks.fetchpool import _AdsClient, request_body

_MISSING_TYPE = re.compile(r"type_url: type\.googleapis\.com/([\w.]+)")


def import_type(full_name: str) -> bool:
    """Import every `*_pb2` module of the proto package that declares `full_name` (the generated
    modules of envoy/xds/udpa mirror the package path), so json_format can resolve it inside an
    Any. False if no such package directory exists."""
    package = full_name.rsplit(".", 1)[0]
    parts = package.split(".")
    spec = None
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError, AttributeError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return False
    imported = False
    for directory in spec.submodule_search_locations:
        for path in sorted(Path(directory).glob("*_pb2.py")):
            importlib.import_module(".".join([*parts, path.stem]))
            imported = True
    return imported


def _with_types(action: Callable[[], Any]) -> Any:
    """Run a json_format `action`, importing the proto modules of any Any type it cannot
    resolve and retrying."""
    for _ in range(100):
        try:
            return action()
        except (TypeError, KeyError) as e:
            m = _MISSING_TYPE.search(str(e))
            if m is None or not import_type(m.group(1)):
                raise
    raise RuntimeError("too many unresolved Any types")


def message_class(type_url: str) -> Any:
    from google.protobuf import descriptor_pool, message_factory

    full_name = type_url.rsplit("/", 1)[1]
    _with_types(lambda: descriptor_pool.Default().FindMessageTypeByName(full_name))
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    return message_factory.GetMessageClass(descriptor)


def ads_resources(raw: bytes) -> list[Any]:
    """The typed resources of a serialized SotW DiscoveryResponse."""
    from envoy.service.discovery.v3 import discovery_pb2

    resp = discovery_pb2.DiscoveryResponse.FromString(raw)
    return [message_class(a.type_url).FromString(a.value) for a in resp.resources]


def resources_json(raw: bytes) -> list[dict[str, Any]]:
    """A DiscoveryResponse's resources as proto3 JSON objects with their `@type`: what a
    sovereign template returns (and what sovereign's REST response carries)."""
    from envoy.service.discovery.v3 import discovery_pb2
    from google.protobuf import json_format

    resp = discovery_pb2.DiscoveryResponse.FromString(raw)
    out = []
    for any_ in resp.resources:

        def to_dict(a: Any = any_) -> dict[str, Any]:
            return dict(json_format.MessageToDict(a, preserving_proto_field_name=True))

        out.append(_with_types(to_dict))
    return out


def rest_resources(body: bytes) -> list[Any]:
    """The typed resources of a REST DiscoveryResponse (JSON)."""
    from google.protobuf import json_format

    out = []
    for doc in json.loads(body)["resources"]:
        cls = message_class(doc["@type"])
        fields = {k: v for k, v in doc.items() if k != "@type"}

        def parse(c: Any = cls, f: dict[str, Any] = fields) -> Any:
            return json_format.ParseDict(f, c())

        out.append(_with_types(parse))
    return out


def compare_resources(expected: Sequence[Any], actual: Sequence[Any]) -> list[str]:
    """Differences between two resource lists (by name; empty when equal)."""
    problems = []
    want = {getattr(m, "name", str(i)): m for i, m in enumerate(expected)}
    have = {getattr(m, "name", str(i)): m for i, m in enumerate(actual)}
    if len(want) != len(expected) or len(have) != len(actual):
        problems.append("duplicate resource names")
    for name in sorted(want.keys() - have.keys())[:5]:
        problems.append(f"missing {name}")
    for name in sorted(have.keys() - want.keys())[:5]:
        problems.append(f"unexpected {name}")
    differ = [n for n in sorted(want.keys() & have.keys()) if want[n] != have[n]]
    problems += [f"differs: {n}" for n in differ[:5]]
    if len(differ) > 5:
        problems.append(f"... {len(differ) - 5} more differ")
    return problems


async def _ads_fetch_once(target: str, type_: str, spec: ClientSpec) -> bytes:
    client = _AdsClient(target, request_body("ads", type_, spec), 60.0)
    try:
        return await client.fetch()
    finally:
        await client.close()


def ads_fetch_once(target: str, type_: str, spec: ClientSpec) -> bytes:
    return asyncio.run(_ads_fetch_once(target, type_, spec))
