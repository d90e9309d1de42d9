"""Key and certificate helpers (all on `cryptography`): keys, PEM, SANs, CSRs, templates, paths."""

from __future__ import annotations

from security.pki.certs import (
    build_csr,
    decode_cert_pem,
    decode_certs_pem,
    decode_csr_pem,
    dns_sans,
    encode_cert_pem,
    encode_certs_pem,
    general_names,
    random_serial,
    split_certs_pem,
    uri_sans,
)
from security.pki.issue import CLOCK_SKEW_GRACE, build_leaf_cert, build_root_cert, root_subject
from security.pki.keys import (
    decode_key_pem,
    encode_key_pem,
    generate_key,
    generate_rsa_key,
    key_matches,
)
from security.pki.verify import ChainError, build_path, verify_chain

__all__ = [
    "CLOCK_SKEW_GRACE",
    "ChainError",
    "build_csr",
    "build_leaf_cert",
    "build_path",
    "build_root_cert",
    "decode_cert_pem",
    "decode_certs_pem",
    "decode_csr_pem",
    "decode_key_pem",
    "dns_sans",
    "encode_cert_pem",
    "encode_certs_pem",
    "encode_key_pem",
    "general_names",
    "generate_key",
    "generate_rsa_key",
    "key_matches",
    "random_serial",
    "root_subject",
    "split_certs_pem",
    "uri_sans",
    "verify_chain",
]
