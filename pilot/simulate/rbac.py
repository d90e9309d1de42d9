"""Envoy's RBAC and ext_authz decisions on a simulated request (`pilot.simulate`).

`authorize(result, request)` runs the authorization filters of the filter chain a simulated
call landed on (`traffic.Result.chain_proto`), in chain order, the way Envoy does:

- `envoy.filters.http.rbac` / `envoy.filters.network.rbac`: the enforced `rules` deny the
  request when an ALLOW set matches no policy or a DENY set matches one (LOG never denies);
  `shadow_rules` only record the first matching policy in dynamic metadata,
  `<shadow_rules_stat_prefix>shadow_effective_policy_id`;
- `envoy.filters.http.ext_authz` / `envoy.filters.network.ext_authz`: called when its
  `filter_enabled_metadata` matches that metadata; the simulated authorization service answers
  `request.ext_authz_allows`.

A policy matches when one of its permissions and one of its principals match. Principals:
`authenticated` compares the peer certificate's URI SAN (`request.peer_principal`; no
certificate, no match), `direct_remote_ip`/`remote_ip`/`source_ip` the client address,
`header` the request headers, `metadata` the dynamic metadata (e.g. the jwt_authn payload).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2 as http_ext_authz_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.ext_authz.v3 import ext_authz_pb2 as tcp_ext_authz_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as tcp_rbac_pb2
from envoy.extensions.path.match.uri_template.v3 import uri_template_match_pb2

from pilot.simulate.match import (
    header_matches,
    regex_full_match,
    split_path,
    string_matches,
)
from pilot.simulate.resources import HCM_TYPE

ALLOW, DENY, LOG = 0, 1, 2
_RBAC = {
    "envoy.filters.http.rbac": http_rbac_pb2.RBAC,
    "envoy.filters.network.rbac": tcp_rbac_pb2.RBAC,
}
_EXT_AUTHZ = {
    "envoy.filters.http.ext_authz": http_ext_authz_pb2.ExtAuthz,
    "envoy.filters.network.ext_authz": tcp_ext_authz_pb2.ExtAuthz,
}


@dataclass(frozen=True)
class Request:
    """What the authorization filters see of a request (or, for TCP, a connection)."""

    destination_port: int
    destination_ip: str = "10.0.0.1"
    source_ip: str = "10.0.0.2"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case, with pseudo-headers
    sni: str = ""
    peer_principal: str = ""  # URI SAN of the client certificate ("" = none)
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # filter → values
    ext_authz_allows: bool = True


@dataclass
class Decision:
    allowed: bool = True
    denied_by: str = ""  # the RBAC filter's action that denied ("ALLOW", "DENY", "ext_authz")
    matched: list[str] = field(default_factory=list)  # enforced policies that matched
    shadow_matched: list[str] = field(default_factory=list)  # dry-run/CUSTOM evaluations
    logged: list[str] = field(default_factory=list)  # AUDIT (LOG) matches
    ext_authz_called: bool = False
    evaluated: bool = False  # an enforcing RBAC or ext_authz filter ran
    decided_by: str = ""  # the policy that denied (DENY) or allowed (ALLOW) the request


# ---- permissions and principals --------------------------------------------------------------


def _in_cidr(address: str, cidr: Any) -> bool:
    try:
        network = ipaddress.ip_network(
            f"{cidr.address_prefix}/{cidr.prefix_len.value}", strict=False
        )
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


def _metadata_value(request: Request, matcher: Any) -> Any:
    value: Any = request.metadata.get(matcher.filter)
    for segment in matcher.path:
        if not isinstance(value, Mapping) or segment.key not in value:
            return None
        value = value[segment.key]
    return value


def _value_matches(matcher: Any, value: Any) -> bool:
    which = matcher.WhichOneof("match_pattern")
    if which == "string_match":
        return isinstance(value, str) and string_matches(matcher.string_match, value)
    if which == "or_match":
        return any(_value_matches(m, value) for m in matcher.or_match.value_matchers)
    if which == "list_match":
        return isinstance(value, list) and any(
            _value_matches(matcher.list_match.one_of, v) for v in value
        )
    if which == "present_match":
        return value is not None
    if which == "bool_match":
        return value is matcher.bool_match
    if which == "null_match":
        return value is None
    return False


def _metadata_matches(request: Request, matcher: Any) -> bool:
    value = _metadata_value(request, matcher)
    ok = value is not None and _value_matches(matcher.value, value)
    return bool(ok != matcher.invert)


def _template_regex(template: str) -> str:
    parts = []
    for segment in template.split("/"):
        if segment == "**":
            parts.append(".*")
        elif segment == "*":
            parts.append("[^/]+")
        else:
            parts.append("".join("\\" + c if not c.isalnum() else c for c in segment))
    return "/".join(parts)


def permission_matches(p: Any, request: Request) -> bool:
    which = p.WhichOneof("rule")
    if which == "any":
        return bool(p.any)
    if which == "and_rules":
        return all(permission_matches(r, request) for r in p.and_rules.rules)
    if which == "or_rules":
        return any(permission_matches(r, request) for r in p.or_rules.rules)
    if which == "not_rule":
        return not permission_matches(p.not_rule, request)
    if which == "header":
        return header_matches(p.header, request.headers)
    if which == "url_path":
        path, _ = split_path(request.headers.get(":path", ""))
        return string_matches(p.url_path.path, path)
    if which == "uri_template":
        config = uri_template_match_pb2.UriTemplateMatchConfig()
        p.uri_template.typed_config.Unpack(config)
        path, _ = split_path(request.headers.get(":path", ""))
        return regex_full_match(_template_regex(config.path_template), path)
    if which == "destination_port":
        return bool(p.destination_port == request.destination_port)
    if which == "destination_ip":
        return _in_cidr(request.destination_ip, p.destination_ip)
    if which == "requested_server_name":
        return string_matches(p.requested_server_name, request.sni)
    if which == "metadata":
        return _metadata_matches(request, p.metadata)
    raise AssertionError(f"permission {which} not simulated")


def principal_matches(p: Any, request: Request) -> bool:
    which = p.WhichOneof("identifier")
    if which == "any":
        return bool(p.any)
    if which == "and_ids":
        return all(principal_matches(i, request) for i in p.and_ids.ids)
    if which == "or_ids":
        return any(principal_matches(i, request) for i in p.or_ids.ids)
    if which == "not_id":
        return not principal_matches(p.not_id, request)
    if which == "authenticated":
        if not request.peer_principal:
            return False
        name = p.authenticated.principal_name
        return not name.WhichOneof("match_pattern") or string_matches(name, request.peer_principal)
    if which in ("direct_remote_ip", "remote_ip", "source_ip"):
        return _in_cidr(request.source_ip, getattr(p, which))
    if which == "header":
        return header_matches(p.header, request.headers)
    if which == "metadata":
        return _metadata_matches(request, p.metadata)
    raise AssertionError(f"principal {which} not simulated")


def matching_policies(rules: Any, request: Request) -> list[str]:
    """Names of the policies of an RBAC rule set that match, sorted (Envoy orders by name)."""
    return [
        name
        for name in sorted(rules.policies)
        if any(permission_matches(p, request) for p in rules.policies[name].permissions)
        and any(principal_matches(p, request) for p in rules.policies[name].principals)
    ]


# ---- filters ---------------------------------------------------------------------------------


def _filters(chain: Any) -> list[tuple[str, Any]]:
    out = []
    for f in chain.filters:
        if f.typed_config.type_url == HCM_TYPE:
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            out += [(h.name, h.typed_config) for h in hcm.http_filters]
        else:
            out.append((f.name, f.typed_config))
    return out


def authorize(chain: Any, request: Request) -> Decision:
    """Run the chain's authorization filters on `request`, stopping at the first denial."""
    decision = Decision()
    dynamic: dict[str, dict[str, str]] = {}
    for name, typed_config in _filters(chain):
        if name in _RBAC:
            config = _RBAC[name]()
            typed_config.Unpack(config)
            if config.HasField("shadow_rules"):
                shadow = matching_policies(config.shadow_rules, request)
                decision.shadow_matched += shadow
                if shadow:
                    key = config.shadow_rules_stat_prefix + "shadow_effective_policy_id"
                    dynamic.setdefault(name, {})[key] = shadow[0]
            if not config.HasField("rules"):
                continue
            matched = matching_policies(config.rules, request)
            action = config.rules.action
            if action == LOG:
                decision.logged += matched
                continue
            decision.evaluated = True
            decision.matched += matched
            if (action == ALLOW) != bool(matched):
                decision.allowed = False
                decision.denied_by = "ALLOW" if action == ALLOW else "DENY"
                decision.decided_by = matched[0] if matched else ""
                return decision
            if action == ALLOW and not decision.decided_by:
                decision.decided_by = matched[0]
        elif name in _EXT_AUTHZ:
            config = _EXT_AUTHZ[name]()
            typed_config.Unpack(config)
            if config.HasField("filter_enabled_metadata"):
                enabled = _metadata_matches(
                    Request(0, metadata=dynamic), config.filter_enabled_metadata
                )
                if not enabled:
                    continue
            decision.ext_authz_called = True
            decision.evaluated = True
            if not request.ext_authz_allows:
                decision.allowed = False
                decision.denied_by = "ext_authz"
                return decision
    return decision
