"""The CA's Prometheus metrics, with Istio's names (security/pkg/server/ca/monitoring.go).

They live in the process registry of `pkg.monitoring`, next to pilot's metrics, and are served
at /metrics by istiod (counters without `_total`, as Istio names them: see pkg.monitoring).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from pkg.monitoring import REGISTRY

CSR_COUNT = Counter(
    "citadel_server_csr_count", "The number of CSRs received by Citadel server.",
    registry=REGISTRY,
)  # fmt: skip
AUTHN_FAILURE_COUNT = Counter(
    "citadel_server_authentication_failure_count",
    "The number of authentication failures.", registry=REGISTRY,
)  # fmt: skip
CSR_PARSING_ERR_COUNT = Counter(
    "citadel_server_csr_parsing_err_count", "The number of errors occurred when parsing the CSR.",
    registry=REGISTRY,
)  # fmt: skip
CSR_SIGN_ERR_COUNT = Counter(
    "citadel_server_csr_sign_err_count", "The number of errors occurred when signing the CSR.",
    ["error"], registry=REGISTRY,
)  # fmt: skip
SUCCESS_CERT_ISSUANCE_COUNT = Counter(
    "citadel_server_success_cert_issuance_count", "The number of certificates issuances that "
    "have succeeded.", registry=REGISTRY,
)  # fmt: skip
ROOT_CERT_EXPIRY_TIMESTAMP = Gauge(
    "citadel_server_root_cert_expiry_timestamp",
    "The unix timestamp, in seconds, when Citadel root cert will expire.", registry=REGISTRY,
)  # fmt: skip
CERT_CHAIN_EXPIRY_TIMESTAMP = Gauge(
    "citadel_server_cert_chain_expiry_timestamp",
    "The unix timestamp, in seconds, when Citadel cert chain will expire.", registry=REGISTRY,
)  # fmt: skip
