"""istiod's maximum xDS connection age (Istio's --keepaliveMaxServerConnectionAge): the
transport-level deadline that closes a connection stuck behind a proxy that stopped reading."""

from __future__ import annotations

import pytest

from pilot.bootstrap.options import parse_options
from pkg.errors import ConfigError


def test_max_server_connection_age_flag() -> None:
    base = ["--config-dir", "x"]
    assert parse_options(base).max_server_connection_age == 30 * 60.0
    age = parse_options([*base, "--keepalive-max-server-connection-age", "90s"])
    assert age.max_server_connection_age == 90.0
    with pytest.raises(ConfigError, match="--keepalive-max-server-connection-age"):
        parse_options([*base, "--keepalive-max-server-connection-age", "later"])
