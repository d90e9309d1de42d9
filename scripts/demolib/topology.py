"""The Bookinfo topology, read from the config directory: workloads and the gateway port."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .base import NAMESPACE, SERVICE_PORT, DemoError

CALLS = {"productpage": ("details", "reviews"), "reviews": ("ratings",)}  # who calls whom
NO_CALLS_VERSIONS = {("reviews", "v1")}  # reviews v1 shows no stars: it never calls ratings


@dataclass(frozen=True)
class Workload:
    name: str  # WorkloadEntry name, e.g. reviews-v2
    app: str
    version: str
    ip: str
    port: int  # where the app really listens

    @property
    def calls(self) -> tuple[str, ...]:
        if (self.app, self.version) in NO_CALLS_VERSIONS:
            return ()
        return CALLS.get(self.app, ())


@dataclass(frozen=True)
class Topology:
    workloads: tuple[Workload, ...]
    gateway_ip: str
    gateway_port: int


def load_documents(config_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(config_dir.rglob("*")):
        if path.suffix not in (".yaml", ".yml", ".json") or path.name.startswith("."):
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as err:
            raise DemoError(f"cannot read {path}: {err}") from None
        for doc in docs:
            if isinstance(doc, dict):
                yield doc


def load_topology(config_dir: Path, block: int) -> Topology:
    workloads = []
    gateway_port = 8080
    for doc in load_documents(config_dir):
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        if meta.get("namespace", "default") != NAMESPACE:
            continue
        if doc.get("kind") == "WorkloadEntry":
            labels = spec.get("labels") or {}
            ports = spec.get("ports") or {}
            workloads.append(
                Workload(
                    name=meta["name"],
                    app=labels.get("app", meta["name"]),
                    version=labels.get("version", "v1"),
                    ip=spec["address"],
                    port=int(ports.get("http", SERVICE_PORT)),
                )
            )
        elif doc.get("kind") == "Gateway" and meta.get("name") == "bookinfo-gateway":
            servers = spec.get("servers") or [{}]
            gateway_port = int((servers[0].get("port") or {}).get("number", gateway_port))
    if not workloads:
        raise DemoError(f"no WorkloadEntries in namespace {NAMESPACE} under {config_dir}")
    return Topology(tuple(workloads), f"127.0.{block}.1", gateway_port)
