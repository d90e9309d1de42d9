"""Envoy's RBAC and ext_authz decisions for the test simulator: now product code in
`pilot.simulate.rbac`."""

from pilot.simulate.rbac import (
    ALLOW,
    DENY,
    LOG,
    Decision,
    Request,
    authorize,
    matching_policies,
    permission_matches,
    principal_matches,
)

__all__ = [
    "ALLOW",
    "DENY",
    "LOG",
    "Decision",
    "Request",
    "authorize",
    "matching_policies",
    "permission_matches",
    "principal_matches",
]
