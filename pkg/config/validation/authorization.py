"""AuthorizationPolicy (istio/istio pkg/config/validation and pkg/config/security)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from pkg.config.specs.security import Action, AuthorizationPolicy, Condition, Operation, Source
from pkg.config.validation.policy import check_selector, check_target_refs
from pkg.config.validation.report import Report

DRY_RUN_ANNOTATION = "istio.io/dry-run"
_VALID_LITERAL = re.compile(r"[a-zA-Z0-9-._~%!$&'()+,;:@=]+")
_CUSTOM_UNSUPPORTED_KEYS = (
    "source.namespace",
    "source.serviceAccount",
    "source.trustDomain",
    "source.principal",
)


def validate_authorization_policy(policy: AuthorizationPolicy, report: Report) -> None:
    check_target_refs(report, policy.selector, policy.target_ref, policy.target_refs)
    check_selector(report, policy.selector, "spec.selector")
    _check_dry_run(report, policy)
    action = policy.action
    if action == Action.CUSTOM:
        if not policy.rules:
            report.error(
                "spec.rules",
                "CUSTOM action without `rules` is meaningless as it will never be triggered, add "
                "an empty rule `{}` if you want it be triggered for every request",
            )
        elif policy.provider is None or not policy.provider.name:
            report.error("spec.provider.name", "`provider.name` must not be empty")
        for index, rule in enumerate(policy.rules):
            _check_custom_rule(report, rule.from_, rule.when, f"spec.rules[{index}]")
    if policy.provider is not None and action != Action.CUSTOM:
        report.error(
            "spec.provider", f"`provider` must not be with non CUSTOM action, found {action}"
        )
    if action == Action.DENY and not policy.rules:
        report.error(
            "spec.rules",
            "DENY action without `rules` is meaningless as it will never be triggered, add an "
            "empty rule `{}` if you want it be triggered for every request",
        )
    for index, rule in enumerate(policy.rules):
        path = f"spec.rules[{index}]"
        http_only_from = False
        for f, source in enumerate(rule.from_):
            at = f"{path}.from[{f}].source"
            if source.source is None:
                report.error(at, "`from.source` must not be nil")
                continue
            _check_source(report, source.source, at)
            http_only_from = http_only_from or _http_only_source(source.source)
        has_to, tcp_in_to = False, False
        for t, to in enumerate(rule.to):
            at = f"{path}.to[{t}].operation"
            if to.operation is None:
                report.error(at, "`to.operation` must not be nil")
                continue
            has_to = True
            tcp_in_to = tcp_in_to or bool(to.operation.ports or to.operation.not_ports)
            _check_operation(report, to.operation, at)
        for c, condition in enumerate(rule.when):
            _check_condition(report, condition, f"{path}.when[{c}]")
        http_only = (http_only_from and not has_to) or (has_to and not tcp_in_to)
        if http_only and action == Action.DENY:
            report.warn(
                path,
                "configured AuthorizationPolicy will deny all traffic to TCP ports under its scope "
                "due to the use of only HTTP attributes in a DENY rule; it is recommended to "
                "explicitly specify the port",
            )


def _check_dry_run(report: Report, policy: AuthorizationPolicy) -> None:
    value = report.meta.annotations.get(DRY_RUN_ANNOTATION)
    if value is None:
        return
    path = f"metadata.annotations[{DRY_RUN_ANNOTATION}]"
    if policy.action not in (Action.ALLOW, Action.DENY):
        report.error(
            path,
            f"the annotation {DRY_RUN_ANNOTATION} currently only supports action ALLOW/DENY, "
            f"found action {policy.action}",
        )
    elif value not in (
        "1",
        "t",
        "T",
        "true",
        "TRUE",
        "True",
        "0",
        "f",
        "F",
        "false",
        "FALSE",
        "False",
    ):
        report.error(path, f"invalid value {value!r} for annotation {DRY_RUN_ANNOTATION}")


def _check_custom_rule(
    report: Report, sources: Sequence[object], when: Sequence[Condition], path: str
) -> None:
    fields = (
        "namespaces",
        "not_namespaces",
        "service_accounts",
        "not_service_accounts",
        "trust_domains",
        "not_trust_domains",
        "principals",
        "not_principals",
        "request_principals",
        "not_request_principals",
    )
    for f, item in enumerate(sources):
        source = getattr(item, "source", None)
        if source is None:
            continue
        for field in fields:
            if getattr(source, field):
                report.error(
                    f"{path}.from[{f}].source",
                    f"From.{_title(field)} is currently not supported with CUSTOM action",
                )
    for c, condition in enumerate(when):
        key = condition.key
        if key in _CUSTOM_UNSUPPORTED_KEYS or key.startswith("request.auth."):
            report.error(
                f"{path}.when[{c}].key", f"{key} is currently not supported with CUSTOM action"
            )


def _title(field: str) -> str:
    return "".join(part.capitalize() for part in field.split("_"))


def _http_only_source(source: Source) -> bool:
    """A source that only uses HTTP attributes (request principals)."""
    tcp = (
        source.principals,
        source.not_principals,
        source.ip_blocks,
        source.not_ip_blocks,
        source.namespaces,
        source.not_namespaces,
        source.remote_ip_blocks,
        source.not_remote_ip_blocks,
        source.service_accounts,
        source.not_service_accounts,
    )
    return not any(tcp)


def _check_source(report: Report, source: Source, path: str) -> None:
    if (
        source.principals or source.not_principals or source.namespaces or source.not_namespaces
    ) and (source.service_accounts or source.not_service_accounts):
        report.error(path, "Cannot set serviceAccounts with namespaces or principals")
    if source == Source():
        report.error(path, "`from.source` must not be empty")
    for field in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
        values = getattr(source, field)
        report.errors_at(f"{path}.{_json(field)}", check_ips(values))
        report.error(f"{path}.{_json(field)}", _check_empty(values, field))
    for field in ("principals", "request_principals", "namespaces", "not_principals"):
        report.error(f"{path}.{_json(field)}", _check_empty(getattr(source, field), field))
    for field in ("not_request_principals", "not_namespaces"):
        report.error(f"{path}.{_json(field)}", _check_empty(getattr(source, field), field))
    for field in ("service_accounts", "not_service_accounts"):
        report.error(
            f"{path}.{_json(field)}", check_service_accounts(getattr(source, field), field)
        )
    for field in ("trust_domains", "not_trust_domains"):
        report.error(f"{path}.{_json(field)}", _check_trust_domains(getattr(source, field), field))


def _check_operation(report: Report, op: Operation, path: str) -> None:
    if op == Operation():
        report.error(path, "`to.operation` must not be empty")
    for field in ("ports", "not_ports"):
        report.errors_at(f"{path}.{_json(field)}", check_ports(getattr(op, field)))
    for field in (
        "ports",
        "methods",
        "paths",
        "hosts",
        "not_ports",
        "not_methods",
        "not_paths",
        "not_hosts",
    ):
        report.error(f"{path}.{_json(field)}", _check_empty(getattr(op, field), field))
    for field in ("paths", "not_paths"):
        report.error(f"{path}.{_json(field)}", _check_path_templates(getattr(op, field), field))


def _check_condition(report: Report, condition: Condition, path: str) -> None:
    key = condition.key
    if not key:
        report.error(f"{path}.key", "`key` must not be empty")
        return
    if not condition.values and not condition.not_values:
        report.error(path, f"at least one of `values` or `notValues` must be set for key {key}")
        return
    for field, values in (("values", condition.values), ("notValues", condition.not_values)):
        problem = check_attribute(key, values)
        if problem is not None:
            report.error(f"{path}.{field}", f"invalid `{field[:-1]}` for `key` {key}: {problem}")


def check_attribute(key: str, values: Sequence[str]) -> str | None:
    """The `when` condition keys Istio supports, and what their values must look like."""
    problem = _check_empty(values, key)
    if problem is not None:
        return problem
    if key.startswith(("request.headers", "request.auth.claims", "experimental.envoy.filters.")):
        return _check_map_key(key)
    if key in ("source.ip", "remote.ip", "destination.ip"):
        errors = check_ips(values)
        return "; ".join(errors) if errors else None
    if key == "source.serviceAccount":
        return check_service_accounts(values, key)
    if key == "source.trustDomain":
        return _check_wildcards(values, key)
    if key == "destination.port":
        errors = check_ports(values)
        return "; ".join(errors) if errors else None
    if key in (
        "source.namespace",
        "source.principal",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "connection.sni",
    ):
        return None
    if key == "destination.namespace":
        return f"attribute {key} is replaced by the metadata.namespace"
    if key.startswith("destination.labels"):
        return f"attribute {key} is replaced by the workload selector"
    if key in ("destination.name", "destination.user"):
        return f"deprecated attribute {key}: only supported in v1alpha1"
    return f"unknown attribute: {key}"


def _check_map_key(key: str) -> str | None:
    open_at = key.find("[")
    if key.endswith("]") and 0 < open_at < len(key) - 2:
        return None
    return f"bad key ({key}): should have format a[b]"


def check_ips(values: Sequence[str]) -> list[str]:
    problems = []
    for value in values:
        try:
            if "/" in value:
                ipaddress.ip_network(value, strict=False)
            else:
                ipaddress.ip_address(value)
        except ValueError:
            kind = "CIDR range" if "/" in value else "IP address"
            problems.append(f"bad {kind} ({value})")
    return problems


def check_ports(values: Sequence[str]) -> list[str]:
    return [f"bad port ({v})" for v in values if not (v.isdigit() and int(v) <= 65535)]


def _check_empty(values: Sequence[str], field: str) -> str | None:
    if any(value == "" for value in values):
        return f"empty value not allowed, found in {_title(field)}"
    return None


def _check_wildcards(values: Sequence[str], field: str) -> str | None:
    problem = _check_empty(values, field)
    if problem is not None:
        return problem
    for value in values:
        count = value.count("*")
        if count > 1:
            return f"at most one wildcard is allowed, found in {field}: {value!r}"
        if count == 1 and value != "*" and not value.startswith("*") and not value.endswith("*"):
            return f"wildcard is only allowed at the start or end, found in {field}: {value!r}"
    return None


def _check_trust_domains(values: Sequence[str], field: str) -> str | None:
    problem = _check_wildcards(values, _title(field))
    if problem is not None:
        return problem
    for value in values:
        if "/" in value:
            return f"trust domain must not contain '/', found in {_title(field)}: {value!r}"
    return None


def check_service_accounts(values: Sequence[str], field: str) -> str | None:
    """`serviceAccount` or `namespace/serviceAccount`, without wildcards, at most 16."""
    if len(values) > 16:
        return "may not have more than 16 values"
    for value in values:
        if not value:
            return f"empty value not allowed, found in {_title(field)}"
        if "*" in value:
            return f"wildcard not allowed, found in {_title(field)}"
        namespace, slash, account = value.partition("/")
        if "/" in account or (slash and (not namespace or not account)):
            return (
                "expected format 'serviceAccount' or 'namespace/serviceAccount', found "
                f"{value!r} in {_title(field)}"
            )
    return None


def _check_path_templates(paths: Sequence[str], field: str) -> str | None:
    """Paths with `{*}` (one segment) and `{**}` (the rest; last only) templates."""
    for path in paths:
        templated = "{*}" in path or "{**}" in path
        seen_any = False
        for glob in path.strip("/").split("/"):
            if glob in ("{*}", "{**}"):
                if seen_any:
                    return (
                        f"invalid or unsupported path {path}, found in {_title(field)}. {{**}} is "
                        "not the last operator"
                    )
                seen_any = glob == "{**}"
                continue
            if "{" in glob or "}" in glob:
                return (
                    f"invalid or unsupported path {path}, found in {_title(field)}. Contains '{{' "
                    "or '}' beyond a supported path template"
                )
            if templated and _VALID_LITERAL.fullmatch(glob) is None:
                return (
                    f"invalid or unsupported path {path}, found in {_title(field)}. Contains "
                    f"segment {glob} with invalid string literal"
                )
    return None


def _json(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.capitalize() for part in rest)
