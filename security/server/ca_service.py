"""The CSR API: `istio.v1.auth.IstioCertificateService/CreateCertificate` on grpc.aio.

The flow of Istio's `security/pkg/server/ca/server.go`:
1. authenticate the caller (token in the metadata, or the verified client certificate),
   else `Unauthenticated` "request authenticate failure: <reason>" (Istio's words, plus
   every authenticator's reason, which never quotes the token);
2. refuse a CSR that asks for someone else's identity (`PermissionDenied`) — the SANs are the
   caller's anyway, but a mismatch means a confused or malicious client;
3. sign with the caller's identity, `validity_duration` seconds (<= 0: the CA's default);
   a signing error is `InvalidArgument` with its reason;
4. answer leaf, intermediates…, root last, one PEM per element, each ending in a newline.

The peer certificate is read from `context.auth_context()`: gRPC Python only asks for client
certificates when the server requires and verifies them, so one found there has been verified
against the server's roots.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import grpc
from google.protobuf.message import Message

from pkg.credentials import Identity
from pkg.errors import AuthenticationError, CAError, SigningError
from pkg.grpcpeer import peer_uris, request_metadata
from security import monitoring
from security.ca.authority import CertificateAuthority
from security.ca.errors import error_type
from security.pki.certs import decode_csr_pem, uri_sans
from security.server.authenticate import AnyAuthenticator, authenticate_any_async
from security.server.ca_proto import (
    CREATE_CERTIFICATE,
    METHOD,
    SERVICE,
    IstioCertificateRequest,
    IstioCertificateResponse,
    request_fields,
    response_fields,
)

__all__ = [
    "CREATE_CERTIFICATE",
    "SERVICE",
    "CertificateService",
    "IstioCertificateRequest",
    "IstioCertificateResponse",
    "ca_grpc_handler",
]

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Message, Message]


class CertificateService:
    """The CreateCertificate handler, independent of how the server is wired."""

    def __init__(
        self, ca: CertificateAuthority, authenticators: Sequence[AnyAuthenticator]
    ) -> None:
        self._ca = ca
        self._authenticators = tuple(authenticators)

    async def create_certificate(self, message: Message, context: Context) -> Message:
        monitoring.CSR_COUNT.inc()
        request = request_fields(message)
        try:
            caller = await authenticate_any_async(
                self._authenticators, request_metadata(context), peer_uris(context)
            )
        except AuthenticationError as exc:
            monitoring.AUTHN_FAILURE_COUNT.inc()
            log.warning("CSR authentication failed peer=%s: %s", context.peer(), exc)
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"request authenticate failure: {exc}"
            )
        refusal = self._refusal(request.csr, caller)
        if refusal is not None:
            log.warning("CSR refused peer=%s: %s", context.peer(), refusal)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
        ttl = (
            timedelta(seconds=request.validity_duration) if request.validity_duration > 0 else None
        )
        try:
            chain = self._ca.sign_csr(request.csr.encode(), [caller.spiffe_id], ttl)
        except SigningError as exc:
            monitoring.CSR_SIGN_ERR_COUNT.labels(error_type(exc)).inc()
            log.warning("CSR signing error identity=%s: %s", caller, exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"CSR signing error ({exc})")
        monitoring.SUCCESS_CERT_ISSUANCE_COUNT.inc()
        response = IstioCertificateResponse()
        response_fields(response).cert_chain.extend(
            pem if pem.endswith("\n") else pem + "\n" for pem in chain
        )
        return response

    def _refusal(self, csr_pem: str, caller: Identity) -> str | None:
        """Why the CSR is refused: it names an identity other than the caller's."""
        try:
            requested = uri_sans(decode_csr_pem(csr_pem))
        except CAError:
            monitoring.CSR_PARSING_ERR_COUNT.inc()
            return None  # sign_csr reports the reason as a CSR_ERROR
        others = [uri for uri in requested if uri != caller.spiffe_id]
        if others:
            return f"CSR asks for {', '.join(others)} but the caller is {caller}"
        return None


def ca_grpc_handler(
    ca: CertificateAuthority, authenticators: Sequence[AnyAuthenticator]
) -> grpc.GenericRpcHandler:
    """The IstioCertificateService handler, for `grpc.aio.Server.add_generic_rpc_handlers`."""
    service = CertificateService(ca, authenticators)
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            METHOD: grpc.unary_unary_rpc_method_handler(
                service.create_certificate,
                request_deserializer=IstioCertificateRequest.FromString,
                response_serializer=lambda message: message.SerializeToString(),
            )
        },
    )
