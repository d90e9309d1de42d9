"""security.pki: keys, PEM, SANs, CSRs and path validation."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pkg.errors import CAError
from security import pki
from security.pki.certs import general_name
from security.pki.verify import ChainError
from tests.security.util import START, spiffe, write_plugged_ca


def test_generate_key_is_p256() -> None:
    key = pki.generate_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_generate_rsa_key_size_and_minimum() -> None:
    key = pki.generate_rsa_key()
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    with pytest.raises(ValueError, match="2048"):
        pki.generate_rsa_key(1024)


def test_key_pem_round_trip_pkcs8() -> None:
    key = pki.generate_key()
    pem = pki.encode_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pki.key_matches(pki.decode_key_pem(pem), key.public_key())
    assert not pki.key_matches(pki.generate_key(), key.public_key())


def test_decode_key_pem_rejects_garbage() -> None:
    with pytest.raises(CAError, match="cannot read private key"):
        pki.decode_key_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


def test_decode_certs_pem_errors_name_what() -> None:
    with pytest.raises(CAError, match="roots: no PEM certificate"):
        pki.decode_certs_pem(b"hello", what="roots")
    with pytest.raises(CAError, match="invalid PEM certificate"):
        pki.decode_certs_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        pytest.param(spiffe(), x509.UniformResourceIdentifier(spiffe()), id="uri"),
        pytest.param("10.0.0.1", x509.IPAddress(ipaddress.ip_address("10.0.0.1")), id="ipv4"),
        pytest.param("::1", x509.IPAddress(ipaddress.ip_address("::1")), id="ipv6"),
        pytest.param("istiod.istio-system.svc", x509.DNSName("istiod.istio-system.svc"), id="dns"),
    ],
)
def test_general_name_follows_istio_rules(identity: str, expected: x509.GeneralName) -> None:
    assert general_name(identity) == expected


@pytest.mark.parametrize("bad", ["", " spiffe://x", "a "])
def test_general_name_rejects_blank_or_padded(bad: str) -> None:
    with pytest.raises(CAError):
        general_name(bad)


def test_general_names_needs_one() -> None:
    with pytest.raises(CAError, match="at least one identity"):
        pki.general_names([])


def test_build_csr_contents() -> None:
    key = pki.generate_key()
    csr = x509.load_pem_x509_csr(pki.build_csr(key, [spiffe()], dns=["a.example"]))
    assert csr.is_signature_valid
    assert csr.subject == x509.Name([])
    assert pki.uri_sans(csr) == [spiffe()]
    assert pki.dns_sans(csr) == ["a.example"]
    assert pki.key_matches(key, csr.public_key())


def test_decode_csr_rejects_bad_signature() -> None:
    key = pki.generate_rsa_key()
    der = x509.load_pem_x509_csr(pki.build_csr(key, [spiffe()])).public_bytes(
        serialization.Encoding.DER
    )
    tampered = x509.load_der_x509_csr(der[:-1] + bytes([der[-1] ^ 1]))
    with pytest.raises(CAError, match="signature is invalid"):
        pki.decode_csr_pem(tampered.public_bytes(serialization.Encoding.PEM))


def test_random_serials_are_positive_and_below_2_128() -> None:
    serials = {pki.random_serial() for _ in range(200)}
    assert len(serials) == 200
    assert all(0 < serial < 2**128 for serial in serials)
    assert max(serials) > 2**120


# -- verify_chain ---------------------------------------------------------------------------


def _leaf(issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return pki.build_leaf_cert(
        pki.generate_key().public_key(),
        pki.general_names([spiffe()]),
        issuer,
        issuer_key,
        START - timedelta(minutes=2),
        START + timedelta(hours=1),
    )


def test_verify_chain_through_intermediate(tmp_path: Path) -> None:
    plugged = write_plugged_ca(tmp_path / "cacerts")
    leaf = _leaf(plugged.intermediate, plugged.intermediate_key)
    root_pem = pki.encode_cert_pem(plugged.root)
    inter_pem = pki.encode_cert_pem(plugged.intermediate)
    leaf_pem = pki.encode_cert_pem(leaf)
    pki.verify_chain(leaf_pem, [inter_pem], root_pem, at=START)
    pki.verify_chain(leaf_pem, inter_pem + root_pem, root_pem, at=START)  # root in chain: harmless
    path = pki.build_path(leaf, [plugged.intermediate], [plugged.root], START)
    assert path == [leaf, plugged.intermediate, plugged.root]
    with pytest.raises(ChainError, match="does not chain"):
        pki.verify_chain(leaf_pem, [], root_pem, at=START)  # intermediate missing


def test_verify_chain_accepts_a_ca_as_leaf(tmp_path: Path) -> None:
    plugged = write_plugged_ca(tmp_path / "cacerts")
    pki.verify_chain(
        pki.encode_cert_pem(plugged.intermediate), [], pki.encode_cert_pem(plugged.root), at=START
    )


def test_verify_chain_failures(tmp_path: Path) -> None:
    plugged = write_plugged_ca(tmp_path / "a")
    other = write_plugged_ca(tmp_path / "b")
    leaf = _leaf(plugged.intermediate, plugged.intermediate_key)
    leaf_pem = pki.encode_cert_pem(leaf)
    inter_pem = pki.encode_cert_pem(plugged.intermediate)
    with pytest.raises(ChainError, match="does not chain"):
        pki.verify_chain(leaf_pem, [inter_pem], pki.encode_cert_pem(other.root), at=START)
    with pytest.raises(ChainError, match="expired"):
        pki.verify_chain(
            leaf_pem, [inter_pem], pki.encode_cert_pem(plugged.root), at=START + timedelta(days=1)
        )
    with pytest.raises(ChainError, match="not valid before"):
        pki.verify_chain(
            leaf_pem, [inter_pem], pki.encode_cert_pem(plugged.root), at=START - timedelta(hours=1)
        )


def test_verify_chain_refuses_a_leaf_as_issuer(tmp_path: Path) -> None:
    plugged = write_plugged_ca(tmp_path / "cacerts")
    leaf_key = pki.generate_key()
    leaf = pki.build_leaf_cert(
        leaf_key.public_key(), [x509.DNSName("x")], plugged.intermediate,
        plugged.intermediate_key, START - timedelta(hours=1), START + timedelta(hours=1),
    )  # fmt: skip
    # A certificate signed by the leaf (names chain: both empty) must not validate.
    child = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(leaf.subject)
        .public_key(pki.generate_key().public_key())
        .serial_number(1)
        .not_valid_before(START - timedelta(hours=1))
        .not_valid_after(START + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("y")]), critical=True)
        .sign(leaf_key, hashes.SHA256())
    )
    with pytest.raises(ChainError, match="not a CA"):
        pki.build_path(child, [leaf, plugged.intermediate], [plugged.root], START)
