"""Istio's CSR API messages (`istio/api` security/v1alpha1/ca.proto), built without generated code.

The file descriptor is assembled here with `descriptor_pb2` and added to the default pool (or
reused if something already registered it), and the message classes come from
`message_factory`. Wire-compatible with Istio's agents, ztunnel and `istioctl`:

    package istio.v1.auth;
    message IstioCertificateRequest { string csr = 1; int64 validity_duration = 3;
                                      google.protobuf.Struct metadata = 4; }
    message IstioCertificateResponse { repeated string cert_chain = 1; }
    service IstioCertificateService {
      rpc CreateCertificate(IstioCertificateRequest) returns (IstioCertificateResponse); }
"""

from __future__ import annotations

from collections.abc import MutableSequence
from typing import Protocol, cast

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

FILE_NAME = "security/v1alpha1/ca.proto"
PACKAGE = "istio.v1.auth"
SERVICE = f"{PACKAGE}.IstioCertificateService"
METHOD = "CreateCertificate"
CREATE_CERTIFICATE = f"/{SERVICE}/{METHOD}"

_F = descriptor_pb2.FieldDescriptorProto


class CertificateRequest(Protocol):
    """The fields of an `IstioCertificateRequest` (for type checking)."""

    csr: str
    validity_duration: int

    @property
    def metadata(self) -> struct_pb2.Struct: ...


class CertificateResponse(Protocol):
    """The fields of an `IstioCertificateResponse` (for type checking)."""

    @property
    def cert_chain(self) -> MutableSequence[str]: ...


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str = "",
) -> None:
    camel = name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
    field = message.field.add(name=name, number=number, json_name=camel)
    field.type = kind  # type: ignore[assignment]
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name


def file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name=FILE_NAME, package=PACKAGE, syntax="proto3", dependency=[struct_pb2.DESCRIPTOR.name]
    )
    proto.options.go_package = "istio.io/api/security/v1alpha1"
    request = proto.message_type.add(name="IstioCertificateRequest")
    _field(request, "csr", 1, _F.TYPE_STRING)
    _field(request, "validity_duration", 3, _F.TYPE_INT64)
    _field(request, "metadata", 4, _F.TYPE_MESSAGE, type_name=".google.protobuf.Struct")
    response = proto.message_type.add(name="IstioCertificateResponse")
    _field(response, "cert_chain", 1, _F.TYPE_STRING, repeated=True)
    service = proto.service.add(name="IstioCertificateService")
    service.method.add(
        name=METHOD,
        input_type=f".{PACKAGE}.IstioCertificateRequest",
        output_type=f".{PACKAGE}.IstioCertificateResponse",
    )
    return proto


def _file_descriptor() -> FileDescriptor:
    pool = descriptor_pool.Default()
    try:  # registered already (by an earlier import or an istio.io/api package)
        return pool.FindMessageTypeByName(f"{PACKAGE}.IstioCertificateRequest").file
    except KeyError:
        pass
    pool.AddSerializedFile(file_descriptor_proto().SerializeToString())
    return pool.FindFileByName(FILE_NAME)


DESCRIPTOR = _file_descriptor()
IstioCertificateRequest: type[Message] = message_factory.GetMessageClass(
    DESCRIPTOR.message_types_by_name["IstioCertificateRequest"]
)
IstioCertificateResponse: type[Message] = message_factory.GetMessageClass(
    DESCRIPTOR.message_types_by_name["IstioCertificateResponse"]
)


def request_fields(message: Message) -> CertificateRequest:
    return cast(CertificateRequest, message)


def response_fields(message: Message) -> CertificateResponse:
    return cast(CertificateResponse, message)
