"""The resource types the fake API server serves, and its discovery documents.

Core kinds istiod reads or writes, the coordination/admission/authentication kinds it writes,
and every Istio kind of `pkg.config.schema.SCHEMAS` in all of its served versions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pkg.config.schema import SCHEMAS

_RW = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Resource:
    group: str  # "" for the core group
    versions: tuple[str, ...]  # the first is the preferred version
    plural: str
    kind: str
    namespaced: bool = True
    verbs: tuple[str, ...] = _RW
    custom: bool = False  # a CRD: no strategic merge patch, delete answers the object
    field_labels: tuple[str, ...] = ()  # field selectors beyond metadata.name/namespace

    @property
    def delete_returns_object(self) -> bool:
        """The real server answers a DELETE with the object for these, else with a Status."""
        return self.custom or (self.group == "" and self.plural in ("services", "pods"))

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def typed(self, obj: dict[str, Any], version: str) -> dict[str, Any]:
        """`obj` with the apiVersion and kind it is served as (in place)."""
        obj["apiVersion"], obj["kind"] = self.api_version(version), self.kind
        return obj


_BUILTIN = (
    Resource("", ("v1",), "services", "Service"),
    Resource("", ("v1",), "endpoints", "Endpoints"),
    Resource("", ("v1",), "pods", "Pod"),
    Resource("", ("v1",), "nodes", "Node", namespaced=False),
    Resource("", ("v1",), "namespaces", "Namespace", namespaced=False),
    Resource("", ("v1",), "secrets", "Secret", field_labels=("type",)),
    Resource("", ("v1",), "configmaps", "ConfigMap"),
    Resource("", ("v1",), "serviceaccounts", "ServiceAccount"),
    Resource("discovery.k8s.io", ("v1",), "endpointslices", "EndpointSlice"),
    Resource("coordination.k8s.io", ("v1",), "leases", "Lease"),
    Resource(
        "admissionregistration.k8s.io",
        ("v1",),
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        namespaced=False,
    ),
    Resource(
        "admissionregistration.k8s.io",
        ("v1",),
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        namespaced=False,
    ),
    Resource(
        "authentication.k8s.io",
        ("v1",),
        "tokenreviews",
        "TokenReview",
        namespaced=False,
        verbs=("create",),
    ),
)

RESOURCES: tuple[Resource, ...] = _BUILTIN + tuple(
    Resource(s.group, s.versions, s.plural, str(s.kind), s.namespaced, custom=True)
    for s in SCHEMAS
    if s.istio
)


def find(group: str, version: str, plural: str) -> Resource | None:
    for r in RESOURCES:
        if r.group == group and r.plural == plural and version in r.versions:
            return r
    return None


def _groups() -> dict[str, list[Resource]]:
    out: dict[str, list[Resource]] = {}
    for r in RESOURCES:
        if r.group:
            out.setdefault(r.group, []).append(r)
    return out


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def _group_doc(group: str, members: Iterable[Resource]) -> dict[str, Any]:
    versions: list[str] = []
    for r in members:
        versions += [v for v in r.versions if v not in versions]
    preferred = next(iter(members)).versions[0]
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {
        "name": group,
        "versions": gvs,
        "preferredVersion": {"groupVersion": f"{group}/{preferred}", "version": preferred},
    }


def group_list() -> dict[str, Any]:
    groups = [_group_doc(g, rs) for g, rs in _groups().items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(name: str) -> dict[str, Any] | None:
    members = _groups().get(name)
    if not members:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(name, members)}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    members = [r for r in RESOURCES if r.group == group and version in r.versions]
    if not members:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": members[0].api_version(version),
        "resources": [
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
            }
            for r in members
        ],
    }
