"""DestinationRule analyzers (Istio's pkg/config/analysis/analyzers/destinationrule).

- `destinationrule.SubsetSelectPodAnalyzer`: the rule's host is a known service (IST0174) and
  each subset selects at least one workload of that service (IST0173).
- `destinationrule.CaCertificateAnalyzer`: SIMPLE/MUTUAL TLS without `caCertificates` (and
  without a `credentialName` on a rule with a workloadSelector) does not verify the server
  (IST0128 for the rule, IST0129 per port).

Workloads of a service, for IST0173: the workloads of its namespace its selector (a
Kubernetes Service's `selector`, a ServiceEntry's `workloadSelector`) selects, plus a
ServiceEntry's inline endpoints. Istio instead matches the subset labels against every pod of
the input; this is stricter about which service the pods belong to, and skips services whose
endpoints are not described by workloads (no selector and no inline endpoints). Labels istiod
adds to every endpoint (topology, hostname) are not required to be on the workload. A wildcard
host is known when it covers some service (Istio reports it unless a wildcard ServiceEntry
matches it); its subsets are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pkg.analysis import messages as m
from pkg.analysis.analyzers.base import Analyzer, message
from pkg.analysis.inputs import AnalysisInput, ServiceInfo, fqdn
from pkg.analysis.messages import Message
from pkg.analysis.resource import Resource
from pkg.config.labels import is_subset
from pkg.config.model import Kind
from pkg.config.specs.networking import (
    ClientTLSSettings,
    ClientTLSSettings_TLSmode,
    DestinationRule,
)

# Labels pilot adds to every endpoint (label.AugmentLabels): a subset may select on them.
AUGMENTED_LABELS = frozenset(
    (
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.istio.io/subzone",
        "topology.istio.io/cluster",
        "topology.istio.io/network",
        "kubernetes.io/hostname",
    )
)
_VERIFYING = (ClientTLSSettings_TLSmode.SIMPLE, ClientTLSSettings_TLSmode.MUTUAL)


def _selectable(inp: AnalysisInput, service: ServiceInfo) -> list[Mapping[str, str]] | None:
    """The label sets of the service's workloads; None when they are not known."""
    out = list(service.endpoint_labels)
    if service.selector is not None:
        out.extend(
            w.labels
            for w in inp.workloads
            if w.namespace == service.namespace and is_subset(service.selector, w.labels)
        )
    elif not out:
        return None
    return out


def analyze_subsets(inp: AnalysisInput) -> Iterator[Message]:
    for r, config in inp.of_kind(Kind.DESTINATION_RULE):
        dr: DestinationRule = config.spec
        service = inp.services.lookup(r.namespace, dr.export_to, dr.host)
        if service is None:
            name = fqdn(r.namespace, dr.host)
            if not (dr.host.startswith("*") and inp.services.any_matching(name, r.namespace)):
                yield message(m.UNKNOWN_DESTINATION_RULE_HOST, r, dr.host, path="spec.host")
            continue
        if not dr.subsets or dr.host.startswith("*"):
            continue
        workloads = _selectable(inp, service)
        if workloads is None:
            continue
        for i, subset in enumerate(dr.subsets):
            wanted = {k: v for k, v in subset.labels.items() if k not in AUGMENTED_LABELS}
            if not any(is_subset(wanted, labels) for labels in workloads):
                path = f"spec.subsets[{i}].name"
                yield message(m.DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, r, subset.name, path=path)


def _unverified(tls: ClientTLSSettings | None, dr: DestinationRule) -> str:
    """The TLS mode when it is SIMPLE/MUTUAL without a way to verify the server, else ""."""
    if tls is None or tls.mode not in _VERIFYING or tls.ca_certificates:
        return ""
    if tls.credential_name and dr.workload_selector is not None:
        return ""
    return tls.mode.value


def _ca_messages(r: Resource, dr: DestinationRule) -> Iterator[Message]:
    policy = dr.traffic_policy
    if policy is None:
        return
    full_name = r.ref.full_name
    mode = _unverified(policy.tls, dr)
    if mode:
        yield message(
            m.NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
            r,
            full_name,
            r.namespace,
            mode,
            dr.host,
            path="spec.trafficPolicy.tls.caCertificates",
        )
    for i, setting in enumerate(policy.port_level_settings):
        mode = _unverified(setting.tls, dr)
        if not mode:
            continue
        port = f"number:{setting.port.number}" if setting.port is not None else ""
        yield message(
            m.NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
            r,
            full_name,
            r.namespace,
            mode,
            dr.host,
            port,
            path=f"spec.trafficPolicy.portLevelSettings[{i}].tls.caCertificates",
        )


def analyze_ca_certificates(inp: AnalysisInput) -> Iterator[Message]:
    for r, config in inp.of_kind(Kind.DESTINATION_RULE):
        yield from _ca_messages(r, config.spec)


ANALYZERS = (
    Analyzer(
        "destinationrule.SubsetSelectPodAnalyzer",
        "Checks if pods are selected by subsets in destination rules.",
        analyze_subsets,
    ),
    Analyzer(
        "destinationrule.CaCertificateAnalyzer",
        "Checks if caCertificates is set when TLS mode is SIMPLE/MUTUAL",
        analyze_ca_certificates,
    ),
)
