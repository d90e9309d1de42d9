"""Authenticators: bearer tokens, verified client certificates, first success wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pkg.credentials import Identity
from pkg.errors import AuthenticationError
from security.server.authenticate import (
    Authenticator,
    BearerTokenAuthenticator,
    ClientCertAuthenticator,
    authenticate_any,
    bearer_token,
)
from security.tokens import TokenIssuer
from tests.security.util import TRUST_DOMAIN, FakeClock, spiffe


@pytest.fixture
def issuer(state_dir: Path, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer.load_or_create(state_dir, clock=clock)


@pytest.fixture
def by_token(issuer: TokenIssuer) -> BearerTokenAuthenticator:
    return BearerTokenAuthenticator(issuer, TRUST_DOMAIN)


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param({"authorization": "Bearer TOKEN"}, id="bearer"),
        pytest.param({"Authorization": "Bearer TOKEN"}, id="key-case"),
        pytest.param({"authorization": "bearer   TOKEN "}, id="scheme-case-and-spaces"),
        pytest.param({"authorization": "Istio TOKEN"}, id="istio-scheme"),
    ],
)
def test_bearer_token_forms(metadata: dict[str, str]) -> None:
    assert bearer_token(metadata) == "TOKEN"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        pytest.param({}, "no authorization header", id="absent"),
        pytest.param({"authorization": "Basic dXNlcg=="}, "not 'Bearer", id="basic"),
        pytest.param({"authorization": "Bearer"}, "not 'Bearer", id="empty"),
    ],
)
def test_bearer_token_errors(metadata: dict[str, str], reason: str) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        bearer_token(metadata)


def test_token_authenticator(by_token: BearerTokenAuthenticator, issuer: TokenIssuer) -> None:
    metadata = {"authorization": f"Bearer {issuer.issue('shop', 'cart')}", "clusterid": "x"}
    assert by_token.authenticate(metadata, []) == Identity(TRUST_DOMAIN, "shop", "cart")


def test_token_authenticator_audiences(issuer: TokenIssuer) -> None:
    token = issuer.issue("a", "b", audience="xds")
    strict = BearerTokenAuthenticator(issuer, TRUST_DOMAIN)
    with pytest.raises(AuthenticationError, match="audience"):
        strict.authenticate({"authorization": f"Bearer {token}"}, [])
    relaxed = BearerTokenAuthenticator(issuer, TRUST_DOMAIN, audiences=["xds"])
    assert relaxed.authenticate({"authorization": f"Bearer {token}"}, []).namespace == "a"


def test_client_cert_authenticator() -> None:
    auth = ClientCertAuthenticator([TRUST_DOMAIN, "old.domain"])
    assert auth.authenticate({}, [spiffe("a", "b")]) == Identity(TRUST_DOMAIN, "a", "b")
    alias = "spiffe://old.domain/ns/a/sa/b"
    assert auth.authenticate({}, ["https://example.com", alias]).trust_domain == "old.domain"
    with pytest.raises(AuthenticationError, match="no verified client certificate"):
        auth.authenticate({}, [])
    with pytest.raises(AuthenticationError, match="not in trust domains"):
        auth.authenticate({}, ["spiffe://evil.domain/ns/a/sa/b"])
    with pytest.raises(AuthenticationError, match="not a SPIFFE workload id"):
        auth.authenticate({}, ["spiffe://cluster.local/something"])


class _Fixed:
    name = "fixed"

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.calls = 0

    def authenticate(self, metadata: Mapping[str, str], peer_uris: Sequence[str]) -> Identity:
        self.calls += 1
        return self.identity


def test_authenticate_any_first_success_wins(
    by_token: BearerTokenAuthenticator, issuer: TokenIssuer
) -> None:
    cert = ClientCertAuthenticator([TRUST_DOMAIN])
    later = _Fixed(Identity(TRUST_DOMAIN, "z", "z"))
    chain: list[Authenticator] = [cert, by_token, later]
    metadata = {"authorization": f"Bearer {issuer.issue('tok', 'en')}"}
    assert authenticate_any(chain, metadata, [spiffe("c", "ert")]).namespace == "c"
    assert authenticate_any(chain, metadata, []).namespace == "tok"
    assert authenticate_any(chain, {}, []).namespace == "z"
    assert later.calls == 1


def test_authenticate_any_reports_every_reason(by_token: BearerTokenAuthenticator) -> None:
    chain: list[Authenticator] = [ClientCertAuthenticator([TRUST_DOMAIN]), by_token]
    with pytest.raises(AuthenticationError) as raised:
        authenticate_any(chain, {"authorization": "Bearer nope"}, [])
    message = str(raised.value)
    assert "client-cert: no verified client certificate" in message
    assert "token: malformed token" in message
    with pytest.raises(AuthenticationError, match="no authenticators"):
        authenticate_any([], {}, [])
