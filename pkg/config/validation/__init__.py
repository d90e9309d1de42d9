"""Semantic validation of parsed objects: istiod's webhook rules and the CRD rules (CEL) that
relate several fields, one module per kind or family. Rules on a single field are applied while
decoding (`pkg.config.decode`, from the schema in `pkg.config.specs`).

`validate(kind, spec, meta)` returns `(errors, warnings)`, each a list of `(path, reason)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pkg.config.model import Kind, Meta
from pkg.config.validation.authorization import validate_authorization_policy
from pkg.config.validation.destination_rule import validate_destination_rule
from pkg.config.validation.envoy_filter import validate_envoy_filter
from pkg.config.validation.gateway import validate_gateway
from pkg.config.validation.kube import (
    validate_endpoint_slice,
    validate_namespace,
    validate_secret,
    validate_service,
)
from pkg.config.validation.report import Report
from pkg.config.validation.security import (
    validate_peer_authentication,
    validate_request_authentication,
)
from pkg.config.validation.service_entry import validate_service_entry
from pkg.config.validation.sidecar import validate_sidecar
from pkg.config.validation.telemetry import (
    validate_proxy_config,
    validate_telemetry,
    validate_wasm_plugin,
)
from pkg.config.validation.virtual_service import validate_virtual_service
from pkg.config.validation.workload_entry import validate_workload_entry, validate_workload_group

Validator = Callable[[Any, Report], None]

VALIDATORS: dict[Kind, Validator] = {
    Kind.VIRTUAL_SERVICE: validate_virtual_service,
    Kind.DESTINATION_RULE: validate_destination_rule,
    Kind.GATEWAY: validate_gateway,
    Kind.SERVICE_ENTRY: validate_service_entry,
    Kind.WORKLOAD_ENTRY: validate_workload_entry,
    Kind.WORKLOAD_GROUP: validate_workload_group,
    Kind.SIDECAR: validate_sidecar,
    Kind.ENVOY_FILTER: validate_envoy_filter,
    Kind.PROXY_CONFIG: validate_proxy_config,
    Kind.AUTHORIZATION_POLICY: validate_authorization_policy,
    Kind.PEER_AUTHENTICATION: validate_peer_authentication,
    Kind.REQUEST_AUTHENTICATION: validate_request_authentication,
    Kind.TELEMETRY: validate_telemetry,
    Kind.WASM_PLUGIN: validate_wasm_plugin,
    Kind.SERVICE: validate_service,
    Kind.ENDPOINT_SLICE: validate_endpoint_slice,
    Kind.SECRET: validate_secret,
    Kind.NAMESPACE: validate_namespace,
}


def validate(
    kind: Kind, spec: object, meta: Meta
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Errors and warnings of one decoded object, as `(path, reason)` pairs."""
    report = Report(meta)
    validator = VALIDATORS.get(kind)
    if validator is not None:
        validator(spec, report)
    return report.errors, report.warnings


__all__ = ["VALIDATORS", "Report", "validate"]
