from __future__ import annotations

import pytest

from tests.pkg.config.support import assert_rejected, assert_valid, warnings_of

HEAD = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
"""


def vs(body: str) -> str:
    return HEAD + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


ROUTE = "- route: [{destination: {host: reviews}}]"


def test_full_valid_virtual_service() -> None:
    config = assert_valid(
        vs(
            """
hosts: [reviews.default.svc.cluster.local, "*.example.com"]
gateways: [mesh, istio-system/ingress]
http:
- name: jason
  match:
  - headers: {end-user: {exact: jason}, ":authority": {prefix: a}}
    uri: {prefix: ""}
    queryParams: {q: {regex: "^a[0-9]+$"}}
    withoutHeaders: {x-debug: {regex: "*"}}
    sourceLabels: {app: productpage}
    sourceNamespace: default
    port: 9080
  route:
  - destination: {host: reviews, subset: v2, port: {number: 9080}}
    weight: 80
    headers: {request: {set: {x-a: "%HOSTNAME%"}}, response: {remove: [x-b]}}
  - destination: {host: reviews, subset: v3}
    weight: 20
  timeout: 10s
  retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,gateway-error,503"}
  fault: {delay: {fixedDelay: 7s, percentage: {value: 0.5}}}
  corsPolicy: {allowOrigins: [{exact: "https://a.com"}], allowMethods: [GET], maxAge: 24h}
  mirror: {host: shadow}
  mirrorPercentage: {value: 10}
- route: [{destination: {host: reviews}}]
tcp:
- match: [{port: 3306, destinationSubnets: [10.0.0.0/8]}]
  route: [{destination: {host: mysql}}]
exportTo: [".", "bookinfo"]
"""
        )
    )
    assert config.spec.http[0].route[0].weight == 80


def test_redirect_and_direct_response_routes() -> None:
    assert_valid(
        vs(
            """
hosts: [a.com]
http:
- match: [{uri: {prefix: /old}}]
  redirect: {prefixRewrite: /new, redirectCode: 301, scheme: https, port: 8443}
- directResponse: {status: 404, body: {string: not here}}
"""
        )
    )


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("hosts: [reviews]", "spec", "http, tcp or tls must be provided"),
        (f"hosts: ['*']\nhttp:\n{ROUTE}", "spec.hosts[0]", "wildcard host * is not allowed"),
        (f"hosts: ['bad_host']\nhttp:\n{ROUTE}", "spec.hosts[0]", "invalid"),
        (f"hosts: ['*.a.com', 'b.a.com']\nhttp:\n{ROUTE}", "spec.hosts[1]", "duplicate hosts"),
        (f"hosts: [r]\ngateways: [a/b/c]\nhttp:\n{ROUTE}", "spec.gateways[0]", "gateway name"),
        (f"hosts: [r]\ngateways: [Bad_NS/gw]\nhttp:\n{ROUTE}", "spec.gateways[0]", "namespace"),
        (f"hosts: [r]\nexportTo: ['~']\nhttp:\n{ROUTE}", "spec.exportTo[0]", "not allowed"),
        (f"hosts: [r]\nexportTo: ['*', '.']\nhttp:\n{ROUTE}", "spec.exportTo", "both public"),
    ],
)
def test_virtual_service_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(vs(body), path, fragment)


def test_delegate_virtual_service_has_no_hosts() -> None:
    assert_valid(vs(f"http:\n{ROUTE}"))
    assert_rejected(vs("http:\n- delegate: {name: d}"), "spec.http[0].delegate", "cannot contain")


def test_delegate_virtual_service_cannot_have_gateways() -> None:
    assert_rejected(vs(f"gateways: [gw]\nhttp:\n{ROUTE}"), "spec.gateways", "delegate")


@pytest.mark.parametrize(
    ("route", "path", "fragment"),
    [
        (
            "- timeout: 1s",
            "spec.http[0].route",
            "HTTP route, redirect or direct_response is required",
        ),
        (
            "- route: [{destination: {host: a}}]\n  redirect: {uri: /x}",
            "spec.http[0].route",
            "both route and redirect",
        ),
        (
            "- directResponse: {status: 200}\n  fault: {abort: {httpStatus: 500}}",
            "spec.http[0].fault",
            "both fault and direct_response",
        ),
        ("- route: [{destination: {host: a}, weight: -1}]", "spec.http[0].route[0].weight", "< 0"),
        (
            "- route: [{destination: {host: a}, weight: 0}, {destination: {host: b}, weight: 0}]",
            "spec.http[0].route",
            "total destination weight = 0",
        ),
        (
            "- route: [{destination: {host: '*'}}]",
            "spec.http[0].route[0].destination.host",
            "invalid",
        ),
        (
            "- route: [{destination: {host: a, subset: v_1}}]",
            "spec.http[0].route[0].destination.subset",
            "subset name is invalid",
        ),
        (
            "- route: [{destination: {host: a, port: {number: 70000}}}]",
            "spec.http[0].route[0].destination.port.number",
            "1..65535",
        ),
        (
            "- match: [{uri: {regex: '(a'}}]\n  route: [{destination: {host: a}}]",
            "spec.http[0].match[0].uri",
            "missing )",
        ),
        (
            "- match: [{uri: {regex: 'a(?=b)'}}]\n  route: [{destination: {host: a}}]",
            "spec.http[0].match[0].uri",
            "RE2",
        ),
        (
            "- match: [{method: {prefix: ''}}]\n  route: [{destination: {host: a}}]",
            "spec.http[0].match[0].method",
            "prefix string match should not be empty",
        ),
        (
            "- match: [{headers: {'bad header': {exact: a}}}]\n  route: [{destination: {host: a}}]",
            "spec.http[0].match[0].headers[bad header]",
            "not a valid header name",
        ),
        (
            "- match: [{headers: {'@request.auth.claims.group': {exact: a}}}]\n"
            "  route: [{destination: {host: a}}]",
            "spec.http[0].match[0].headers[@request.auth.claims.group]",
            "only supported for gateway",
        ),
        (
            "- match: [{sourceNamespace: Bad_NS}]\n  route: [{destination: {host: a}}]",
            "spec.http[0].match[0].sourceNamespace",
            "invalid",
        ),
        (
            "- route: [{destination: {host: a}}]\n  retries: {attempts: 0, retryOn: 5xx}",
            "spec.http[0].retries.attempts",
            "attempts are set to 0",
        ),
        (
            "- route: [{destination: {host: a}}]\n  retries: {attempts: 2, retryOn: 'sometimes'}",
            "spec.http[0].retries.retryOn",
            "not a valid retryOn policy",
        ),
        (
            "- route: [{destination: {host: a}}]\n  fault: {}",
            "spec.http[0].fault",
            "must have an abort and/or a delay",
        ),
        (
            "- route: [{destination: {host: a}}]\n  fault: {abort: {httpStatus: 99}}",
            "spec.http[0].fault.abort.httpStatus",
            "not in range",
        ),
        (
            "- route: [{destination: {host: a}}]\n  fault: {abort: {grpcStatus: NOPE}}",
            "spec.http[0].fault.abort.grpcStatus",
            "not supported",
        ),
        (
            "- route: [{destination: {host: a}}]\n  fault: {delay: {fixedDelay: 1s, percentage: "
            "{value: 101}}}",
            "spec.http[0].fault.delay.percentage.value",
            "range",
        ),
        (
            "- route: [{destination: {host: a}}]\n  fault: {delay: {fixedDelay: 1s, "
            "exponentialDelay: 1s}}",
            "spec.http[0].fault.delay",
            "only one of fixedDelay, exponentialDelay",
        ),
        ("- redirect: {}", "spec.http[0].redirect", "must specify URI, authority, scheme, or port"),
        ("- redirect: {uri: /a, redirectCode: 200}", "spec.http[0].redirect.redirectCode", "3xx"),
        ("- redirect: {uri: /a, scheme: ftp}", "spec.http[0].redirect.scheme", "http"),
        ("- directResponse: {status: 700}", "spec.http[0].directResponse.status", "not in range"),
        ("- directResponse: {}", "spec.http[0].directResponse.status", "Required value"),
        (
            "- route: [{destination: {host: a}}]\n  rewrite: {uri: /a, uriRegexRewrite: {match: "
            "a, rewrite: b}}",
            "spec.http[0].rewrite",
            "only contain one of URI or UriRegexRewrite",
        ),
        (
            "- route: [{destination: {host: a}}]\n  rewrite: {uriRegexRewrite: {match: '(', "
            "rewrite: b}}",
            "spec.http[0].rewrite.uriRegexRewrite.match",
            "missing )",
        ),
        (
            "- route: [{destination: {host: a}}]\n  rewrite: {authority: b}\n"
            "  headers: {request: {set: {':authority': c}}}",
            "spec.http[0].headers.request.set[:authority]",
            "authority header cannot be set multiple times",
        ),
        (
            "- route: [{destination: {host: a}}]\n  headers: {response: {set: {host: b}}}",
            "spec.http[0].headers.response.set[host]",
            "cannot set Host header",
        ),
        (
            "- route: [{destination: {host: a}}]\n  headers: {request: {add: {x: '%BAD'}}}",
            "spec.http[0].headers.request.add[x]",
            "Un-terminated variable expression",
        ),
        (
            "- route: [{destination: {host: a}}]\n  corsPolicy: {allowMethods: [FETCH]}",
            "spec.http[0].corsPolicy.allowMethods[0]",
            "not a supported HTTP method",
        ),
        (
            "- route: [{destination: {host: a}}]\n  corsPolicy: {maxAge: 1500ms}",
            "spec.http[0].corsPolicy.maxAge",
            "seconds precision",
        ),
        (
            "- route: [{destination: {host: a}}]\n  mirror: {host: b}\n  mirrors: [{destination: "
            "{host: c}}]",
            "spec.http[0].mirrors",
            "both mirror and mirrors",
        ),
        (
            "- route: [{destination: {host: a}}]\n  mirrorPercentage: {value: 120}",
            "spec.http[0].mirrorPercentage.value",
            "0..100",
        ),
        ("- route: [{destination: {host: a}}]\n  timeout: 0.5ms", "spec.http[0].timeout", "1ms"),
        (
            "- route: [{destination: {host: a}}]\n  delegate: {name: d}",
            "spec.http[0].route",
            "root HTTP route",
        ),
        (
            "- route: [{destination: {host: a}}]\n  mirrors: [{destination: {host: b}, "
            "percentage: {value: 101}}]",
            "spec.http[0].mirrors[0].percentage.value",
            "0..100",
        ),
        (
            "- route: [{destination: {host: a}}]\n  mirrors: [{destination: {host: '*'}}]",
            "spec.http[0].mirrors[0].destination.host",
            "invalid",
        ),
        (
            "- match: [{uri: {exact: /a}}]\n  redirect: {prefixRewrite: /b}",
            "spec.http[0].redirect.prefixRewrite",
            "prefix match",
        ),
        (
            "- route: [{destination: {host: a}}]\n  corsPolicy: {allowOrigins: [{}]}",
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "not a valid match type",
        ),
    ],
)
def test_http_route_rules(route: str, path: str, fragment: str) -> None:
    assert_rejected(vs(f"hosts: [reviews]\nhttp:\n{route}"), path, fragment)


def test_tls_and_tcp_routes() -> None:
    assert_valid(
        vs(
            """
hosts: ["*.example.com"]
gateways: [gw]
tls:
- match: [{sniHosts: [a.example.com], port: 443}]
  route: [{destination: {host: a.example.com}}]
"""
        )
    )
    assert_rejected(
        vs(
            "hosts: [a.com]\ntls:\n- match: [{sniHosts: [b.com]}]\n  route: [{destination: {host: "
            "b}}]"
        ),
        "spec.tls[0].match[0].sniHosts[0]",
        "not a compatible subset",
    )
    assert_rejected(
        vs("hosts: [a.com]\ntls:\n- match: [{port: 1}]\n  route: [{destination: {host: b}}]"),
        "spec.tls[0].match[0].sniHosts",
        "Required value",
    )
    assert_rejected(
        vs(
            "hosts: [a.com]\ntcp:\n- match: [{destinationSubnets: [10.0.0.0/33]}]\n  route: "
            "[{destination: {host: b}}]"
        ),
        "spec.tcp[0].match[0].destinationSubnets[0]",
        "CIDR",
    )
    assert_rejected(
        vs("hosts: [a.com]\ntcp:\n- match: [{port: 1}]"),
        "spec.tcp[0].route",
        "TCP route is required",
    )


def test_unreachable_rules_are_warnings() -> None:
    body = "hosts: [a]\nhttp:\n" + ROUTE + "\n" + ROUTE
    assert warnings_of(vs(body)) == [
        ("spec.http[1]", "virtualService rule #1 not used (only the last rule can have no matches)")
    ]
    dup = "- match: [{uri: {exact: /a}}]\n  route: [{destination: {host: a}}]"
    warnings = warnings_of(vs(f"hosts: [a]\nhttp:\n{dup}\n{dup}"))
    assert [p for p, _ in warnings] == ["spec.http[1].match[0]"]
