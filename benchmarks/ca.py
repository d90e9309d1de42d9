"""CA costs on this machine: what istiod spends per identity and per authenticated stream.

    .venv/bin/python -m benchmarks.ca [--identities 500] [--tokens 2000]

Prints, for a fresh self-signed CA in a temporary state dir: root creation time, workload
credential issuance (EC P-256 key + RSA-2048 signature, what SDS `default` costs the first
time an identity connects or when it renews), token issuance and verification (what each
secure ADS stream costs to authenticate), and CSR signing (the CSR API). Bounded loops only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pkg.credentials import Identity
from security.ca.authority import CertificateAuthority
from security.ca.source import WorkloadCredentials
from security.pki.certs import build_csr
from security.tokens import TokenIssuer


def _timed(count: int, fn: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _row(name: str, samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    rate = 1000 / statistics.mean(samples)
    return (
        f"{name:<34} n={len(samples):>5}  median {statistics.median(samples):7.3f} ms  "
        f"p99 {p99:7.3f} ms  ~{rate:8.0f}/s on one core"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--identities", type=int, default=500)
    parser.add_argument("--tokens", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        start = time.perf_counter()
        ca = CertificateAuthority.load_or_create(state, "cluster.local")
        root_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        CertificateAuthority.load_or_create(state, "cluster.local")
        reload_ms = (time.perf_counter() - start) * 1000
        credentials = WorkloadCredentials(ca, ttl=timedelta(hours=24))
        identities = [
            Identity("cluster.local", f"ns-{i % 20}", f"sa-{i}") for i in range(args.identities)
        ]
        issue = _timed(len(identities), lambda i: credentials.credential(identities[i]))
        cached = _timed(len(identities), lambda i: credentials.credential(identities[i]))
        tokens = TokenIssuer.load_or_create(state)
        issued: list[str] = []
        token_issue = _timed(
            args.tokens, lambda i: issued.append(tokens.issue("default", f"sa-{i}"))
        )
        token_verify = _timed(args.tokens, lambda i: tokens.verify(issued[i]))
        key = ec.generate_private_key(ec.SECP256R1())
        csrs = [build_csr(key, [identities[i].spiffe_id]) for i in range(min(200, len(identities)))]
        sign = _timed(
            len(csrs), lambda i: ca.sign_csr(csrs[i], [identities[i].spiffe_id], timedelta(hours=1))
        )
    print(f"root creation (RSA 2048, files 0600)  {root_ms:8.1f} ms; reload {reload_ms:6.1f} ms")
    print(_row("workload credential, first issue", issue))
    print(_row("workload credential, cached", cached))
    print(_row("token issue (ES256)", token_issue))
    print(_row("token verify (ES256)", token_verify))
    print(_row("CSR sign (CSR API)", sign))


if __name__ == "__main__":
    main()
