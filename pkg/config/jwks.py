"""JWKS documents as Envoy's `jwt_authn` reads them (its JWT library's key extraction).

Envoy refuses a whole listener whose `local_jwks` holds no key it can use, so a key set is only
given to a proxy when at least one of its keys passes the checks Envoy makes (keys failing them
are skipped by Envoy itself):

- `kty` a string: `RSA`, `EC`, `oct` or `OKP`; `alg`, when a string, constrains the type;
- RSA: `alg` RS*/PS*; `n` and `e` base64url strings; `e` 3 or 65537; `n` odd, above 33 bits
  and at most 16384 bits;
- EC: `alg` ES*; `crv` P-256/P-384/P-521 (P-256 when neither is given; they must agree);
  `x`, `y` a point on the curve;
- oct: `alg` HS256/384/512; `k` non-empty base64url;
- OKP: `alg` EdDSA; `crv` Ed25519; `x` 32 bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

_CURVES: dict[str, tuple[str, ec.EllipticCurve]] = {
    "P-256": ("ES256", ec.SECP256R1()),
    "P-384": ("ES384", ec.SECP384R1()),
    "P-521": ("ES512", ec.SECP521R1()),
}


def _b64url(value: Any) -> bytes | None:
    """Base64url (padding optional), or None when `value` is not a valid encoding."""
    if not isinstance(value, str) or "+" in value or "/" in value:
        return None
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None


def _string(key: dict[str, Any], name: str) -> str:
    value = key.get(name)
    return value if isinstance(value, str) else ""


def _rsa_problem(key: dict[str, Any], alg: str) -> str | None:
    if alg and alg[:2] not in ("RS", "PS"):
        return f"alg {alg!r} is not RS* or PS* for an RSA key"
    n, e = _b64url(key.get("n")), _b64url(key.get("e"))
    if n is None or e is None:
        return "RSA n or e missing or not base64url"
    modulus, exponent = int.from_bytes(n, "big"), int.from_bytes(e, "big")
    if exponent not in (3, 65537):
        return f"RSA exponent {exponent} is not 3 or 65537"
    if modulus % 2 == 0 or not 33 < modulus.bit_length() <= 16384:
        return "RSA modulus is not a valid public key"
    return None


def _ec_problem(key: dict[str, Any], alg: str) -> str | None:
    if alg and not alg.startswith("ES"):
        return f"alg {alg!r} is not ES* for an EC key"
    crv = key.get("crv", "")
    if not isinstance(crv, str):
        return "EC crv is not a string"
    if alg and crv and _CURVES.get(crv, ("",))[0] != alg:
        return f"alg {alg!r} does not match crv {crv!r}"
    if not crv:
        crv = {a: c for c, (a, _) in _CURVES.items()}.get(alg or "ES256", "")
    if crv not in _CURVES:
        return f"unsupported EC alg {alg!r} / crv {crv!r}"
    x, y = _b64url(key.get("x")), _b64url(key.get("y"))
    if x is None or y is None:
        return "EC x or y missing or not base64url"
    try:
        ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), _CURVES[crv][1]
        ).public_key()
    except ValueError:
        return f"EC point is not on {crv}"
    return None


def _oct_problem(key: dict[str, Any], alg: str) -> str | None:
    if alg and alg not in ("HS256", "HS384", "HS512"):
        return f"alg {alg!r} is not HS256, HS384 or HS512 for an oct key"
    if not _b64url(key.get("k")):
        return "oct k missing, empty or not base64url"
    return None


def _okp_problem(key: dict[str, Any], alg: str) -> str | None:
    if alg and alg != "EdDSA":
        return f"alg {alg!r} is not EdDSA for an OKP key"
    if key.get("crv") != "Ed25519":
        return "OKP crv is not Ed25519"
    x = _b64url(key.get("x"))
    if x is None or len(x) != 32:
        return "OKP x is not a 32-byte base64url value"
    return None


_BY_KTY = {"RSA": _rsa_problem, "EC": _ec_problem, "oct": _oct_problem, "OKP": _okp_problem}


def key_problem(key: Any) -> str | None:
    """Why Envoy would skip this JWK (None: it can use it)."""
    if not isinstance(key, dict):
        return "not a JSON object"
    kty = key.get("kty")
    if not isinstance(kty, str):
        return "kty missing or not a string"
    check = _BY_KTY.get(kty)
    if check is None:
        return f"kty {kty!r} is not supported"
    return check(key, _string(key, "alg"))


def jwks_problem(document: Any) -> str | None:
    """Why Envoy would refuse this JWKS (a parsed JSON value) as `local_jwks` (None: it
    accepts it: a `keys` array with at least one usable key)."""
    if not isinstance(document, dict):
        return "not a JSON object"
    keys = document.get("keys")
    if not isinstance(keys, list):
        return 'no "keys" array'
    problems = [key_problem(key) for key in keys]
    if any(p is None for p in problems):
        return None
    if not keys:
        return "no keys"
    return f"no key Envoy can use (key 0: {problems[0]})"


def jwks_text_problem(text: str) -> str | None:
    """`jwks_problem` of a JSON text (invalid JSON is a problem too)."""
    try:
        document = json.loads(text)
    except ValueError as err:
        return f"invalid JSON: {err}"
    return jwks_problem(document)
