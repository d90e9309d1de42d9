"""TokenIssuer: ES256 service-account tokens, and every way a token must be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from pkg.errors import AuthenticationError, CAError
from security import pki
from security.tokens import TokenIdentity, TokenIssuer
from tests.security.util import FakeClock


@pytest.fixture
def issuer(state_dir: Path, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer.load_or_create(state_dir, clock=clock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _hand_made(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def test_issue_and_verify(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.issue("shop", "cart")
    found = issuer.verify(token)
    expires = clock.now + timedelta(days=365)
    assert found == TokenIdentity("shop", "cart", expires)
    claims = _claims(token)
    assert claims["iss"] == "istiod.pyistio"
    assert claims["sub"] == "system:serviceaccount:shop:cart"
    assert claims["aud"] == ["istio-ca"]
    assert claims["iat"] == claims["nbf"] == int(clock.now.timestamp())
    assert claims["exp"] == int(expires.timestamp())
    assert claims["kubernetes.io"] == {"namespace": "shop", "serviceaccount": {"name": "cart"}}
    assert jwt.get_unverified_header(token)["alg"] == "ES256"


def test_key_is_stored_0600_and_reused(
    issuer: TokenIssuer, state_dir: Path, clock: FakeClock
) -> None:
    path = state_dir / "token-signing-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = TokenIssuer.load_or_create(state_dir, clock=clock)
    assert again.key_id == issuer.key_id
    assert again.verify(issuer.issue("a", "b")).service_account == "b"


def test_key_file_must_be_ec(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "token-signing-key.pem").write_bytes(pki.encode_key_pem(pki.generate_rsa_key()))
    with pytest.raises(CAError, match="not an EC private key"):
        TokenIssuer.load_or_create(state_dir)


def test_other_audience(issuer: TokenIssuer) -> None:
    token = issuer.issue("a", "b", audience="other")
    with pytest.raises(AuthenticationError, match="audience"):
        issuer.verify(token)
    assert issuer.verify(token, audiences=("istio-ca", "other")).namespace == "a"


def test_expired(issuer: TokenIssuer, clock: FakeClock) -> None:
    token = issuer.issue("a", "b", ttl=timedelta(hours=1))
    clock.advance(timedelta(hours=1, seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        issuer.verify(token)


def test_not_yet_valid(issuer: TokenIssuer, state_dir: Path, clock: FakeClock) -> None:
    future = FakeClock(clock.now + timedelta(hours=1))
    token = TokenIssuer.load_or_create(state_dir, clock=future).issue("a", "b")
    with pytest.raises(AuthenticationError, match="not valid before"):
        issuer.verify(token)


def test_wrong_issuer(issuer: TokenIssuer, state_dir: Path, clock: FakeClock) -> None:
    other = TokenIssuer.load_or_create(state_dir, "someone-else", clock=clock)  # same key
    with pytest.raises(AuthenticationError, match="issuer"):
        issuer.verify(other.issue("a", "b"))


def test_wrong_key(issuer: TokenIssuer, tmp_path: Path, clock: FakeClock) -> None:
    stranger = TokenIssuer.load_or_create(tmp_path / "elsewhere", clock=clock)  # same issuer name
    with pytest.raises(AuthenticationError, match="signature"):
        issuer.verify(stranger.issue("a", "b"))


def test_alg_none_is_refused(issuer: TokenIssuer) -> None:
    claims = _claims(issuer.issue("a", "b"))
    token = _hand_made({"alg": "none", "typ": "JWT"}, claims)
    with pytest.raises(AuthenticationError, match="algorithm 'none' is not allowed"):
        issuer.verify(token)


def test_hs256_with_the_public_key_as_secret_is_refused(issuer: TokenIssuer) -> None:
    claims = _claims(issuer.issue("a", "b"))
    public = issuer._public.public_bytes(  # the classic key-confusion attack
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(AuthenticationError, match="algorithm 'HS256' is not allowed"):
        issuer.verify(f"{head}.{body}.{_b64(mac)}")


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "e30.e30.", "....."])
def test_malformed(issuer: TokenIssuer, garbage: str) -> None:
    with pytest.raises(AuthenticationError):
        issuer.verify(garbage)


def test_tampered_claims(issuer: TokenIssuer) -> None:
    head, _, sig = issuer.issue("a", "b").split(".")
    claims = _claims(issuer.issue("a", "b")) | {"sub": "system:serviceaccount:kube-system:admin"}
    body = _b64(json.dumps(claims).encode())
    with pytest.raises(AuthenticationError, match="signature"):
        issuer.verify(f"{head}.{body}.{sig}")


@pytest.mark.parametrize("claim", ["exp", "sub", "aud", "iss", "iat", "kubernetes.io"])
def test_missing_claims(issuer: TokenIssuer, claim: str) -> None:
    claims = _claims(issuer.issue("a", "b"))
    del claims[claim]
    token = jwt.encode(claims, issuer._key, algorithm="ES256")
    with pytest.raises(AuthenticationError, match=f"missing the '{claim}' claim"):
        issuer.verify(token)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"sub": "alice"}, id="not-a-service-account"),
        pytest.param({"sub": "system:serviceaccount:a"}, id="no-name"),
        pytest.param(
            {"kubernetes.io": {"namespace": "x", "serviceaccount": {"name": "b"}}},
            id="kubernetes-claim-mismatch",
        ),
        pytest.param({"exp": "tomorrow"}, id="exp-not-a-number"),
    ],
)
def test_bad_claim_shapes(issuer: TokenIssuer, changes: dict[str, Any]) -> None:
    claims = _claims(issuer.issue("a", "b")) | changes
    token = jwt.encode(claims, issuer._key, algorithm="ES256")
    with pytest.raises(AuthenticationError):
        issuer.verify(token)


def test_issue_rejects_bad_names(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        issuer.issue("a:b", "c")


@pytest.mark.parametrize("value", [1e300, -1e300, float("nan"), float("inf")])
@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_out_of_range_times_are_refused_not_crashing(
    issuer: TokenIssuer, claim: str, value: float
) -> None:
    claims = _claims(issuer.issue("a", "b")) | {claim: value}
    token = jwt.encode(claims, issuer._key, algorithm="ES256")
    with pytest.raises(AuthenticationError):
        issuer.verify(token)


def test_iat_in_the_future_beyond_skew(issuer: TokenIssuer, clock: FakeClock) -> None:
    now = int(clock.now.timestamp())
    claims = _claims(issuer.issue("a", "b"))
    within = jwt.encode(claims | {"iat": now + 50, "nbf": now}, issuer._key, algorithm="ES256")
    assert issuer.verify(within).namespace == "a"
    beyond = jwt.encode(claims | {"iat": now + 61, "nbf": now}, issuer._key, algorithm="ES256")
    with pytest.raises(AuthenticationError, match="issued in the future"):
        issuer.verify(beyond)


def test_reasons_never_quote_the_token_and_stay_short(issuer: TokenIssuer) -> None:
    claims = _claims(issuer.issue("a", "b"))
    long_alg = _hand_made({"alg": "X" * 5000}, claims)
    long_sub = jwt.encode(claims | {"sub": "s" * 5000}, issuer._key, algorithm="ES256")
    for token in (long_alg, long_sub, "x" * 5000, issuer.issue("a", "b", audience="zz")):
        with pytest.raises(AuthenticationError) as raised:
            issuer.verify(token)
        reason = str(raised.value)
        assert len(reason) < 200, reason
        assert all(part not in reason for part in token.split(".") if len(part) >= 8)


# ---- revocation ---------------------------------------------------------------------------


def test_revoked_identity_refuses_older_tokens_only(issuer: TokenIssuer, clock: FakeClock) -> None:
    old = issuer.issue("shop", "cart")
    other = issuer.issue("shop", "till")
    cutoff = issuer.revoke("shop", "cart")
    assert cutoff > clock.now
    with pytest.raises(AuthenticationError, match="revoked"):
        issuer.verify(old)
    assert issuer.verify(other).service_account == "till"  # another identity is untouched
    new = issuer.issue("shop", "cart")  # the same second as the revocation: still accepted
    assert issuer.verify(new).service_account == "cart"
    clock.advance(timedelta(hours=1))
    with pytest.raises(AuthenticationError, match="revoked"):
        issuer.verify(old)


def test_two_revocations_in_one_second_refuse_the_token_between(
    issuer: TokenIssuer, clock: FakeClock
) -> None:
    issuer.revoke("shop", "cart")
    between = issuer.issue("shop", "cart")
    assert issuer.verify(between).namespace == "shop"
    issuer.revoke("shop", "cart")  # same clock second
    with pytest.raises(AuthenticationError, match="revoked"):
        issuer.verify(between)
    assert issuer.verify(issuer.issue("shop", "cart")).namespace == "shop"


def test_revocations_survive_a_restart(
    issuer: TokenIssuer, state_dir: Path, clock: FakeClock
) -> None:
    old = issuer.issue("shop", "cart")
    issuer.revoke("shop", "cart")
    restarted = TokenIssuer.load_or_create(state_dir, clock=clock)
    with pytest.raises(AuthenticationError, match="revoked"):
        restarted.verify(old)
    path = state_dir / "revoked-service-accounts.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {
        "system:serviceaccount:shop:cart": int(clock.now.timestamp()) + 1
    }


def test_corrupt_revocation_list_is_an_error(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "revoked-service-accounts.json").write_text('{"x": "soon"}')
    with pytest.raises(CAError, match=r"revoked-service-accounts\.json"):
        TokenIssuer.load_or_create(state_dir)
