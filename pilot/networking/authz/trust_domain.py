"""Trust-domain aliases in policies (Istio's pilot/pkg/security/trustdomain).

A mesh whose trust domain is `td1` with aliases `[old-td]` treats `td1/ns/foo/sa/bar` and
`old-td/ns/foo/sa/bar` as the same identity: a principal naming any of them (or
`cluster.local`, which stands for the local trust domain) is expanded to all of them.
Principals with a `*` trust domain, and values that are not `<td>/ns/<ns>/sa/<sa>`, are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_TRUST_DOMAIN = "cluster.local"


def _prefix_match(value: str, pattern: str) -> bool:
    return pattern.endswith("*") and value.startswith(pattern[:-1])


def _suffix_match(value: str, pattern: str) -> bool:
    return pattern.startswith("*") and value.endswith(pattern[1:])


def _string_match(value: str, patterns: Sequence[str]) -> bool:
    return any(
        value == s
        or s == "*"
        or _prefix_match(value, s)
        or _prefix_match(s, value)
        or _suffix_match(value, s)
        or _suffix_match(s, value)
        for s in patterns
    )


@dataclass(frozen=True, slots=True)
class TrustDomainBundle:
    """The local trust domain first, then its aliases."""

    trust_domains: tuple[str, ...]

    @classmethod
    def of(cls, trust_domain: str, aliases: Sequence[str]) -> TrustDomainBundle:
        return cls((trust_domain, *aliases))

    def replace_aliases(self, principals: Sequence[str]) -> list[str]:
        """Each principal in the local trust domain or one of its aliases (or in
        `cluster.local`) becomes one principal per trust domain of the bundle."""
        out: list[str] = []
        for principal in principals:
            parts = principal.split("/")
            if len(parts) != 5 or parts[0] == "*":
                out.append(principal)  # not a SPIFFE-style identity, or any trust domain
                continue
            domain = parts[0]
            if _string_match(domain, self.trust_domains) or domain == DEFAULT_TRUST_DOMAIN:
                out.extend(self._replace(principal, domain))
            else:
                log.debug("trust domain %s of principal %s is not local", domain, principal)
                out.append(principal)
        return out

    def _replace(self, principal: str, domain: str) -> list[str]:
        out: list[str] = []
        rest = principal.split("/", 1)[1]
        for td in self.trust_domains:
            # A principal whose trust domain is `*suffix` matching this one is kept as is.
            candidate = principal if _suffix_match(td, domain) else f"{td}/{rest}"
            if candidate not in out:
                out.append(candidate)
        return out

    def expand_aliases(self, values: Sequence[str]) -> list[str]:
        """`source.trustDomain` values: a bundle member stands for the whole bundle."""
        out: list[str] = []
        for value in values:
            for item in self.trust_domains if value in self.trust_domains else (value,):
                if item not in out:
                    out.append(item)
        return out
