"""JWKS for RequestAuthentication: what must be fetched, and what was (an immutable snapshot).

As Istio (with its default PILOT_JWT_ENABLE_REMOTE_JWKS=false), istiod fetches the key sets
itself and inlines them into Envoy's `jwt_authn` filter (`local_jwks`). A JWTRule names its keys
by `jwks` (inline; nothing to fetch), by `jwksUri`, or by `issuer` alone (OpenID discovery:
`<issuer>/.well-known/openid-configuration` names the `jwks_uri`). The fetching itself happens in
`pilot.bootstrap.jwks_resolver`; this module is pure:

- `jwks_demand(configs)`: every key set the current RequestAuthentications need, with the fetch
  timeout (the rule's `timeout`, 5s by default) and the policies that use it (a changed key set
  pushes exactly those);
- `JwksSnapshot`: ref → last result, carried into the PushContext through PushInputs;
  `JwksSnapshot.keys_for(rule)` is the JWKS text a rule's provider gets. A key set that was never
  fetched, or whose fetch failed, gets `PUBLIC_ONLY_JWKS` (Istio's fail-closed fallback): a
  request carrying a token of that issuer is rejected (401), one without a token still reaches
  the authorization policies, and the listener is never broken.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pkg.config.jwks import jwks_problem, jwks_text_problem
from pkg.config.model import Config, ConfigKey

# https://openid.net/specs/openid-connect-discovery-1_0.html: the discovery document's path.
OPENID_DISCOVERY_SUFFIX = "/.well-known/openid-configuration"

# JWTRule.timeout's default: how long one fetch of a key set (or discovery document) may take.
DEFAULT_FETCH_TIMEOUT = 5.0

# A JWKS holding only the public half of an RSA key whose private half was generated for this
# purpose and discarded at once: nobody can sign a token it accepts. Served in place of a key
# set that could not be fetched, so tokens are rejected rather than trusted or ignored.
PUBLIC_ONLY_JWKS = (
    '{"keys":[{"kty":"RSA","e":"AQAB","n":"'
    "kZFgFgI8xBjduV8ucen_0Pb11Hzmd4rM5ZGKWFe2D1M4_WMSOzrahkMHZ74DMWGEN4ljmPzLu4agNJRVYn99kQHcWPbxU"
    "uMsh3vQTjwCEQQoI4RoQ0k9Tagbz9076Hc2I8lv1QcUQHx6bb3lpb3xEYCj6cxNpc9Af3RCSdicjrArZCPKKOapz0T3J1"
    "NZC_LTCiFneqGrcaO1aTqqCb4DYZ4LbmuWIprIQeKtuvr88MvYR-pI2m1Diz9lafp1OEHyiVSmV1G2YHn9Qt2wfYzVwbD"
    "zZR5wQjl8g8UkCnJGcey51AUbYDN3dMsrgCfvPue5Ru5tLjqqt8tqwyAcAN4CLQ"
    '"}]}'
)


@dataclass(frozen=True, slots=True, order=True)
class JwksRef:
    """One key set to fetch: by its URI, or (with no URI) by OpenID discovery from `issuer`."""

    jwks_uri: str = ""
    issuer: str = ""

    @classmethod
    def of_rule(cls, rule: Any) -> JwksRef | None:
        """The key set a JWTRule needs fetched; None when it is inline (or named by nothing,
        which validation rejects)."""
        if rule.jwks:
            return None
        if rule.jwks_uri:
            return cls(jwks_uri=rule.jwks_uri)
        if rule.issuer:
            return cls(issuer=rule.issuer)
        return None

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + OPENID_DISCOVERY_SUFFIX

    def __str__(self) -> str:
        return self.jwks_uri or f"{self.discovery_url} (issuer {self.issuer})"


@dataclass(frozen=True, slots=True)
class JwksDemand:
    """Why a key set is fetched: the longest timeout among the rules naming it, and the
    RequestAuthentications that name it."""

    timeout: float = DEFAULT_FETCH_TIMEOUT
    keys: frozenset[ConfigKey] = frozenset()


def rule_timeout(rule: Any) -> float:
    if rule.timeout is None:
        return DEFAULT_FETCH_TIMEOUT
    seconds: float = rule.timeout.total_seconds()
    return seconds if seconds > 0 else DEFAULT_FETCH_TIMEOUT


def jwks_demand(configs: Iterable[Config[Any]]) -> Mapping[JwksRef, JwksDemand]:
    """Every key set the given RequestAuthentications need fetched."""
    timeouts: dict[JwksRef, float] = {}
    keys: dict[JwksRef, set[ConfigKey]] = {}
    for config in configs:
        for rule in config.spec.jwt_rules:
            ref = JwksRef.of_rule(rule)
            if ref is None:
                continue
            timeouts[ref] = max(timeouts.get(ref, 0.0), rule_timeout(rule))
            keys.setdefault(ref, set()).add(config.key)
    return MappingProxyType(
        {ref: JwksDemand(timeouts[ref], frozenset(keys[ref])) for ref in sorted(timeouts)}
    )


@dataclass(frozen=True, slots=True)
class JwksResult:
    """The state of one key set: the JWKS last fetched (`jwks`, "" if none yet) and, when the
    latest attempt failed, why (`error`). A failed refresh keeps the JWKS fetched before."""

    jwks: str = ""
    error: str = ""
    jwks_uri: str = ""  # where the JWKS came from (found through discovery for issuer refs)


@dataclass(frozen=True, slots=True)
class JwksSnapshot:
    results: Mapping[JwksRef, JwksResult] = field(default_factory=lambda: MappingProxyType({}))

    def result(self, ref: JwksRef) -> JwksResult | None:
        return self.results.get(ref)

    def keys_for(self, rule: Any) -> str:
        """The JWKS text a JWTRule's provider is given."""
        if rule.jwks:
            # An inline key set Envoy cannot use (validation warns) would cost the listener.
            return str(rule.jwks) if usable_inline_jwks(rule.jwks) else PUBLIC_ONLY_JWKS
        ref = JwksRef.of_rule(rule)
        result = self.results.get(ref) if ref is not None else None
        if result is None or not result.jwks:
            return PUBLIC_ONLY_JWKS
        return result.jwks

    def with_result(self, ref: JwksRef, result: JwksResult) -> JwksSnapshot:
        return JwksSnapshot(MappingProxyType({**self.results, ref: result}))

    def only(self, refs: Iterable[JwksRef]) -> JwksSnapshot:
        """The snapshot restricted to `refs` (key sets no policy names any more are dropped)."""
        wanted = set(refs)
        return JwksSnapshot(
            MappingProxyType({r: v for r, v in self.results.items() if r in wanted})
        )

    def problems(self) -> list[str]:
        out = []
        for ref, result in sorted(self.results.items()):
            if not result.error:
                continue
            if result.jwks:
                out.append(
                    f"jwks {ref}: refresh failed, still serving the JWKS fetched before: "
                    f"{result.error}"
                )
            else:
                out.append(
                    f"jwks {ref}: fetch failed, tokens of this issuer are rejected: {result.error}"
                )
        return out


class JwksFormatError(ValueError):
    pass


def parse_jwks(body: bytes) -> str:
    """The fetched body as JWKS text, if Envoy can use it (`pkg.config.jwks`: a `keys` array
    with a key Envoy accepts). Anything else is refused: Envoy would reject the whole listener,
    and an arbitrary document a URI happens to return must not end up in a proxy's config."""
    try:
        text = body.decode("utf-8")
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise JwksFormatError(f"not a JWKS: invalid JSON: {err}") from None
    problem = jwks_problem(document)
    if problem is not None:
        raise JwksFormatError(f"not a usable JWKS: {problem}")
    return text


@functools.lru_cache(maxsize=1024)
def usable_inline_jwks(text: str) -> bool:
    return jwks_text_problem(text) is None


def parse_discovery(body: bytes) -> str:
    """The `jwks_uri` of an OpenID discovery document."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise JwksFormatError(f"invalid OpenID discovery document: {err}") from None
    uri = document.get("jwks_uri") if isinstance(document, dict) else None
    if not isinstance(uri, str) or not uri:
        raise JwksFormatError(f"invalid jwks_uri {uri!r} in OpenID discovery document")
    return uri


def _canonical_keys(text: str) -> list[str] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return None
    return sorted(json.dumps(key, sort_keys=True) for key in keys)


def same_keys(old: str, new: str) -> bool:
    """Whether two JWKS texts hold the same keys (order and formatting aside), so a refresh
    that only reorders or reformats keys changes nothing (Istio's compareJWKSResponse)."""
    if old == new:
        return True
    a, b = _canonical_keys(old), _canonical_keys(new)
    return a is not None and a == b
