"""The generator registry: type URL → generator, listed explicitly.

As in Istio (findGenerator), a proxy's node metadata `GENERATOR` selects a generator set that
overrides some types; every other type is served by the default generators. Envoy sidecars and
gateways name none; proxyless gRPC clients name `grpc` and get LDS, RDS, CDS and EDS in the
shape gRPC's xDS client expects.
"""

from __future__ import annotations

from collections.abc import Mapping

from pilot.model.proxy import GRPC_GENERATOR, Proxy
from pilot.xds.generators.base import Generator
from pilot.xds.generators.cds import CdsGenerator
from pilot.xds.generators.eds import EdsGenerator
from pilot.xds.generators.grpc import (
    GrpcCdsGenerator,
    GrpcEdsGenerator,
    GrpcLdsGenerator,
    GrpcRdsGenerator,
)
from pilot.xds.generators.lds import LdsGenerator
from pilot.xds.generators.rds import RdsGenerator
from pilot.xds.generators.sds import SdsGenerator
from pkg.credentials import CredentialSource
from pkg.xds import typeurls


def default_generators(credentials: CredentialSource | None = None) -> dict[str, Generator]:
    return {
        typeurls.CLUSTER: CdsGenerator(),
        typeurls.ENDPOINT: EdsGenerator(),
        typeurls.LISTENER: LdsGenerator(),
        typeurls.ROUTE: RdsGenerator(),
        typeurls.SECRET: SdsGenerator(credentials),
    }


# GENERATOR metadata value → the types it overrides.
_OVERRIDES: Mapping[str, Mapping[str, Generator]] = {
    GRPC_GENERATOR: {
        typeurls.LISTENER: GrpcLdsGenerator(),
        typeurls.ROUTE: GrpcRdsGenerator(),
        typeurls.CLUSTER: GrpcCdsGenerator(),
        typeurls.ENDPOINT: GrpcEdsGenerator(),
    },
}


def generators_for(proxy: Proxy, defaults: Mapping[str, Generator]) -> Mapping[str, Generator]:
    """The generators serving `proxy`: its GENERATOR's overrides over `defaults` (an unknown
    GENERATOR gets the defaults)."""
    overrides = _OVERRIDES.get(proxy.generator)
    if not overrides:
        return defaults
    return {**defaults, **overrides}
