from __future__ import annotations

import pytest

from pkg.config.specs.networking import ClientTLSSettings_TLSmode, SimpleLB
from tests.pkg.config.support import assert_rejected, assert_valid, warnings_of

HEAD = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec:
"""


def dr(body: str) -> str:
    return HEAD + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


def test_full_valid_destination_rule() -> None:
    config = assert_valid(
        dr(
            """
host: reviews.default.svc.cluster.local
trafficPolicy:
  loadBalancer:
    simple: LEAST_REQUEST
    localityLbSetting: {distribute: [{from: us-west/*, to: {us-west/*: 80, us-east/*: 20}}]}
  connectionPool:
    tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s, interval: 75s}}
    http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10, h2UpgradePolicy: UPGRADE}
  outlierDetection:
    consecutive5xxErrors: 7
    interval: 5m
    baseEjectionTime: 15m
    maxEjectionPercent: 50
  tls: {mode: ISTIO_MUTUAL}
  portLevelSettings:
  - port: {number: 80}
    loadBalancer:
      consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 1024}}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy: {tls: {mode: SIMPLE, credentialName: cert, sni: reviews}}
- name: v2
  labels: {version: v2}
exportTo: ["*"]
"""
        )
    )
    policy = config.spec.traffic_policy
    assert policy.load_balancer.simple is SimpleLB.LEAST_REQUEST
    assert policy.outlier_detection.consecutive_5xx_errors == 7
    assert policy.tls.mode is ClientTLSSettings_TLSmode.ISTIO_MUTUAL
    assert [s.name for s in config.spec.subsets] == ["v1", "v2"]


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("subsets: [{name: v1}]", "spec.host", "Required value"),
        ("host: 'bad host'", "spec.host", "invalid"),
        ("host: a\nsubsets: [{labels: {a: b}}]", "spec.subsets[0].name", "Required value"),
        (
            "host: a\nsubsets: [{name: v1}, {name: v1}]",
            "spec.subsets[1].name",
            "duplicate subset names",
        ),
        ("host: a\nsubsets: [{name: V_1}]", "spec.subsets[0].name", "subset name is invalid"),
        (
            "host: a\nsubsets: [{name: v1, labels: {'a b': c}}]",
            "spec.subsets[0].labels",
            "invalid tag key",
        ),
        ("host: a\ntrafficPolicy: {}", "spec.trafficPolicy", "at least one field"),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: "
            "{useSourceIp: true}}}",
            "spec.trafficPolicy.loadBalancer",
            "only one of simple, consistentHash",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x, "
            "useSourceIp: true}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash",
            "only one of httpHeaderName",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: "
            "{tableSize: 1000}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
            "prime",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {path: /}}}}",
            "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name",
            "Required value",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {warmup: {duration: 10s, aggression: 0}}}",
            "spec.trafficPolicy.loadBalancer.warmup.aggression",
            "greater than 0",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: a, "
            "to: {b: 60}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
            "total locality weight 60 != 100",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us, "
            "to: us}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]",
            "different regions",
        ),
        (
            "host: a\ntrafficPolicy: {connectionPool: {}}",
            "spec.trafficPolicy.connectionPool",
            "at least one field",
        ),
        (
            "host: a\ntrafficPolicy: {connectionPool: {http: {maxRetries: -1}}}",
            "spec.trafficPolicy.connectionPool.http.maxRetries",
            "non-negative",
        ),
        (
            "host: a\ntrafficPolicy: {connectionPool: {http: {http2KeepAlive: {interval: 1s}}}}",
            "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout",
            "required",
        ),
        (
            "host: a\ntrafficPolicy: {connectionPool: {tcp: {connectTimeout: 10us}}}",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
            "greater than 1ms",
        ),
        (
            "host: a\ntrafficPolicy: {connectionPool: {tcp: {idleTimeout: 500us}}}",
            "spec.trafficPolicy.connectionPool.tcp.idleTimeout",
            "greater than 1ms",
        ),
        (
            "host: a\ntrafficPolicy: {connectionPool: {tcp: {idleTimeout: 1500us}}}",
            "spec.trafficPolicy.connectionPool.tcp.idleTimeout",
            "ms precision",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {warmup: {minimumPercent: 10}}}",
            "spec.trafficPolicy.loadBalancer.warmup.duration",
            "Required value",
        ),
        (
            "host: a\ntrafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "
            "'us/*', to: {'us/*': 100}}, {from: us/zone-a, to: {'us/*': 100}}]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
            "overlap with previous specified ones",
        ),
        (
            "host: a\ntrafficPolicy: {outlierDetection: {}, loadBalancer: {localityLbSetting: "
            "{failover: [{from: us, to: eu}], failoverPriority: "
            "[topology.kubernetes.io/region]}}}",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority",
            "can not simultaneously set 'failover'",
        ),
        (
            "host: a\ntrafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 3}}",
            "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
            "split external local origin errors",
        ),
        (
            "host: a\ntrafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
            "0..100",
        ),
        (
            "host: a\ntrafficPolicy: {outlierDetection: {outlierDetectionHttpErrorCodes: [99]}}",
            "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[0]",
            "greater than or equal to 100",
        ),
        (
            "host: a\ntrafficPolicy: {tls: {mode: MUTUAL}}",
            "spec.trafficPolicy.tls.clientCertificate",
            "client certificate required",
        ),
        (
            "host: a\ntrafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca}}",
            "spec.trafficPolicy.tls",
            "If credentialName is set",
        ),
        (
            "host: a\ntrafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, "
            "caCertificates: /ca}}",
            "spec.trafficPolicy.tls",
            "InsecureSkipVerify",
        ),
        (
            "host: a\ntrafficPolicy: {tunnel: {targetHost: 'bad host', targetPort: 80}}",
            "spec.trafficPolicy.tunnel.targetHost",
            "FQDN or IP",
        ),
        (
            "host: a\ntrafficPolicy: {tunnel: {targetHost: a.com}}",
            "spec.trafficPolicy.tunnel.targetPort",
            "Required value",
        ),
        (
            "host: a\ntrafficPolicy: {tunnel: {targetHost: a.com, targetPort: 80}, proxyProtocol: "
            "{}}",
            "spec.trafficPolicy",
            "must not be set together",
        ),
        (
            "host: a\ntrafficPolicy: {portLevelSettings: [{tls: {mode: SIMPLE}}]}",
            "spec.trafficPolicy.portLevelSettings[0].port",
            "valid port",
        ),
        (
            "host: a\ntrafficPolicy: {portLevelSettings: [{port: {number: 80}}]}",
            "spec.trafficPolicy.portLevelSettings[0]",
            "at least one field",
        ),
        (
            "host: a\ntrafficPolicy: {retryBudget: {percent: 120}}",
            "spec.trafficPolicy.retryBudget.percent",
            "less than or equal to 100",
        ),
        (
            "host: a\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: ['*']",
            "spec.exportTo",
            "workload selector cannot have exportTo beyond current namespace",
        ),
        ("host: a\nexportTo: ['.', default]", "spec.exportTo[1]", "duplicate entries"),
    ],
)
def test_destination_rule_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(dr(body), path, fragment)


def test_failover_without_outlier_detection_is_a_warning() -> None:
    body = (
        "host: a\ntrafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us, to: "
        "eu}]}}}"
    )
    assert warnings_of(dr(body)) == [
        (
            "spec.trafficPolicy.loadBalancer.localityLbSetting",
            "outlier detection policy must be provided for failover",
        )
    ]


def test_tcp_idle_timeout_zero_disables_it() -> None:
    # No CRD rule on tcp.idleTimeout: 0s is valid (Istio's webhook skips it), unlike the
    # other durations.
    config = assert_valid(dr("host: a\ntrafficPolicy: {connectionPool: {tcp: {idleTimeout: 0s}}}"))
    assert config.spec.traffic_policy.connection_pool.tcp.idle_timeout.total_nanoseconds() == 0
