"""proxy-status's reading of istiod's answers and its table (no I/O)."""

from __future__ import annotations

import pytest

from istioctl.proxystatus.model import (
    ProxyStatus,
    TypeStatus,
    from_response,
    from_syncz,
    parse_time,
    to_response,
)
from istioctl.proxystatus.table import human_duration, render_errors, render_table
from pkg.xds import typeurls
from pkg.xds.sync_status import ConfigStatus

CDS, EDS, LDS, RDS, SDS = (
    typeurls.CLUSTER,
    typeurls.ENDPOINT,
    typeurls.LISTENER,
    typeurls.ROUTE,
    typeurls.SECRET,
)
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-0.5, "0s"),
        (0, "0s"),
        (119, "119s"),
        (302, "5m2s"),
        (300, "5m"),
        (600, "10m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (8 * 3600, "8h"),
        (50 * 3600, "2d2h"),
        (48 * 3600, "2d"),
        (10 * 86400, "10d"),
        (3 * 365 * 86400 + 5 * 86400, "3y5d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_is_kubernetes(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def proxy(name: str, **types: TypeStatus) -> ProxyStatus:
    return ProxyStatus(
        name=name,
        namespace=name.rsplit(".", 1)[1],
        cluster="Kubernetes",
        istiod="istiod-1",
        version="1.28.0-pyistio",
        types={t.type_url: t for t in types.values()},
    )


def test_table_has_istio_columns_cells_and_nack_lines() -> None:
    good = proxy(
        "a.default",
        cds=TypeStatus(CDS, ConfigStatus.SYNCED, NOW - 302),
        lds=TypeStatus(LDS, ConfigStatus.SYNCED, NOW - 10),
        eds=TypeStatus(EDS, ConfigStatus.STALE, NOW - 1),
        rds=TypeStatus(RDS, ConfigStatus.NOT_SENT),
    )
    bad = proxy(
        "b.other",
        cds=TypeStatus(CDS, ConfigStatus.SYNCED, NOW - 60),
        rds=TypeStatus(RDS, ConfigStatus.ERROR, NOW - 3, "regex 'x{9}' too big\nsecond line"),
        sds=TypeStatus(SDS, ConfigStatus.SYNCED, NOW - 60),
    )
    assert render_table([bad, good], NOW) == (
        "NAME          CLUSTER        CDS               LDS              EDS            "
        "RDS            ECDS        ISTIOD       VERSION\n"
        "a.default     Kubernetes     SYNCED (5m2s)     SYNCED (10s)     STALE (1s)     "
        "NOT SENT       IGNORED     istiod-1     1.28.0-pyistio\n"
        "b.other       Kubernetes     SYNCED (60s)      IGNORED          IGNORED        "
        "ERROR (3s)     IGNORED     istiod-1     1.28.0-pyistio\n"
    )
    assert render_errors([good, bad]) == (
        "ERROR b.other RDS: regex 'x{9}' too big\n    second line\n"
    )
    verbose = render_table([bad, good], NOW, verbose=True).splitlines()[0].split()
    # Istio 1.27's verbose table: every known or watched type, in type-URL order.
    assert verbose == ["NAME", "CLUSTER", "CDS", "ECDS", "EDS", "LDS", "RDS", "SDS", "ISTIOD",
                       "VERSION"]  # fmt: skip


def test_pyistio_syncz_statuses_are_read_as_given() -> None:
    entries = [
        {
            "proxy": "b.ns2",
            "cluster_id": "Kubernetes",
            "proxy_version": "1.28.0",
            "istiod": "istiod-7",
            "resources": {
                CDS: {
                    "sent": "",
                    "acked": "",
                    "status": "SYNCED",
                    "lastUpdated": "2027-01-15T08:00:00Z",
                },
                RDS: {
                    "sent": "n2",
                    "acked": "n1",
                    "status": "ERROR",
                    "lastError": "bad regex",
                    "sentTime": "2027-01-15T08:00:05Z",
                    "lastUpdated": "2027-01-15T08:00:05Z",
                },
            },
        },
        {"proxy": "sidecar~127.0.0.1~a.ns1~ns1.svc.cluster.local", "resources": {}},
    ]
    report = from_syncz(entries, "127.0.0.1:8080")
    assert [p.name for p in report.proxies] == ["a.ns1", "b.ns2"]
    a, b = report.proxies
    assert (a.namespace, a.istiod) == ("ns1", "127.0.0.1:8080")
    assert (b.istiod, b.version, b.namespace) == ("istiod-7", "1.28.0", "ns2")
    assert b.types[CDS].status is ConfigStatus.SYNCED  # reconnected in sync: nothing sent
    assert b.types[CDS].last_updated == parse_time("2027-01-15T08:00:00Z")
    assert (b.types[RDS].status, b.types[RDS].error) == (ConfigStatus.ERROR, "bad regex")
    assert [p.name for p in report.in_namespace("ns2").proxies] == ["b.ns2"]
    assert len(report.in_namespace("ns2").response.resources) == 1


def test_istio_syncz_statuses_are_derived_from_nonces() -> None:
    entries = [
        {
            "proxy": "a.default",
            "resources": {
                CDS: {"sent": "n1", "acked": "n1", "sentTime": "2027-01-15T08:00:00.123456789Z"},
                EDS: {"sent": "n2", "acked": "n1"},
                LDS: {"sent": "n3", "acked": "n3", "lastError": "rejected"},
                RDS: {},
            },
        },
        {"proxy": "old.default", "cluster_sent": "x", "cluster_acked": "x", "route_acked": ""},
    ]
    a, old = from_syncz(entries, "istiod").proxies
    statuses = {t: s.status for t, s in a.types.items()}
    assert statuses == {
        CDS: ConfigStatus.SYNCED,
        EDS: ConfigStatus.STALE,
        LDS: ConfigStatus.ERROR,
        RDS: ConfigStatus.NOT_SENT,
    }
    assert a.types[CDS].last_updated == pytest.approx(parse_time("2027-01-15T08:00:00.123456Z"))
    assert {t: s.status for t, s in old.types.items()} == {
        CDS: ConfigStatus.SYNCED,
        RDS: ConfigStatus.NOT_SENT,
    }


def test_client_configs_round_trip() -> None:
    original = proxy(
        "b.other",
        cds=TypeStatus(CDS, ConfigStatus.SYNCED, NOW - 60),
        rds=TypeStatus(RDS, ConfigStatus.ERROR, NOW - 3, "bad"),
        eds=TypeStatus(EDS, ConfigStatus.NOT_SENT),
    )
    report = from_response(to_response([original], "istiod-1"))
    assert report.proxies == (original,)


def test_a_response_without_control_plane_names_no_istiod() -> None:
    response = to_response([proxy("a.default")], "x")
    response.ClearField("control_plane")
    assert from_response(response).proxies[0].istiod == "MISSING"
    response.control_plane.identifier = "{not json"
    assert from_response(response).proxies[0].istiod == "INVALID"
