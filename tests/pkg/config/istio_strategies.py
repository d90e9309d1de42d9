"""Hypothesis strategies for Istio resources: valid-looking documents, and mutations of them.

`resource(kind)` draws a document of that kind the way users write them (hosts among the
Bookinfo services of tests/pilot/networking/testdata/setup/bookinfo.yaml, realistic ports,
matches, policies), so that a good share of draws is valid and reaches xDS generation.
`mutated(doc)` then damages it at a random place: a wrong type, a missing or unknown field, a
huge or negative number, odd unicode, deep nesting. `any_document()` mixes both.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

SERVICES = ("productpage", "details", "reviews", "ratings")
NAMESPACE = "default"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_LABELS = {"istio": "ingressgateway"}

KINDS = (
    "VirtualService",
    "DestinationRule",
    "Gateway",
    "ServiceEntry",
    "Sidecar",
    "AuthorizationPolicy",
    "PeerAuthentication",
    "RequestAuthentication",
    "WorkloadEntry",
)
_API = {
    "VirtualService": "networking.istio.io/v1",
    "DestinationRule": "networking.istio.io/v1",
    "Gateway": "networking.istio.io/v1",
    "ServiceEntry": "networking.istio.io/v1",
    "Sidecar": "networking.istio.io/v1",
    "WorkloadEntry": "networking.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "PeerAuthentication": "security.istio.io/v1",
    "RequestAuthentication": "security.istio.io/v1",
}
# An inline JWKS with one RSA public key (the key itself is never used to verify anything).
JWKS = (
    '{"keys":[{"kty":"RSA","e":"AQAB","kid":"k1","n":"u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ff'
    "AtOpcWKXEs3Ng3qGBaVMVb_j1dRjNuCySWTDsWJtUP3KG9jPoY7hGTVswy7brXZQ7ZpHmiDdmOodnMWn8ngx0Jk6zI"
    "ExP2JC7ix5cK0TE6dw3SBvlr-H3vyWWmOZH3ONOE_0EYN7BT3m-kKEXr8OIXcl7wp1GaNWnWnh5FkMRt1JFp7XvH05"
    'qL-PsTVGzTBTO2mt_eJTFmfqCsPfmCnnhtpUbAPZ_-xJmMKjz9ddj7Ub3wzxdFCEgVEX1KmpjmOKX6uIsQ"}]}'
)

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True)
ports = st.sampled_from([80, 443, 8080, 9080, 15443, 31400])
hosts = st.sampled_from(SERVICES).map(lambda s: s)
fqdns = hosts.map(lambda s: f"{s}.{NAMESPACE}.svc.cluster.local")
durations = st.sampled_from(["1s", "0.5s", "10s", "250ms", "1m"])
seconds = st.sampled_from(["1s", "10s", "60s"])
header_names = st.sampled_from(["x-user", "end-user", "x-id", "cookie", "user-agent"])
# Regexes: ordinary ones, and valid RE2 whose compiled program is large (Envoy caps it).
regexes = st.one_of(
    st.sampled_from(["^/api/.*", "v[0-9]+", ".*jason.*", "(a|b)+c", "[[:alpha:]]+"]),
    # (alternatives, repetitions): program sizes ~600, ~29400 (under Envoy's 32768), ~42000.
    st.sampled_from([(1, 50), (4, 700), (4, 1000), (9, 450)]).map(
        lambda t: "(" + "|".join(chr(97 + i) * 10 for i in range(t[0])) + f"){{{t[1]}}}"
    ),
)
paths = st.sampled_from(["/", "/api", "/reviews", "/static/", "/login"])


def string_match(*, allow_regex: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    options = [
        paths.map(lambda p: {"prefix": p}),
        paths.map(lambda p: {"exact": p}),
    ]
    if allow_regex:
        options.append(regexes.map(lambda r: {"regex": r}))
    return st.one_of(options)


def _destination() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"host": hosts},
        optional={
            "subset": st.sampled_from(["v1", "v2", "v3"]),
            "port": st.fixed_dictionaries({"number": st.just(9080)}),
        },
    )


def _http_route() -> st.SearchStrategy[dict[str, Any]]:
    match = st.fixed_dictionaries(
        {},
        optional={
            "name": names,
            "uri": string_match(),
            "headers": st.dictionaries(header_names, string_match(), max_size=2),
            "queryParams": st.dictionaries(st.just("q"), string_match(), max_size=1),
            "method": st.sampled_from([{"exact": "GET"}, {"exact": "POST"}]),
            "ignoreUriCase": st.booleans(),
        },
    )
    weights = st.lists(_destination(), min_size=1, max_size=3).map(
        lambda ds: [
            {"destination": d, "weight": 100 // len(ds) + (100 % len(ds) if i == 0 else 0)}
            for i, d in enumerate(ds)
        ]
    )
    return st.fixed_dictionaries(
        {"route": weights},
        optional={
            "name": names,
            "match": st.lists(match, max_size=3),
            "timeout": durations,
            "retries": st.fixed_dictionaries(
                {"attempts": st.integers(0, 10)},
                optional={"perTryTimeout": durations, "retryOn": st.just("5xx,gateway-error")},
            ),
            "fault": st.fixed_dictionaries(
                {
                    "abort": st.fixed_dictionaries(
                        {
                            "httpStatus": st.integers(200, 599),
                            "percentage": st.fixed_dictionaries({"value": st.integers(0, 100)}),
                        }
                    )
                }
            ),
            "rewrite": st.one_of(
                paths.map(lambda p: {"uri": p}),
                regexes.map(lambda r: {"uriRegexRewrite": {"match": r, "rewrite": "/x"}}),
            ),
            "corsPolicy": st.fixed_dictionaries(
                {"allowOrigins": st.lists(string_match(), min_size=1, max_size=2)},
                optional={"allowMethods": st.just(["GET", "POST"]), "maxAge": seconds},
            ),
            "headers": st.fixed_dictionaries(
                {"request": st.fixed_dictionaries({"set": st.just({"x-pyistio": "1"})})}
            ),
        },
    )


def _spec(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "VirtualService":
        return st.fixed_dictionaries(
            {
                "hosts": st.lists(hosts, min_size=1, max_size=2, unique=True),
                "http": st.lists(_http_route(), min_size=1, max_size=3),
            },
            optional={
                "gateways": st.just([f"{GATEWAY_NAMESPACE}/gw", "mesh"]),
            },
        )
    if kind == "DestinationRule":
        subset = st.fixed_dictionaries(
            {"name": st.sampled_from(["v1", "v2", "v3"]), "labels": st.just({"app": "reviews"})}
        )
        policy = st.fixed_dictionaries(
            {
                "loadBalancer": st.sampled_from(
                    [{"simple": "ROUND_ROBIN"}, {"simple": "LEAST_REQUEST"}, {"simple": "RANDOM"}]
                )
            },
            optional={
                "connectionPool": st.fixed_dictionaries(
                    {"tcp": st.fixed_dictionaries({"maxConnections": st.integers(1, 2**31 - 1)})}
                ),
                "outlierDetection": st.fixed_dictionaries(
                    {"consecutive5xxErrors": st.integers(0, 100), "interval": durations}
                ),
                "tls": st.sampled_from([{"mode": "ISTIO_MUTUAL"}, {"mode": "DISABLE"}]),
            },
        )
        return st.fixed_dictionaries(
            {"host": fqdns},
            optional={
                "trafficPolicy": policy,
                "subsets": st.lists(subset, max_size=3, unique_by=lambda s: s["name"]),
            },
        )
    if kind == "Gateway":
        server = st.fixed_dictionaries(
            {
                "port": st.tuples(ports, st.sampled_from(["HTTP", "HTTP2", "TCP"])).map(
                    lambda t: {"number": t[0], "name": f"{t[1].lower()}-{t[0]}", "protocol": t[1]}
                ),
                "hosts": st.sampled_from([["*"], ["bookinfo.example.com"], ["*/*.example.com"]]),
            }
        )
        return st.fixed_dictionaries(
            {
                "selector": st.just(GATEWAY_LABELS),
                "servers": st.lists(
                    server, min_size=1, max_size=3, unique_by=lambda s: s["port"]["number"]
                ),
            }
        )
    if kind == "ServiceEntry":
        return st.fixed_dictionaries(
            {
                "hosts": names.map(lambda n: [f"{n}.example.com"]),
                "ports": st.lists(
                    st.tuples(ports, st.sampled_from(["HTTP", "TCP", "GRPC", "HTTPS"])).map(
                        lambda t: {"number": t[0], "name": f"p-{t[0]}", "protocol": t[1]}
                    ),
                    min_size=1,
                    max_size=3,
                    unique_by=lambda p: p["number"],
                ),
                "resolution": st.sampled_from(["STATIC", "DNS", "NONE"]),
            },
            optional={
                "location": st.sampled_from(["MESH_EXTERNAL", "MESH_INTERNAL"]),
                "endpoints": st.lists(
                    st.integers(1, 250).map(lambda i: {"address": f"10.1.0.{i}"}), max_size=3
                ),
            },
        )
    if kind == "Sidecar":
        return st.fixed_dictionaries(
            {"egress": st.just([{"hosts": ["./*", "istio-system/*"]}])},
            optional={
                "outboundTrafficPolicy": st.sampled_from(
                    [{"mode": "ALLOW_ANY"}, {"mode": "REGISTRY_ONLY"}]
                )
            },
        )
    if kind == "AuthorizationPolicy":
        rule = st.fixed_dictionaries(
            {},
            optional={
                "from": st.just([{"source": {"principals": ["cluster.local/ns/default/sa/a"]}}]),
                "to": st.lists(
                    st.fixed_dictionaries(
                        {
                            "operation": st.fixed_dictionaries(
                                {"methods": st.just(["GET"])},
                                optional={
                                    "paths": st.lists(paths, min_size=1, max_size=2),
                                    "ports": st.just(["9080"]),
                                },
                            )
                        }
                    ),
                    max_size=2,
                ),
                "when": st.just([{"key": "request.headers[x-user]", "values": ["jason"]}]),
            },
        )
        return st.fixed_dictionaries(
            {},
            optional={
                "action": st.sampled_from(["ALLOW", "DENY", "AUDIT"]),
                "rules": st.lists(rule, min_size=1, max_size=3),
                "selector": st.just({"matchLabels": {"app": "reviews"}}),
            },
        )
    if kind == "PeerAuthentication":
        return st.fixed_dictionaries(
            {},
            optional={
                "mtls": st.sampled_from([{"mode": m} for m in ("STRICT", "PERMISSIVE", "DISABLE")]),
            },
        )
    if kind == "RequestAuthentication":
        return st.fixed_dictionaries(
            {
                "jwtRules": st.lists(
                    st.fixed_dictionaries(
                        {"issuer": names.map(lambda n: f"https://{n}.example.com")},
                        optional={"jwks": st.just(JWKS), "forwardOriginalToken": st.booleans()},
                    ),
                    min_size=1,
                    max_size=2,
                    unique_by=lambda r: r["issuer"],
                )
            },
            optional={"selector": st.just({"matchLabels": {"app": "reviews"}})},
        )
    if kind == "WorkloadEntry":
        return st.fixed_dictionaries(
            {"address": st.integers(1, 250).map(lambda i: f"10.2.0.{i}")},
            optional={
                "labels": st.just({"app": "reviews", "version": "v9"}),
                "ports": st.just({"http": 9080}),
                "serviceAccount": names,
            },
        )
    raise ValueError(kind)


@st.composite
def resource(draw: st.DrawFn, kind: str | None = None) -> dict[str, Any]:
    """A valid-looking document of `kind` (any of KINDS when None)."""
    kind = kind or draw(st.sampled_from(KINDS))
    namespace = GATEWAY_NAMESPACE if kind == "Gateway" else NAMESPACE
    return {
        "apiVersion": _API[kind],
        "kind": kind,
        "metadata": {"name": draw(names), "namespace": namespace},
        "spec": draw(_spec(kind)),
    }


# ---- mutations ------------------------------------------------------------------------------

odd_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud7ff\ue000\U0010ffff",
            "é" * 300,
            "a\nb",
            "*",
            "..",
            "%",
            "%(",
            "[",
            "\u202e",
            "x" * 20_000,
        ]
    ),
)
wrong_values: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**32, 2**63, -1, 0, 10**100]),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _deep(depth: int, leaf: Any) -> Any:
    out = leaf
    for i in range(depth):
        out = [out] if i % 2 else {"a": out}
    return out


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (from the document root) of every dict and list in it, down to depth 40."""
    out: list[tuple[Any, ...]] = []
    if len(path) > 40:
        return out
    if isinstance(node, dict):
        out.append(path)
        for key, value in node.items():
            out.extend(_containers(value, (*path, key)))
    elif isinstance(node, list):
        out.append(path)
        for index, value in enumerate(node):
            out.extend(_containers(value, (*path, index)))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


@st.composite
def mutated(draw: st.DrawFn, doc: dict[str, Any], max_mutations: int = 3) -> dict[str, Any]:
    """`doc` with 1..max_mutations random damages (the input is not modified)."""
    out = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, max_mutations))):
        target = _at(out, draw(st.sampled_from(_containers(out))))
        if isinstance(target, dict):
            keys = sorted(target, key=str)
            action = draw(st.sampled_from(["replace", "delete", "unknown", "deep", "key"]))
            if action == "unknown" or not keys:
                target[draw(odd_text)] = draw(wrong_values)
            elif action == "key":
                key = draw(st.sampled_from(keys))
                target[draw(st.one_of(odd_text, st.integers(), st.booleans()))] = target.pop(key)
            else:
                key = draw(st.sampled_from(keys))
                if action == "delete":
                    del target[key]
                elif action == "deep":
                    target[key] = _deep(draw(st.integers(10, 3000)), target[key])
                    return out  # the last damage: copying it again would recurse too deep
                else:
                    target[key] = draw(wrong_values)
        elif target:
            index = draw(st.integers(0, len(target) - 1))
            action = draw(st.sampled_from(["replace", "delete", "duplicate", "many"]))
            if action == "replace":
                target[index] = draw(wrong_values)
            elif action == "delete":
                del target[index]
            elif action == "duplicate":
                target.append(copy.deepcopy(target[index]))
            else:
                target.extend(copy.deepcopy(target[index]) for _ in range(200))
        else:
            target.append(draw(wrong_values))
    return out


def any_document() -> st.SearchStrategy[Any]:
    """Valid-looking documents, mutated ones, and things that are not documents at all."""
    return st.one_of(
        resource(),
        resource().flatmap(mutated),
        wrong_values,
    )
