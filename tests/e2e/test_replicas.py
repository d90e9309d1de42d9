"""Replicas: two istiods on one (fake) Kubernetes API server, Envoys whose bootstrap lists both.

Each replica is a real `istiod --kubeconfig` with its own POD_NAME (its replica name), its own
loopback address and state dir; both watch the same API server, which is the only state they
share. Every Envoy's `xds-grpc` cluster lists both replicas (`istioctl bootstrap --istiod
A,B`), as Envoy reaches istiod's Service in Kubernetes. Envoy picks one at random; to place
proxies deterministically each replica is reached through a `Gate` (tests/e2e/gate.py, one
Service endpoint) that the test closes for new connections while an Envoy starts.

Proven with real Envoy and traffic through it:
- each replica's /debug/syncz names itself (`istiod`) for exactly the proxies it holds, and
  `istioctl proxy-status --istiod A --istiod B` lists both proxies with that ISTIOD column;
- a VirtualService patched through the API server changes the traffic of the proxies of
  BOTH replicas;
- a replica SIGKILLed, and later the other one SIGTERMed: each time its Envoys move to the
  survivor with zero failed requests in a bounded request loop, and nothing is resent: the
  survivor's syncz shows the moved proxy SYNCED with no response ever sent on its stream,
  the survivor's pilot_xds_pushes did not move, and Envoy's own xDS counters show no
  response received (Delta proxies present `initial_resource_versions`, SotW proxies their
  `version_info`; the versions are content hashes, equal on every replica);
- afterwards a change through the API still reaches the moved proxies.

The replicas run the Kubernetes CA: exactly one of them created `istio-ca-secret` (under the
Lease) and both serve its root. The bootstraps here are plaintext (`--insecure`) so that
"nothing resent" is exact: a secure proxy that moves gets one SDS `default` push (workload
certificates are per replica, see docs/kubernetes.md). Tokens and certificates across
replicas are proven in tests/e2e/test_kube_security.py.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from istioctl import cli
from istioctl.bootstrap import BootstrapOptions, XdsApi
from pkg.kube.client import KubeClient
from tests.helpers.kube.fake_apiserver import FakeApiServer
from tests.helpers.metrics import Scrape

from .backend import Backend
from .envoy import EnvoyProcess
from .gate import Gate
from .istiod import DEFAULT_BIND, IstiodProcess
from .mesh import (
    SERVICE_PORT,
    Bookinfo,
    join_docs,
    proxy_key,
    received_updates,
    summarize_counters,
    syncz_entry,
    update_counters,
    wait_for_backend,
)
from .net import allocate_ip, split_host_port, wait_until
from .traffic import LoadGenerator, request

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
WATCHED = (CDS, EDS, LDS, RDS)
MOVE_TIMEOUT = 15.0
SECTIONS = ("Clusters", "Listeners", "Routes")


@dataclass
class Replica:
    name: str  # POD_NAME: what syncz and proxy-status call it
    istiod: IstiodProcess
    gate: Gate  # its endpoint of "the Service": Envoys dial this

    @property
    def xds(self) -> str:
        return self.gate.listen


def start_replicas(workdir: Path, kubeconfig: Path, names: Sequence[str]) -> list[Replica]:
    """istiod replicas in Kubernetes mode, started side by side, each on its own loopback IP
    (every server, the webhook server too, on an ephemeral port of it)."""
    procs = []
    for name in names:
        ip = allocate_ip()
        procs.append(
            IstiodProcess(
                workdir / name,
                bind={server: f"{ip}:0" for server in (*DEFAULT_BIND, "webhook")},
                extra_args=["--kubeconfig", str(kubeconfig)],
                env={"POD_NAME": name},
            )
        )
    with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
        futures = [pool.submit(proc.start) for proc in procs]
    replicas: list[Replica] = []
    try:
        for future in futures:
            future.result()
        for name, proc in zip(names, procs, strict=True):
            replicas.append(Replica(name, proc, Gate(f"{allocate_ip()}:0", proc.grpc_addr).open()))
    except BaseException:
        # Never leave a started replica behind (it would hold its ports).
        for replica in replicas:
            replica.gate.shutdown()
        for proc in procs:
            proc.kill()
        raise
    return replicas


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer().start()
    yield server
    server.close()


@pytest.fixture
def replicas(tmp_path: Path, api: FakeApiServer) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        started = start_replicas(tmp_path, kubeconfig, ("istiod-a", "istiod-b"))
        yield started
    finally:
        for replica in started:
            replica.gate.shutdown()
            replica.istiod.stop()


# -- the API server ----------------------------------------------------------------------------


def apply(kube: KubeClient, text: str) -> None:
    """Create each Istio object of `text` through the API server."""
    for obj in yaml.safe_load_all(text):
        if not obj:
            continue
        group, version = obj["apiVersion"].split("/")
        plural = {"ServiceEntry": "serviceentries"}.get(obj["kind"], obj["kind"].lower() + "s")
        kube.custom().create_namespaced_custom_object(
            group, version, obj["metadata"]["namespace"], plural, obj
        )


def route_reviews_to(kube: KubeClient, subset: str) -> None:
    spec = {"http": [{"route": [{"destination": {"host": "reviews", "subset": subset}}]}]}
    kube.custom().patch_namespaced_custom_object(
        "networking.istio.io", "v1", "default", "virtualservices", "reviews", {"spec": spec}
    )


# -- where proxies are ---------------------------------------------------------------------


def held(replica: Replica, proxy: str) -> dict[str, Any] | None:
    """The proxy's syncz entry on `replica`, once its stream there watches CDS, EDS, LDS and
    RDS and each is SYNCED."""
    entry = syncz_entry(replica.istiod, proxy)
    if entry is None:
        return None
    resources = entry.get("resources", {})
    if any(resources.get(t, {}).get("status") != "SYNCED" for t in WATCHED):
        return None
    return entry


def place(
    replica: Replica,
    replicas: Sequence[Replica],
    envoy_factory: Callable[..., EnvoyProcess],
    name: str,
    xds_api: XdsApi,
) -> tuple[EnvoyProcess, BootstrapOptions]:
    """An Envoy whose bootstrap lists every replica, started while only `replica` takes new
    connections (the others' gates are closed, their established streams untouched)."""
    ip = allocate_ip()
    opts = BootstrapOptions(
        name=name,
        namespace="default",
        ip=ip,
        labels={"app": name.rsplit("-", 1)[0]},
        interception_mode="NONE",
        insecure=True,
        istiod=",".join(r.xds for r in replicas),
        xds_api=xds_api,
    )
    others = [r for r in replicas if r is not replica]
    for other in others:
        other.gate.close()
    try:
        envoy = envoy_factory(options=opts, live_timeout=15.0)
        proxy = proxy_key(opts)
        wait_until(lambda: held(replica, proxy), 10.0, 0.05, f"{proxy} on {replica.name}")
    finally:
        for other in others:
            other.gate.open()
    return envoy, opts


def xds_pushes(replica: Replica) -> float:
    host, port = split_host_port(replica.istiod.address("monitoring"))
    scrape = Scrape.parse(request(host, port, "GET", "/metrics").body.decode())
    return scrape.value("pilot_xds_pushes")


def istioctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def move_under_load(
    stop: Callable[[], int | None],
    survivor: Replica,
    proxies: Sequence[tuple[EnvoyProcess, BootstrapOptions]],
    expected_backend: str,
) -> int | None:
    """Stop a replica (`stop`) while every proxy carries traffic; each must come to
    `survivor` with no failed request and with nothing sent to it. Returns stop()'s code."""
    before = {proxy_key(o): update_counters(e) for e, o in proxies}
    pushes = xds_pushes(survivor)
    loads = [
        LoadGenerator(o.ip, SERVICE_PORT, rate=50, duration=20.0, host="reviews")
        for _, o in proxies
    ]
    with contextlib.ExitStack() as stack:
        for load in loads:
            stack.enter_context(load)
        wait_until(lambda: all(len(x.samples) >= 10 for x in loads), 5.0, 0.02, "load running")
        code = stop()
        for _, opts in proxies:
            wait_until(
                functools.partial(held, survivor, proxy_key(opts)),
                MOVE_TIMEOUT,
                0.05,
                f"{proxy_key(opts)} on {survivor.name}",
            )
        seen = [len(x.samples) for x in loads]
        wait_until(
            lambda: all(len(x.samples) >= n + 10 for x, n in zip(loads, seen, strict=True)),
            5.0,
            0.02,
            "load after the move",
        )
    for load in loads:
        assert len(load.samples) >= 20, load.summary()
        assert not load.failures(), load.summary()
        assert set(load.backends()) == {expected_backend}, load.backends()

    for envoy, opts in proxies:
        proxy = proxy_key(opts)
        entry = held(survivor, proxy)
        assert entry is not None and entry["istiod"] == survivor.name, entry
        # Nothing sent on the new stream (no nonce for any type), yet SYNCED: the proxy
        # presented exactly the versions the survivor would send.
        sent = {t: r.get("sent", "") for t, r in entry["resources"].items()}
        assert not any(sent.values()), f"{survivor.name} sent {proxy} responses: {entry}"
        # Envoy's side: its stream failed once, and it received nothing since.
        counters = update_counters(envoy)
        assert (
            summarize_counters(counters)["cds.update_failure"]
            > (summarize_counters(before[proxy])["cds.update_failure"])
        ), f"{proxy} never saw its xDS stream fail: {summarize_counters(counters)}"
        assert received_updates(counters) == received_updates(before[proxy]), (
            f"{proxy} was sent config by {survivor.name}: {summarize_counters(before[proxy])}"
            f" → {summarize_counters(counters)}"
        )
        assert envoy.stat("control_plane.connected_state") == 1
    assert xds_pushes(survivor) == pushes, f"{survivor.name} pushed to a moved proxy"
    return code


def test_replicas_share_proxies_and_take_over(
    replicas: list[Replica],
    api: FakeApiServer,
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    a, b = replicas
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2"))
    kube = api.client()
    try:
        apply(
            kube,
            join_docs(
                app.service_entry("reviews"),
                app.subsets("reviews", ("v1", "v2")),
                app.weighted_vs("reviews", {"v1": 100, "v2": 0}),
            ),
        )
        # One root for both: created once, by one replica, through the API server.
        with api.store.changed:
            events = api.store.events_after(0)
        creates = [
            e for e in events
            if e.type == "ADDED" and e.new["metadata"]["name"] == "istio-ca-secret"
        ]  # fmt: skip
        assert len(creates) == 1, creates
        assert a.istiod.get("/v1/root-cert").body == b.istiod.get("/v1/root-cert").body

        # One proxy on each replica, over each ADS flavour.
        on_a = place(a, replicas, envoy_factory, "productpage-v1", "delta")
        on_b = place(b, replicas, envoy_factory, "ratings-v1", "sotw")
        proxies = (on_a, on_b)
        for _, opts in proxies:
            wait_for_backend(opts.ip, SERVICE_PORT, "reviews-v1", host="reviews")

        # Each replica's syncz names itself, for exactly the proxy it holds.
        for replica, (_, opts) in ((a, on_a), (b, on_b)):
            entries = replica.istiod.get_json("/debug/syncz")
            assert [(e["proxy"], e["istiod"]) for e in entries] == [
                (proxy_key(opts), replica.name)
            ], entries
        # proxy-status across both replicas: both proxies, each with the replica holding it.
        code, out, err = istioctl(
            "proxy-status", "--istiod", a.istiod.http_url, "--istiod", b.istiod.http_url
        )
        assert code == 0, err
        header, *rows = [line.split() for line in out.splitlines()]
        assert header == [
            "NAME",
            "CLUSTER",
            "CDS",
            "LDS",
            "EDS",
            "RDS",
            "ECDS",
            "ISTIOD",
            "VERSION",
        ]
        istiod_column = {row[0]: row[-2] for row in rows}
        assert istiod_column == {
            proxy_key(on_a[1]): "istiod-a",
            proxy_key(on_b[1]): "istiod-b",
        }, out
        assert all(row.count("SYNCED") == 4 for row in rows), out
        # The same over ADS (istio.io/debug/syncz: the replica is the control plane identifier).
        addresses = f"{a.istiod.grpc_addr},{b.istiod.grpc_addr}"
        code, out, err = istioctl("proxy-status", "--xds-address", addresses)
        assert code == 0, err
        assert {row[0]: row[-2] for row in (line.split() for line in out.splitlines()[1:])} == (
            istiod_column
        ), out
        # One proxy is compared against the replica that holds it.
        envoy_b, opts_b = on_b
        code, out, err = istioctl(
            "proxy-status",
            proxy_key(opts_b),
            "--admin",
            envoy_b.admin_url,
            "--istiod",
            f"{a.istiod.http_url},{b.istiod.http_url}",
        )
        assert code == 0, err
        verdicts = [line for line in out.splitlines() if line.split(" ")[0] in SECTIONS]
        assert [v.split(" ")[:2] for v in verdicts] == [[s, "Match"] for s in SECTIONS], out

        # A change through the API server reaches the proxies of both replicas.
        route_reviews_to(kube, "v2")
        for _, opts in proxies:
            wait_for_backend(opts.ip, SERVICE_PORT, "reviews-v2", host="reviews")

        # SIGKILL replica A: its (Delta) proxy moves to B.
        assert move_under_load(a.istiod.kill, b, [on_a], "reviews-v2") == -9

        # A comes back (a new process on the same addresses); SIGTERM B: both proxies (Delta
        # and SotW) move to A.
        a.istiod.restart()
        assert move_under_load(b.istiod.stop, a, proxies, "reviews-v2") == 0
        entries = a.istiod.get_json("/debug/syncz")
        assert sorted(e["proxy"] for e in entries) == sorted(proxy_key(o) for _, o in proxies)
        assert {e["istiod"] for e in entries} == {"istiod-a"}

        # The moved streams are live: a change still reaches every proxy.
        route_reviews_to(kube, "v1")
        for _, opts in proxies:
            wait_for_backend(opts.ip, SERVICE_PORT, "reviews-v1", host="reviews")
    finally:
        kube.close()
