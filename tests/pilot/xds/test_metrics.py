"""/metrics: Istio's xDS and push metrics, with Istio's names, types, labels and buckets, moved
by what really happens on ADS streams (a scripted client against an in-process server with
the metrics observer subscribed, as istiod's composition root does).

The registry is the process's, shared by every test in this interpreter: values are read as
deltas, and each test uses its own node id for the per-node reject series.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2

from pilot.model.proxy_view import ProxyView
from pilot.model.push_request import PushRequest
from pilot.xds import monitoring
from pilot.xds.debounce import DebounceSettings
from pilot.xds.generators import default_generators
from pilot.xds.metrics_observer import XdsMetrics
from pilot.xds.server import DiscoveryServer, XdsSettings
from pilot.xds.wire import BuiltResource
from pkg.monitoring import exposition
from pkg.version import VERSION
from pkg.xds import typeurls
from tests.helpers.ads import AdsClient, AdsEnv, node, parse_all
from tests.helpers.aio import eventually
from tests.helpers.metrics import Scrape

CDS, RDS = typeurls.CLUSTER, typeurls.ROUTE
ROUTE = "9080"

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
"""


POOL = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}
"""


def route(prefix: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - rewrite: {{uri: {prefix}}}
    route: [{{destination: {{host: reviews.default.svc.cluster.local}}}}]
"""


# Istio's metrics (istio-facts.md §7) → the type Istio exports them as.
ISTIO_TYPES = {
    "pilot_xds": "gauge",
    "pilot_xds_pushes": "counter",
    "pilot_xds_push_time": "histogram",
    "pilot_xds_send_time": "histogram",
    "pilot_xds_config_size_bytes": "histogram",
    "pilot_proxy_convergence_time": "histogram",
    "pilot_proxy_queue_time": "histogram",
    "pilot_debounce_time": "histogram",
    "pilot_pushcontext_init_seconds": "histogram",
    "pilot_push_triggers": "counter",
    "pilot_inbound_updates": "counter",
    "pilot_services": "gauge",
    "pilot_virt_services": "gauge",
    "pilot_total_xds_rejects": "counter",
    "pilot_xds_cds_reject": "gauge",
    "pilot_xds_eds_reject": "gauge",
    "pilot_xds_lds_reject": "gauge",
    "pilot_xds_rds_reject": "gauge",
    "pilot_xds_expired_nonce": "counter",
    "pilot_xds_write_timeout": "counter",
    "pilot_total_xds_internal_errors": "counter",
    "pilot_info": "gauge",
    "istio_build": "gauge",
}

SECONDS = ["0.01", "0.1", "0.5", "1.0", "3.0", "5.0", "10.0", "20.0", "30.0", "+Inf"]
SEND = ["0.01", "0.1", "1.0", "3.0", "5.0", "10.0", "20.0", "30.0", "+Inf"]
PROXY = ["0.1", "0.5", "1.0", "3.0", "5.0", "10.0", "20.0", "30.0", "+Inf"]
INIT = ["0.01", "0.1", "0.5", "1.0", "3.0", "5.0", "+Inf"]
BYTES = ["1.0", "10000.0", "1e+06", "4e+06", "1e+07", "4e+07", "+Inf"]
ISTIO_BUCKETS = {
    "pilot_xds_push_time": SECONDS,
    "pilot_debounce_time": SECONDS,
    "pilot_xds_send_time": SEND,
    "pilot_proxy_convergence_time": PROXY,
    "pilot_proxy_queue_time": PROXY,
    "pilot_pushcontext_init_seconds": INIT,
    "pilot_xds_config_size_bytes": BYTES,
}


def scrape() -> Scrape:
    return Scrape.parse(exposition().decode())


@pytest.fixture
async def ads() -> AsyncIterator[AdsEnv]:
    env = AdsEnv(parse_all(MESH + "---" + route("/v1")))
    env.server.events.subscribe(XdsMetrics())
    await env.start()
    try:
        yield env
    finally:
        await env.stop()


def proxy(name: str) -> Any:
    n = node(f"{name}.default", "127.0.9.7")
    n.metadata.update({"ISTIO_VERSION": "1.28.0-test"})
    return n


async def subscribe(client: AdsClient, name: str) -> Any:
    """CDS then RDS for the 9080 route, both ACKed; returns the RDS response."""
    await client.sotw(CDS, node_=proxy(name))
    cds = await client.recv()
    await client.sotw(CDS, version=cds.version_info, nonce=cds.nonce)
    await client.sotw(RDS, [ROUTE])
    rds = await client.recv()
    await client.sotw(RDS, [ROUTE], version=rds.version_info, nonce=rds.nonce)
    return rds


def test_metrics_have_istios_names_and_types_and_counters_no_total_suffix() -> None:
    monitoring.record_build_info()
    before = scrape()
    for name, kind in ISTIO_TYPES.items():
        assert name in before.families, f"{name} missing from /metrics"
        assert before.families[name].type == kind, name
    lines = [ln for ln in before.text.splitlines() if not ln.startswith("#")]
    sample_names = {ln.split("{")[0].split(" ")[0] for ln in lines}
    assert not [n for n in sample_names if n.endswith("_total")]
    # An unlabelled counter is one sample under its bare name.
    assert {"pilot_xds_write_timeout", "pilot_total_xds_internal_errors"} <= sample_names
    assert not [ln for ln in lines if "_created" in ln]
    assert before.value("pilot_info", version=VERSION) == 1
    assert before.value("istio_build", component="pilot", tag=VERSION) == 1


async def test_a_route_change_moves_push_metrics_with_istios_labels_and_buckets(
    ads: AdsEnv,
) -> None:
    client = AdsClient(ads.address)
    try:
        first = await subscribe(client, "metrics-push")
        await client.expect_nothing(0.1)
        before = scrape()
        assert before.value("pilot_xds", version="1.28.0-test") >= 1
        ads.apply(route("/v2"))
        pushed = await client.recv()
        assert pushed.type_url == RDS and pushed.version_info != first.version_info
        await client.sotw(RDS, [ROUTE], version=pushed.version_info, nonce=pushed.nonce)
        await eventually(
            lambda: (
                scrape().value("pilot_proxy_convergence_time_count")
                > before.value("pilot_proxy_convergence_time_count")
            ),
            message="convergence recorded",
        )
        after = scrape()
    finally:
        await client.close()

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("pilot_xds_pushes", type="rds") == 1
    assert moved("pilot_xds_pushes", type="cds") == 0  # a route change sends routes only
    assert moved("pilot_xds_push_time_count", type="rds") == 1
    # The size by full type URL; the push carried one RouteConfiguration of that size.
    assert moved("pilot_xds_config_size_bytes_count", type=RDS) == 1
    assert moved("pilot_xds_config_size_bytes_sum", type=RDS) == pushed.ByteSize()
    assert moved("pilot_proxy_convergence_time_count") == 1
    assert moved("pilot_proxy_queue_time_count") == 1
    assert moved("pilot_debounce_time_count") == 1
    assert moved("pilot_pushcontext_init_seconds_count") == 1
    assert moved("pilot_xds_send_time_count") == 1
    assert moved("pilot_push_triggers", type="config") == 1  # once per proxy pushed
    assert moved("pilot_inbound_updates", type="config") == 1
    assert after.value("pilot_services") == 1
    assert after.value("pilot_virt_services") == 1
    for name, bounds in ISTIO_BUCKETS.items():
        assert after.buckets(name) == bounds, name
    await eventually(
        lambda: (
            scrape().value("pilot_xds", version="1.28.0-test")
            == before.value("pilot_xds", version="1.28.0-test") - 1
        ),
        message="the closed stream no longer counted in pilot_xds",
    )


async def test_a_nack_moves_the_reject_counters_by_type_node_and_code(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    node_id = proxy("metrics-nack").id
    try:
        await subscribe(client, "metrics-nack")
        before = scrape()
        ads.apply(route("/v3"))
        pushed = await client.recv()
        await client.sotw(RDS, [ROUTE], nonce=pushed.nonce, error="route: invalid prefix")
        await eventually(
            lambda: (
                scrape().value("pilot_total_xds_rejects", type="rds")
                > before.value("pilot_total_xds_rejects", type="rds")
            ),
            message="reject counted",
        )
        after = scrape()
    finally:
        await client.close()
    assert (
        after.value("pilot_total_xds_rejects", type="rds")
        - before.value("pilot_total_xds_rejects", type="rds")
        == 1
    )
    # The gRPC code of the NACK (13) by Go's name, as Istio's `err` label.
    assert after.value("pilot_xds_rds_reject", node=node_id, err="Internal") == 1
    assert after.value("pilot_xds_cds_reject", node=node_id) == 0


async def test_a_request_with_an_old_nonce_is_counted_as_expired(ads: AdsEnv) -> None:
    client = AdsClient(ads.address)
    try:
        first = await subscribe(client, "metrics-nonce")
        ads.apply(route("/v4"))
        pushed = await client.recv()
        before = scrape()
        # An ACK of the response before the push: its nonce is no longer the latest.
        await client.sotw(RDS, [ROUTE], version=first.version_info, nonce=first.nonce)
        await eventually(
            lambda: (
                scrape().value("pilot_xds_expired_nonce", type="rds")
                > before.value("pilot_xds_expired_nonce", type="rds")
            ),
            message="expired nonce counted",
        )
        await client.sotw(RDS, [ROUTE], version=pushed.version_info, nonce=pushed.nonce)
        await client.expect_nothing(0.1)
    finally:
        await client.close()


class _Failing:
    type_url = CDS

    def needs_push(self, req: PushRequest) -> bool:
        return True

    def generate(self, view: ProxyView, names: frozenset[str] | None) -> Sequence[BuiltResource]:
        raise RuntimeError("generator bug")


async def test_a_failing_generator_is_an_internal_error(ads: AdsEnv) -> None:
    ads.server.generators = {**default_generators(), CDS: _Failing()}
    before = scrape().value("pilot_total_xds_internal_errors")
    client = AdsClient(ads.address)
    try:
        await client.sotw(CDS, node_=proxy("metrics-broken"))
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await client.recv()
        assert failed.value.code() is grpc.StatusCode.UNKNOWN
    finally:
        await client.close()
    assert scrape().value("pilot_total_xds_internal_errors") == before + 1


class _Stream:
    """The server side of one ADS stream, driven by the test: the first write (the initial
    response) succeeds; later ones never finish (`stuck`: a proxy that stopped reading) or fail
    while the stream is still open (`broken`)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.written: asyncio.Queue[bytes] = asyncio.Queue()
        self.writes = 0

    async def iterate(self) -> AsyncIterator[Any]:
        while True:
            yield await self.requests.get()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:15000"

    def done(self) -> bool:
        return False

    async def write(self, payload: bytes) -> None:
        self.writes += 1
        if self.writes > 1 and self.mode == "stuck":
            await asyncio.Event().wait()  # never returns
        if self.writes > 1 and self.mode == "broken":
            raise RuntimeError("transport broke")
        self.written.put_nowait(payload)


async def test_a_stuck_proxy_counts_a_write_timeout_and_a_failed_write_a_send_error() -> None:
    env = AdsEnv(parse_all(MESH))
    env.server = DiscoveryServer(
        env.env,
        XdsSettings(debounce=DebounceSettings(0.01, 1), push_send_timeout=0.2),
    )
    env.server.initialize()
    await env.server.start()
    env.env.set_push_handler(env.server.config_update)
    before = scrape()
    streams = [_Stream("stuck"), _Stream("broken")]
    tasks = [
        asyncio.ensure_future(env.server._stream(s.iterate(), s, False, None))  # type: ignore[arg-type]
        for s in streams
    ]
    try:
        for i, s in enumerate(streams):
            request = discovery_pb2.DiscoveryRequest(type_url=CDS)
            request.node.CopyFrom(proxy(f"metrics-stream{i}"))
            s.requests.put_nowait(request)
            first = discovery_pb2.DiscoveryResponse.FromString(await s.written.get())
            ack = discovery_pb2.DiscoveryRequest(
                type_url=CDS, version_info=first.version_info, response_nonce=first.nonce
            )
            s.requests.put_nowait(ack)
        env.apply(POOL)  # a cluster change: CDS is pushed to both
        await eventually(
            lambda: (
                scrape().value("pilot_xds_write_timeout") > before.value("pilot_xds_write_timeout")
            ),
            message="write timeout counted",
        )
        after = scrape()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await env.server.stop()
    assert after.value("pilot_xds_write_timeout") - before.value("pilot_xds_write_timeout") == 1
    senderr = after.value("pilot_xds_pushes", type="cds_senderr") - before.value(
        "pilot_xds_pushes", type="cds_senderr"
    )
    assert senderr == 1
