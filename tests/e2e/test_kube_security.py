"""Security on Kubernetes, end to end: two real istiods (`--kubeconfig`) on one fake API server.

Both replicas start at the same moment. Exactly one wins the `istio-ca-leader` Lease and
creates `istio-ca-secret`; the other waits for it; both then issue certificates chaining to
that one root. Proxies authenticate with Kubernetes service-account tokens the API server
knows (TokenReview, audience istio-ca): a real Envoy with one gets its workload certificate
and config over the secure port, a token for another audience or none the API server knows
is refused. The leader publishes the root as ConfigMap `istio-ca-root-cert` in every namespace
(also one created later) and puts it back when it is deleted or edited. A gateway Envoy serves
HTTPS with a `kubernetes.io/tls` Secret of its own namespace created through the API (a
same-name Secret elsewhere is not used) and picks up an update of it without a restart.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest
from cryptography import x509

from istioctl.bootstrap import BootstrapOptions, SecureMaterial
from pkg.kube.client import KubeClient
from security.server.ca_service import IstioCertificateResponse
from tests.helpers.kube.fake_apiserver import FakeApiServer

from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import gateway_options
from .net import allocate_ip, wait_until
from .security_helpers import fetch_material, secret_certificate, uri_sans
from .test_gateway_tls import https_request, make_certificates
from .token_attacks import ads_outcome, create_certificate, secure_channel

NS = "istio-system"
AUDIENCES = ("istio-ca",)
GATEWAY_SA = "istio-ingressgateway-service-account"
HOST = "secure.example.com"
HTTPS_PORT = 8443
REPLICAS = ("istiod-a", "istiod-b")


class KubeIstiod(IstiodProcess):
    """istiod in Kubernetes mode: --kubeconfig instead of --config-dir."""

    def argv(self) -> list[str]:
        args, out = super().argv(), []
        while args:
            arg = args.pop(0)
            if arg == "--config-dir":
                args.pop(0)
            else:
                out.append(arg)
        return out


@dataclass
class Cluster:
    api: FakeApiServer
    kube: KubeClient
    istiods: dict[str, IstiodProcess]

    def root_pem(self) -> bytes:
        secret = self.kube.core().read_namespaced_secret("istio-ca-secret", NS)
        return base64.b64decode(secret.data["root-cert.pem"])

    def token(self, namespace: str, account: str, audiences: tuple[str, ...] = AUDIENCES) -> str:
        token = f"kube-sa-token-{namespace}-{account}-{'-'.join(audiences)}"
        self.api.register_token(token, namespace, account, audiences)
        return token

    def created(self, plural: str, name: str) -> list[str]:
        """Namespaces where the fake server saw `name` created (ADDED), in order."""
        store = self.api.store
        with store.changed:
            events = store.events_after(0)
        return [
            e.new["metadata"].get("namespace", "")
            for e in events
            if e.resource.plural == plural
            and e.type == "ADDED"
            and e.new["metadata"]["name"] == name
        ]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("kube-security")
    with FakeApiServer() as api:
        kubeconfig = api.write_kubeconfig(tmp / "kubeconfig")
        istiods = {
            name: KubeIstiod(
                tmp / name,
                extra_args=["--kubeconfig", str(kubeconfig)],
                env={"POD_NAME": name, "POD_NAMESPACE": NS, "LEADER_ELECTION_LEASE_DURATION": "4s"},
                required=("grpc", "secure-grpc", "http"),
            )
            for name in REPLICAS
        }
        errors: list[BaseException] = []

        def start(istiod: IstiodProcess) -> None:
            try:
                istiod.start(timeout=40)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=start, args=(i,)) for i in istiods.values()]
        for t in threads:  # both at the same moment: they race for the Lease
            t.start()
        for t in threads:
            t.join(60)
        kube = api.client()
        try:
            if errors:
                raise errors[0]
            yield Cluster(api, kube, istiods)
        finally:
            kube.close()
            codes = [i.stop() for i in istiods.values()]
            assert codes == [0, 0], codes


def _issued_chain(istiod: IstiodProcess, root: bytes, token: str) -> list[x509.Certificate]:
    with secure_channel(istiod.secure_grpc_addr, root) as channel:
        outcome = create_certificate(channel, token)
    assert outcome.code == grpc.StatusCode.OK, (istiod, outcome)
    response = IstioCertificateResponse.FromString(outcome.response)
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in response.cert_chain]


def test_one_replica_creates_the_root_and_both_sign_with_it(cluster: Cluster) -> None:
    # Exactly one create of istio-ca-secret (and of the shared token key), by the Lease holder.
    assert cluster.created("secrets", "istio-ca-secret") == [NS]
    assert cluster.created("secrets", "istiod-token-key") == [NS]
    lease = cluster.kube.coordination().read_namespaced_lease("istio-ca-leader", NS)
    assert lease.spec.holder_identity in REPLICAS
    secret = cluster.kube.core().read_namespaced_secret("istio-ca-secret", NS)
    assert secret.type == "istio.io/ca-root"
    assert set(secret.data) >= {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}
    root_pem = cluster.root_pem()
    root = x509.load_pem_x509_certificate(root_pem)

    token = cluster.token("default", "sleep")
    for istiod in cluster.istiods.values():
        assert istiod.get("/ready").status == 200
        assert istiod.get("/v1/root-cert").body == root_pem
        leaf, *_, last = _issued_chain(istiod, root_pem, token)
        assert last == root
        leaf.verify_directly_issued_by(root)
        assert uri_sans(leaf) == ["spiffe://cluster.local/ns/default/sa/sleep"]
    # istiod's own keys never become config (/debug/configz shows no istio.io/ca-root Secret).
    configz = cluster.istiods[REPLICAS[0]].get_json("/debug/configz")
    assert not [o for o in configz if o.get("type") == "istio.io/ca-root"]


def test_tokens_issued_by_one_replica_are_accepted_by_the_other(cluster: Cluster) -> None:
    a, b = (cluster.istiods[n] for n in REPLICAS)
    root = cluster.root_pem()
    material = fetch_material(a, "default", "from-a")  # POST /v1/token on replica a
    leaf = _issued_chain(b, root, material.token)[0]
    assert uri_sans(leaf) == ["spiffe://cluster.local/ns/default/sa/from-a"]


def test_envoy_with_a_service_account_token(
    cluster: Cluster, envoy_factory: Callable[..., EnvoyProcess]
) -> None:
    istiod = cluster.istiods[REPLICAS[1]]
    root = cluster.root_pem()
    # An mTLS-capable destination, so the sidecar's outbound cluster asks for `default`.
    _create(cluster.kube, "serviceentries", {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": "mtls-target", "namespace": "default"},
        "spec": {"hosts": ["mtls-target.default.svc.cluster.local"], "location": "MESH_INTERNAL",
                 "resolution": "STATIC", "ports": [{"number": 8000, "name": "http",
                                                    "protocol": "HTTP"}],
                 "endpoints": [{"address": allocate_ip(), "serviceAccount": "target"}]},
    })  # fmt: skip
    ip = allocate_ip()
    opts = BootstrapOptions(
        name="sleep-1", namespace="default", proxy_type="sidecar", ip=ip,
        labels={"app": "sleep"}, service_account="sleep", interception_mode="NONE",
        insecure=False, istiod=istiod.secure_grpc_addr, xds_api="delta",
    )  # fmt: skip
    material = SecureMaterial(cluster.token("default", "sleep"), root.decode())
    envoy = envoy_factory(options=opts, secure=material, live_timeout=15.0)
    cert = wait_until(lambda: secret_certificate(envoy), 10.0, 0.05, "Envoy holds `default`")
    assert uri_sans(cert) == ["spiffe://cluster.local/ns/default/sa/sleep"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(root))
    assert envoy.config_dump(resource="dynamic_active_clusters").get("configs")

    # A token for another audience, and one the API server does not know: refused.
    with secure_channel(istiod.secure_grpc_addr, root) as channel:
        wrong_audience = cluster.token("default", "sleep", ("https://kubernetes.default.svc",))
        outcome = ads_outcome(channel, wrong_audience)
        assert outcome.code == grpc.StatusCode.UNAUTHENTICATED, outcome
        assert "kube-token: the service account authentication returns an error" in outcome.details
        assert "is invalid for the target audiences" in outcome.details
        unknown = ads_outcome(channel, "not-a-registered-token")
        assert unknown.code == grpc.StatusCode.UNAUTHENTICATED, unknown
        assert "token lookup failed" in unknown.details
        csr = create_certificate(channel, wrong_audience)
        assert csr.code == grpc.StatusCode.UNAUTHENTICATED, csr

    # A real Envoy with the wrong-audience token gets nothing.
    bad_opts = replace(opts, name="sleep-bad", ip=allocate_ip())
    bad = envoy_factory(
        options=bad_opts, secure=SecureMaterial(wrong_audience, root.decode()), wait_live=False
    )
    wait_until(
        lambda: "ADS: unauthenticated node:sidecar~" in istiod.log_path.read_text()
        and "sleep-bad.default" in istiod.log_path.read_text(),
        10.0, 0.05, "istiod refuses the wrong-audience Envoy",
    )  # fmt: skip
    assert secret_certificate(bad) is None


def _configmap_root(kube: KubeClient, namespace: str) -> str | None:
    try:
        cm = kube.core().read_namespaced_config_map("istio-ca-root-cert", namespace)
    except Exception:
        return None
    return (cm.data or {}).get("root-cert.pem")


def test_root_cert_configmap_in_every_namespace(cluster: Cluster) -> None:
    kube, root = cluster.kube, cluster.root_pem().decode()
    kube.core().create_namespace({"metadata": {"name": "late-ns"}})
    wait_until(lambda: _configmap_root(kube, "late-ns") == root, 10.0, 0.05,
               "istio-ca-root-cert in a new namespace")  # fmt: skip
    cm = kube.core().read_namespaced_config_map("istio-ca-root-cert", "late-ns")
    assert cm.metadata.labels == {"istio.io/config": "true"}

    kube.core().delete_namespaced_config_map("istio-ca-root-cert", "late-ns")
    wait_until(lambda: _configmap_root(kube, "late-ns") == root, 10.0, 0.05,
               "istio-ca-root-cert put back after deletion")  # fmt: skip
    kube.core().patch_namespaced_config_map(
        "istio-ca-root-cert", "late-ns", {"data": {"root-cert.pem": "tampered", "extra": "kept"}}
    )
    wait_until(lambda: _configmap_root(kube, "late-ns") == root, 10.0, 0.05,
               "istio-ca-root-cert restored after an edit")  # fmt: skip
    cm = kube.core().read_namespaced_config_map("istio-ca-root-cert", "late-ns")
    assert cm.data["extra"] == "kept"
    # Written by one replica only (the leader): one create per namespace.
    assert cluster.created("configmaps", "istio-ca-root-cert").count("late-ns") == 2


def _tls_secret(name: str, namespace: str, cert: bytes, key: bytes) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert).decode(),
            "tls.key": base64.b64encode(key).decode(),
        },
    }


def _create(kube: KubeClient, plural: str, obj: dict[str, Any]) -> None:
    group, version = obj["apiVersion"].split("/")
    ns = obj["metadata"]["namespace"]
    kube.custom().create_namespaced_custom_object(group, version, ns, plural, obj)


def test_gateway_credential_name_from_a_kubernetes_secret(
    cluster: Cluster, envoy_factory: Callable[..., EnvoyProcess]
) -> None:
    kube = cluster.kube
    ca1, cert1, key1 = make_certificates(HOST)
    ca_other, cert_other, key_other = make_certificates(HOST)
    kube.core().create_namespaced_secret(NS, _tls_secret("gw-cert", NS, cert1, key1))
    # The same name in another namespace: never served to the istio-system gateway.
    kube.core().create_namespaced_secret(
        "default", _tls_secret("gw-cert", "default", cert_other, key_other)
    )
    _create(kube, "gateways", {
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "secure-gw", "namespace": NS},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [{
            "port": {"number": HTTPS_PORT, "name": "https", "protocol": "HTTPS"},
            "hosts": [HOST], "tls": {"mode": "SIMPLE", "credentialName": "gw-cert"}}]},
    })  # fmt: skip
    _create(kube, "virtualservices", {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "secure", "namespace": NS},
        "spec": {"hosts": [HOST], "gateways": ["secure-gw"], "http": [
            {"directResponse": {"status": 200, "body": {"string": "hello"}}}]},
    })  # fmt: skip

    istiod = cluster.istiods[REPLICAS[0]]
    ip = allocate_ip()
    opts = replace(
        gateway_options(istiod, "istio-ingressgateway", ip, "delta", namespace=NS),
        insecure=False, istiod=istiod.secure_grpc_addr, service_account=GATEWAY_SA,
    )  # fmt: skip
    material = SecureMaterial(cluster.token(NS, GATEWAY_SA), cluster.root_pem().decode())
    gateway = envoy_factory(options=opts, secure=material, name="gateway", live_timeout=15.0)

    def served_by(ca: bytes) -> bool:
        try:
            resp = https_request(ip, HTTPS_PORT, HOST, ca)
        except OSError:
            return False
        return resp.status == 200 and resp.body == b"hello"

    wait_until(lambda: served_by(ca1), 10.0, 0.05, "HTTPS with istio-system/gw-cert")
    assert not served_by(ca_other)  # default/gw-cert is not what the gateway holds
    served = secret_certificate(gateway, "kubernetes://gw-cert")
    assert served == x509.load_pem_x509_certificate(cert1)

    # An update through the API is served without a restart (SDS push to the gateway).
    ca2, cert2, key2 = make_certificates(HOST)
    updated = _tls_secret("gw-cert", NS, cert2, key2)
    kube.core().replace_namespaced_secret("gw-cert", NS, updated)
    wait_until(lambda: served_by(ca2), 10.0, 0.05, "HTTPS with the updated gw-cert")
    assert not served_by(ca1)
