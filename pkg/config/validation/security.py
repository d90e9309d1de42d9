"""PeerAuthentication and RequestAuthentication (AuthorizationPolicy is in `authorization`)."""

from __future__ import annotations

import json

from pkg.config.jwks import jwks_text_problem
from pkg.config.specs.security import JWTRule, PeerAuthentication, RequestAuthentication
from pkg.config.validation.http import check_strict_header_name
from pkg.config.validation.policy import check_selector, check_target_refs
from pkg.config.validation.report import Report


def validate_peer_authentication(pa: PeerAuthentication, report: Report) -> None:
    selector_empty = pa.selector is None or not pa.selector.match_labels
    if pa.port_level_mtls and selector_empty:
        report.error("spec.portLevelMtls", "portLevelMtls requires selector")
    for key in pa.port_level_mtls:
        path = f"spec.portLevelMtls[{key}]"
        if not key.strip().lstrip("+-").isdigit():
            report.error(path, f"type conversion error from string to int: {key!r} is not a port")
        elif not 0 < int(key) <= 65535:
            report.error(path, "port must be between 1-65535")
    check_selector(report, pa.selector, "spec.selector")


def validate_request_authentication(ra: RequestAuthentication, report: Report) -> None:
    check_target_refs(report, ra.selector, ra.target_ref, ra.target_refs)
    check_selector(report, ra.selector, "spec.selector")
    for index, rule in enumerate(ra.jwt_rules):
        _check_jwt_rule(report, rule, f"spec.jwtRules[{index}]")


def _check_jwt_rule(report: Report, rule: JWTRule, path: str) -> None:
    if rule.jwks_uri and rule.jwks:
        report.error(path, "only one of jwks or jwksUri can be set")
    if not rule.issuer and not rule.jwks_uri:
        report.error(f"{path}.issuer", "issuer or jwksUri must be non-empty string")
    if rule.jwks:
        problem, private = _check_jwks(rule.jwks)
        if problem is not None:
            report.error(f"{path}.jwks", f"jwks parse error: {problem}")
        for index in private:
            report.warn(
                f"{path}.jwks",
                f"jwks key at index {index} contains private key material; only public keys are "
                "used for verification",
            )
        if problem is None:
            unusable = jwks_text_problem(rule.jwks)
            if unusable is not None:
                report.warn(
                    f"{path}.jwks",
                    f"Envoy cannot use this jwks ({unusable}); tokens of this issuer will be "
                    "rejected",
                )
    for index, item in enumerate(rule.output_claim_to_headers):
        report.error(
            f"{path}.outputClaimToHeaders[{index}].header", check_strict_header_name(item.header)
        )


def _check_jwks(jwks: str) -> tuple[str | None, list[int]]:
    """A JWKS (`{"keys": [...]}`) or a single JWK; each key needs a `kty`.

    Returns the problem, if any, and the indexes of keys carrying private material (`d`, `k`).
    """
    try:
        document = json.loads(jwks)
    except ValueError as err:
        return f"invalid JSON: {err}", []
    if not isinstance(document, dict):
        return "a JWKS must be a JSON object", []
    keys = document.get("keys", [document] if "kty" in document else None)
    if not isinstance(keys, list):
        return 'a JWKS needs a "keys" array', []
    private = []
    for index, key in enumerate(keys):
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            return f'key {index} has no "kty"', []
        if "d" in key or "k" in key:
            private.append(index)
    return None, private
