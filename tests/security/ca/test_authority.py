"""CertificateAuthority: what goes into the certificates it signs (genCertTemplateFromCSR)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pkg.errors import SigningError
from security import pki
from security.ca.authority import CertificateAuthority
from security.ca.errors import CertGenError, CSRError, TTLError
from tests.security.util import TRUST_DOMAIN, FakeClock, load_certs, spiffe, webpki_verify_client


def _sign(ca: CertificateAuthority, ttl: timedelta | None = None) -> list[x509.Certificate]:
    csr = pki.build_csr(pki.generate_key(), [spiffe()])
    return [
        x509.load_pem_x509_certificate(pem.encode()) for pem in ca.sign_csr(csr, [spiffe()], ttl)
    ]


def test_root_contents(ca: CertificateAuthority, clock: FakeClock) -> None:
    root = ca.root_cert
    assert root.subject == x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, TRUST_DOMAIN)])
    assert root.issuer == root.subject
    public = root.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.critical
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert root.not_valid_after_utc == clock.now + timedelta(days=3650)
    assert ca.trust_bundle() == root.public_bytes(serialization.Encoding.PEM)


def test_leaf_san_is_exactly_the_identities_and_critical(ca: CertificateAuthority) -> None:
    # The CSR asks for other names; the CA ignores them (SANs come from the caller).
    csr = pki.build_csr(pki.generate_key(), [spiffe("evil", "admin")], dns=["evil.example"])
    leaf = x509.load_pem_x509_certificate(ca.sign_csr(csr, [spiffe()])[0].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert list(san.value) == [x509.UniformResourceIdentifier(spiffe())]
    assert leaf.subject == x509.Name([])


def test_leaf_usages_and_constraints(ca: CertificateAuthority) -> None:
    leaf = _sign(ca)[0]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    assert not (usage.key_cert_sign or usage.crl_sign or usage.content_commitment)
    ext_usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(ext_usage) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False


def test_leaf_public_key_comes_from_the_csr(ca: CertificateAuthority) -> None:
    key = pki.generate_key()
    leaf = ca.sign_csr(pki.build_csr(key, [spiffe()]), [spiffe()])[0]
    assert pki.key_matches(key, x509.load_pem_x509_certificate(leaf.encode()).public_key())


def test_validity_default_ttl_and_backdating(ca: CertificateAuthority, clock: FakeClock) -> None:
    leaf = _sign(ca)[0]
    assert leaf.not_valid_before_utc == clock.now - timedelta(minutes=2)
    assert leaf.not_valid_after_utc == clock.now + timedelta(hours=24)


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-5)])
def test_non_positive_ttl_means_default(
    ca: CertificateAuthority, clock: FakeClock, ttl: timedelta
) -> None:
    assert _sign(ca, ttl)[0].not_valid_after_utc == clock.now + timedelta(hours=24)


def test_ttl_up_to_max_and_above(ca: CertificateAuthority, clock: FakeClock) -> None:
    assert _sign(ca, timedelta(days=90))[0].not_valid_after_utc == clock.now + timedelta(days=90)
    with pytest.raises(TTLError, match="greater than the max allowed TTL"):
        _sign(ca, timedelta(days=90, seconds=1))


def test_ttl_is_clamped_to_the_signer(state_dir: Path, clock: FakeClock) -> None:
    ca = CertificateAuthority.load_or_create(
        state_dir, TRUST_DOMAIN, clock=clock, root_ttl=timedelta(days=30)
    )
    clock.advance(timedelta(days=20))  # 10 days left (over 20 % of 30: no rotation)
    assert not ca.check_root_rotation()
    leaf = _sign(ca, timedelta(days=15))[0]
    assert leaf.not_valid_after_utc == ca.root_cert.not_valid_after_utc


def test_chain_order_leaf_then_root(ca: CertificateAuthority, clock: FakeClock) -> None:
    chain = ca.sign_csr(pki.build_csr(pki.generate_key(), [spiffe()]), [spiffe()])
    assert len(chain) == 2
    assert all(pem.startswith("-----BEGIN CERTIFICATE-----") for pem in chain)
    leaf, root = (x509.load_pem_x509_certificate(pem.encode()) for pem in chain)
    assert root == ca.root_cert
    assert leaf.issuer == root.subject
    pki.verify_chain(chain[0], chain[1:-1], chain[-1], at=clock.now)
    webpki_verify_client(leaf, [], ca.trust_bundle(), at=clock.now)


def test_serials_are_random_and_below_2_128(ca: CertificateAuthority) -> None:
    serials = [ca.issue([spiffe()]).serial for _ in range(40)]
    assert len(set(serials)) == len(serials)
    assert all(0 < serial < 2**128 for serial in serials)
    assert max(serials) > 2**100


def test_invalid_csrs(ca: CertificateAuthority) -> None:
    with pytest.raises(CSRError, match="not a PEM certificate request"):
        ca.sign_csr(b"garbage", [spiffe()])
    der = x509.load_pem_x509_csr(pki.build_csr(pki.generate_rsa_key(), [])).public_bytes(
        serialization.Encoding.DER
    )
    tampered = x509.load_der_x509_csr(der[:-1] + bytes([der[-1] ^ 0xFF]))
    with pytest.raises(CSRError, match="signature is invalid"):
        ca.sign_csr(tampered.public_bytes(serialization.Encoding.PEM), [spiffe()])
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SigningError, match="too short"):
        ca.sign_csr(pki.build_csr(weak, []), [spiffe()])


def test_identities_are_required(ca: CertificateAuthority) -> None:
    with pytest.raises(CertGenError, match="at least one identity"):
        ca.sign_csr(pki.build_csr(pki.generate_key(), []), [])


def test_issue_returns_a_credential(ca: CertificateAuthority, clock: FakeClock) -> None:
    credential = ca.issue([spiffe()], timedelta(hours=2))
    (leaf,) = load_certs(credential.cert_chain_pem)  # no root in the chain
    key = pki.decode_key_pem(credential.key_pem)
    assert pki.key_matches(key, leaf.public_key())
    assert pki.uri_sans(leaf) == [spiffe()]
    assert credential.roots_pem == ca.trust_bundle()
    assert credential.serial == leaf.serial_number
    assert credential.not_before == clock.now - timedelta(minutes=2)
    assert credential.not_after == clock.now + timedelta(hours=2)
    assert "PRIVATE KEY" not in repr(credential)


def test_serving_credential_has_dns_and_ip_sans(ca: CertificateAuthority) -> None:
    credential = ca.serving_credential(["istiod.istio-system.svc"], ["127.0.0.1"])
    (leaf,) = load_certs(credential.cert_chain_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["istiod.istio-system.svc"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    ext_usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in ext_usage
    assert ExtendedKeyUsageOID.CLIENT_AUTH in ext_usage


def test_issuance_is_logged_without_key_material(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="security"):
        credential = ca.issue([spiffe()])
    assert f"serial={credential.serial:x}" in caplog.text
    assert spiffe() in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    assert credential.key_pem.decode().splitlines()[1] not in caplog.text
