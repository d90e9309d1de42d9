"""Istio's env knobs, read with Istio's names and formats."""

from __future__ import annotations

import pytest

from pilot.features import Features, from_env
from pkg.errors import ConfigError


def test_defaults() -> None:
    features = from_env({})
    assert features == Features(0.1, 10.0, True, 0)
    assert features.effective_push_throttle >= 20


def test_go_durations_and_booleans() -> None:
    features = from_env(
        {
            "PILOT_DEBOUNCE_AFTER": "250ms",
            "PILOT_DEBOUNCE_MAX": "1m",
            "PILOT_ENABLE_EDS_DEBOUNCE": "false",
            "PILOT_PUSH_THROTTLE": "7",
        }
    )
    assert features.debounce_after == pytest.approx(0.25)
    assert features.debounce_max == pytest.approx(60.0)
    assert not features.enable_eds_debounce
    assert features.effective_push_throttle == 7


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PILOT_DEBOUNCE_AFTER", "soon"),
        ("PILOT_ENABLE_EDS_DEBOUNCE", "maybe"),
        ("PILOT_PUSH_THROTTLE", "-1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_env({name: value})


def test_jwks_resolver_knobs() -> None:
    defaults = from_env({})
    assert defaults.jwt_pub_key_refresh_interval == 20 * 60.0
    assert not defaults.jwks_resolver_insecure_skip_verify
    assert defaults.blocked_cidrs_in_jwks_uris == ()
    features = from_env(
        {
            "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL": "5m",
            "JWKS_RESOLVER_INSECURE_SKIP_VERIFY": "true",
            "BLOCKED_CIDRS_IN_JWKS_URIS": "10.0.0.0/8, 192.168.1.7/24,,fd00::/8",
        }
    )
    assert features.jwt_pub_key_refresh_interval == 300.0
    assert features.jwks_resolver_insecure_skip_verify
    assert features.blocked_cidrs_in_jwks_uris == ("10.0.0.0/8", "192.168.1.0/24", "fd00::/8")
    with pytest.raises(ConfigError, match="BLOCKED_CIDRS_IN_JWKS_URIS"):
        from_env({"BLOCKED_CIDRS_IN_JWKS_URIS": "10.0.0.0/33"})
    with pytest.raises(ConfigError, match="PILOT_JWT_PUB_KEY_REFRESH_INTERVAL"):
        from_env({"PILOT_JWT_PUB_KEY_REFRESH_INTERVAL": "0s"})


def test_multiroot_mesh() -> None:
    assert from_env({}).multi_root_mesh is False
    assert from_env({"ISTIO_MULTIROOT_MESH": "true"}).multi_root_mesh is True
    with pytest.raises(ConfigError, match="ISTIO_MULTIROOT_MESH"):
        from_env({"ISTIO_MULTIROOT_MESH": "maybe"})


def test_xds_send_timeout() -> None:
    """PILOT_XDS_SEND_TIMEOUT (Istio's name; our default 30s, 0 = never)."""
    assert from_env({}).xds_send_timeout == 30.0
    assert from_env({"PILOT_XDS_SEND_TIMEOUT": "5s"}).xds_send_timeout == 5.0
    assert from_env({"PILOT_XDS_SEND_TIMEOUT": "0"}).xds_send_timeout == 0.0
    with pytest.raises(ConfigError, match="PILOT_XDS_SEND_TIMEOUT"):
        from_env({"PILOT_XDS_SEND_TIMEOUT": "soon"})


def test_leader_election_lease_duration() -> None:
    assert from_env({}).leader_election_lease_duration == 30.0
    assert from_env({"LEADER_ELECTION_LEASE_DURATION": "4s"}).leader_election_lease_duration == 4
    with pytest.raises(ConfigError, match="LEADER_ELECTION_LEASE_DURATION"):
        from_env({"LEADER_ELECTION_LEASE_DURATION": "0s"})
