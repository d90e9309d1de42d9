"""The generator registry: type URL → generator, listed explicitly."""

from __future__ import annotations

from pilot.xds.generators.base import Generator
from pilot.xds.generators.cds import CdsGenerator
from pilot.xds.generators.eds import EdsGenerator
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
