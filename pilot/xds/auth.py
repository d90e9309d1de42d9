"""Who is on the other end of an ADS stream (Istio's pilot/pkg/xds/auth.go).

On the secure port every stream is authenticated before its first response: the bootstrap
injects an `Authenticate` callable (security's authenticators: a bearer token signed by istiod,
or a client certificate chained to the mesh root) that turns the call's metadata and verified
peer certificate into an `Identity`. The node's own claims must then agree with it: a proxy
that says NAMESPACE=prod (or SERVICE_ACCOUNT=admin) but proved another identity is refused, so
node metadata can never buy a workload someone else's certificate. The plaintext port has no
authenticator: its proxies have no identity and get no keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

from pilot.model.proxy import Proxy
from pkg.credentials import Identity
from pkg.errors import AuthenticationError

# Synchronous, or a coroutine (a check that does I/O, e.g. a Kubernetes TokenReview).
Authenticate = Callable[[Mapping[str, str], Sequence[str]], Identity | Awaitable[Identity]]


class IdentityMismatchError(AuthenticationError):
    """The caller is authenticated, but not as the proxy its node metadata describes."""


def check_connection_identity(proxy: Proxy, identity: Identity) -> None:
    """The proxy's claimed namespace and service account must be the proven identity's."""
    if proxy.namespace != identity.namespace:
        raise IdentityMismatchError(
            f"node {proxy.id} claims namespace {proxy.namespace!r} but authenticated as "
            f"{identity.spiffe_id}"
        )
    if proxy.service_account and proxy.service_account != identity.service_account:
        raise IdentityMismatchError(
            f"node {proxy.id} claims service account {proxy.service_account!r} but "
            f"authenticated as {identity.spiffe_id}"
        )
