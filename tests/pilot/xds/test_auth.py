"""The node's claims must match the identity its credentials proved (Istio's
checkConnectionIdentity)."""

from __future__ import annotations

import pytest

from pilot.model.proxy import Proxy, parse_node
from pilot.xds.auth import IdentityMismatchError, check_connection_identity
from pkg.credentials import Identity

SLEEP = Identity("cluster.local", "default", "sleep")


def proxy(namespace: str, service_account: str = "") -> Proxy:
    metadata = {"NAMESPACE": namespace}
    if service_account:
        metadata["SERVICE_ACCOUNT"] = service_account
    return parse_node(f"sidecar~10.0.0.1~sleep-1.{namespace}~{namespace}.svc.cluster.local",
                      metadata)  # fmt: skip


def test_matching_claims_pass() -> None:
    check_connection_identity(proxy("default", "sleep"), SLEEP)
    check_connection_identity(proxy("default"), SLEEP)


@pytest.mark.parametrize(
    ("namespace", "account", "reason"),
    [
        ("prod", "sleep", "namespace 'prod'"),
        ("default", "admin", "service account 'admin'"),
    ],
)
def test_other_claims_are_refused(namespace: str, account: str, reason: str) -> None:
    with pytest.raises(IdentityMismatchError, match=reason):
        check_connection_identity(proxy(namespace, account), SLEEP)
