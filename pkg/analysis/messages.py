"""Analysis messages: Istio's catalogue (pkg/config/analysis/msg/messages.yaml) and string form.

A `MessageType` is a code, a level and a Go-style template; a `Message` is one finding about one
resource. Rendering follows Istio's `diag.Message`:

    <Level> [<Code>] (<Kind> <ns>/<name>[ <file:line>]) <message>

and its JSON form (`code`, `level`, `origin`, `reference`, `message`, `documentationUrl`).
Codes `PYIxxxx` are pyistio's own (Istio reserves nothing for them); see docs/analysis.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pkg.analysis.resource import ResourceRef
from pkg.version import VERSION


class Level(Enum):
    """Severity; the value orders them (Error is the worst)."""

    ERROR = 0
    WARNING = 1
    INFO = 2

    @property
    def label(self) -> str:
        return self.name.capitalize()

    def at_least(self, threshold: Level) -> bool:
        """Istio's IsWorseThanOrEqualTo."""
        return self.value <= threshold.value

    @classmethod
    def parse(cls, text: str) -> Level:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"invalid level {text!r}: one of Info, Warning, Error") from None


@dataclass(frozen=True, slots=True)
class MessageType:
    code: str
    name: str
    level: Level
    template: str


def _t(code: str, name: str, level: Level, template: str) -> MessageType:
    return MessageType(code, name, level, template)


E, W, I_ = Level.ERROR, Level.WARNING, Level.INFO

INTERNAL_ERROR = _t("IST0001", "InternalError", E, "Internal error: %v")
REFERENCED_RESOURCE_NOT_FOUND = _t(
    "IST0101", "ReferencedResourceNotFound", E, "Referenced %s not found: %q"
)
SCHEMA_VALIDATION_ERROR = _t("IST0106", "SchemaValidationError", E, "Schema validation error: %v")
CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = _t(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    E,
    "The VirtualServices %s associated with mesh gateway define the same host %s which can lead"
    " to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a"
    " single resource.",
)
CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = _t(
    "IST0110",
    "ConflictingSidecarWorkloadSelectors",
    E,
    "The Sidecars %v in namespace %q select the same workload pod %q, which can lead to"
    " undefined behavior.",
)
MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = _t(
    "IST0111",
    "MultipleSidecarsWithoutWorkloadSelectors",
    E,
    "The Sidecars %v in namespace %q have no workload selector, which can lead to undefined"
    " behavior.",
)
VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = _t(
    "IST0112",
    "VirtualServiceDestinationPortSelectorRequired",
    E,
    "This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a"
    " port in the destination is required to disambiguate.",
)
NO_MATCHING_WORKLOADS_FOUND = _t(
    "IST0127",
    "NoMatchingWorkloadsFound",
    W,
    "No matching workloads for this resource with the following labels: %s",
)
NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = _t(
    "IST0128",
    "NoServerCertificateVerificationDestinationLevel",
    W,
    "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to"
    " validate server identity for host: %s",
)
NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = _t(
    "IST0129",
    "NoServerCertificateVerificationPortLevel",
    W,
    "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to"
    " validate server identity for host: %s at port %s",
)
VIRTUAL_SERVICE_UNREACHABLE_RULE = _t(
    "IST0130", "VirtualServiceUnreachableRule", W, "VirtualService rule %v not used (%s)."
)
VIRTUAL_SERVICE_INEFFECTIVE_MATCH = _t(
    "IST0131",
    "VirtualServiceIneffectiveMatch",
    I_,
    "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v).",
)
VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = _t(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    W,
    "one or more host %v defined in VirtualService %s not found in Gateway %s.",
)
SCHEMA_WARNING = _t("IST0133", "SchemaWarning", W, "Schema validation warning: %v")
CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS = _t(
    "IST0159",
    "ConflictingTelemetryWorkloadSelectors",
    E,
    "The Telemetries %v in namespace %q select the same workload pod %q, which can lead to"
    " undefined behavior.",
)
MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS = _t(
    "IST0160",
    "MultipleTelemetriesWithoutWorkloadSelectors",
    E,
    "The Telemetries %v in namespace %q have no workload selector, which can lead to undefined"
    " behavior.",
)
DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = _t(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    E,
    "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to"
    " 503 UH (NoHealthyUpstream).",
)
UNKNOWN_DESTINATION_RULE_HOST = _t(
    "IST0174",
    "UnknownDestinationRuleHost",
    W,
    "The host %s defined in the DestinationRule does not match any services in the mesh.",
)
# pyistio's own: a proxy NACKed the configuration generated from this object.
REJECTED_BY_PROXY = _t(
    "PYI0001",
    "RejectedByProxy",
    E,
    "The configuration generated from this resource was rejected by proxy %s (%s): %q. istiod"
    " serves %s instead.",
)

CATALOGUE: tuple[MessageType, ...] = (
    INTERNAL_ERROR,
    REFERENCED_RESOURCE_NOT_FOUND,
    SCHEMA_VALIDATION_ERROR,
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
    NO_MATCHING_WORKLOADS_FOUND,
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    SCHEMA_WARNING,
    CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
    MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DESTINATION_RULE_HOST,
    REJECTED_BY_PROXY,
)

# Every code in Istio's messages.yaml, for `--suppress` (an unknown code gets a warning).
_ISTIO_NUMBERS = (1, 2, 101, 102, 103, 106, 107, 108, 109, 110, 111, 112, 116, 118, 123)
ISTIO_CODES = frozenset(f"IST{n:04d}" for n in (*_ISTIO_NUMBERS, *range(125, 178)))
KNOWN_CODES = ISTIO_CODES | {t.code for t in CATALOGUE}

_MINOR = ".".join(VERSION.split("-")[0].split(".")[:2])
CONFIG_ANALYSIS_URL = f"https://istio.io/v{_MINOR}/docs/reference/config/analysis"
PYISTIO_DOC = "docs/analysis.md"

Param = str | int | Sequence[str] | Sequence[int]


@dataclass(frozen=True, slots=True)
class Message:
    """One finding. `line` is the line of the offending field, when known (else the origin's
    document line is shown)."""

    type: MessageType
    params: tuple[Param, ...]
    resource: ResourceRef | None = None
    line: int = 0

    @property
    def text(self) -> str:
        return go_format(self.type.template, self.params)

    def reference(self) -> str | None:
        """`file:line` (Istio's Position: no line for .json files), or None when unknown."""
        if self.resource is None:
            return None
        return self.resource.origin.reference(self.line)

    def origin(self) -> str:
        if self.resource is None:
            return ""
        ref = self.reference()
        where = f" {ref}" if ref else ""
        return f" ({self.resource.friendly_name}{where})"

    def __str__(self) -> str:
        return f"{self.type.level.label} [{self.type.code}]{self.origin()} {self.text}"

    def documentation_url(self, doc_ref: str = "") -> str:
        code = self.type.code.lower()
        if self.type.code.startswith("PYI"):
            return f"{PYISTIO_DOC}#{code}"
        query = f"?ref={doc_ref}" if doc_ref else ""
        return f"{CONFIG_ANALYSIS_URL}/{code}/{query}"

    def as_dict(self, doc_ref: str = "") -> dict[str, Any]:
        """Istio's `Unstructured(true)`: the JSON/YAML form."""
        out: dict[str, Any] = {"code": self.type.code, "level": self.type.level.label}
        if self.resource is not None:
            out["origin"] = self.resource.friendly_name
            ref = self.reference()
            if ref:
                out["reference"] = ref
        out["message"] = self.text
        out["documentationUrl"] = self.documentation_url(doc_ref)
        return dict(sorted(out.items()))  # Go marshals map keys in order


_VERB = re.compile(r"%[%svqd]")


def go_format(template: str, params: Sequence[Param]) -> str:
    """Go's fmt.Sprintf for the verbs Istio's templates use: %s %v %q %d (and %%)."""
    values = iter(params)

    def one(match: re.Match[str]) -> str:
        verb = match.group(0)
        if verb == "%%":
            return "%"
        try:
            value = next(values)
        except StopIteration:
            return f"%!{verb[1]}(MISSING)"
        return _render(verb[1], value)

    return _VERB.sub(one, template)


def _render(verb: str, value: Param) -> str:
    if isinstance(value, str):
        return _quote(value) if verb == "q" else value
    if isinstance(value, int):
        return str(value)
    items = [_render(verb, v) for v in value]
    return "[" + " ".join(items) + "]"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
