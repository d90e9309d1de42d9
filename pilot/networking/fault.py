"""VirtualService fault injection → the per-route config of envoy.filters.http.fault.

As Istio's TranslateFault: `percentage.value` is a fraction of a million (value x 10,000), the
deprecated integer `percent` one of a hundred; a delay without a percentage applies the
integer percent (0 if unset); exponential delays are not supported by Envoy and are dropped.
"""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2

from pilot.networking.protos import duration

# gRPC status names → codes (google.rpc.Code).
GRPC_STATUS = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip


def _fraction(percentage: Any, percent: int) -> Any:
    if percentage is not None:
        return percent_pb2.FractionalPercent(
            numerator=round(percentage.value * 10000),
            denominator=percent_pb2.FractionalPercent.MILLION,
        )
    return percent_pb2.FractionalPercent(
        numerator=percent, denominator=percent_pb2.FractionalPercent.HUNDRED
    )


def translate_fault(fault: Any) -> Any | None:
    if fault is None:
        return None
    out = fault_pb2.HTTPFault()
    has = False
    delay = fault.delay
    if delay is not None and delay.fixed_delay is not None:
        out.delay.CopyFrom(
            common_fault_pb2.FaultDelay(
                fixed_delay=duration(delay.fixed_delay),
                percentage=_fraction(delay.percentage, delay.percent),
            )
        )
        has = True
    abort = fault.abort
    if abort is not None and (abort.http_status is not None or abort.grpc_status is not None):
        if abort.percentage is not None:
            out.abort.percentage.CopyFrom(_fraction(abort.percentage, 0))
        if abort.http_status is not None:
            out.abort.http_status = int(abort.http_status)
        else:
            out.abort.grpc_status = GRPC_STATUS.get(str(abort.grpc_status), 2)
        has = True
    return out if has else None
