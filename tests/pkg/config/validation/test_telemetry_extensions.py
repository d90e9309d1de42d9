from __future__ import annotations

import pytest

from pkg.config.specs.extensions import PluginPhase
from pkg.config.specs.telemetry import IstioMetric, WorkloadMode
from tests.pkg.config.support import assert_rejected, assert_valid


def doc(api: str, kind: str, body: str) -> str:
    head = f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: t}}\nspec:\n"
    return head + "".join(f"  {line}\n" for line in body.strip("\n").splitlines())


def telemetry(body: str) -> str:
    return doc("telemetry.istio.io/v1", "Telemetry", body)


def wasm(body: str) -> str:
    return doc("extensions.istio.io/v1alpha1", "WasmPlugin", body)


def test_valid_telemetry() -> None:
    config = assert_valid(
        telemetry(
            """
selector: {matchLabels: {app: a}}
metrics:
- providers: [{name: prometheus}]
  overrides:
  - match: {metric: REQUEST_COUNT, mode: SERVER}
    tagOverrides: {x: {operation: REMOVE}}
tracing: [{randomSamplingPercentage: 10, customTags: {env: {environment: {name: POD}}}}]
accessLogging: [{providers: [{name: envoy}], filter: {expression: "response.code >= 400"}}]
"""
        )
    )
    override = config.spec.metrics[0].overrides[0]
    assert override.match.metric is IstioMetric.REQUEST_COUNT
    assert override.match.mode is WorkloadMode.SERVER


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (
            "tracing: [{randomSamplingPercentage: 101}]",
            "spec.tracing[0].randomSamplingPercentage",
            "less than or equal",
        ),
        (
            "tracing: [{customTags: {a: {literal: {value: x}, header: {name: y}}}}]",
            "spec.tracing[0].customTags[a]",
            "only one of",
        ),
        (
            "metrics: [{overrides: [{match: {metric: HITS}}]}]",
            "spec.metrics[0].overrides[0].match.metric",
            "Unsupported",
        ),
        (
            "metrics: [{reportingInterval: 0s}]",
            "spec.metrics[0].reportingInterval",
            "greater than 1ms",
        ),
        (
            "accessLogging: [{providers: [{}]}]",
            "spec.accessLogging[0].providers[0].name",
            "Required",
        ),
        (
            "selector: {matchLabels: {a: b}}\ntargetRefs: [{kind: Service, name: s}]",
            "spec",
            "only one of",
        ),
    ],
)
def test_telemetry_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(telemetry(body), path, fragment)


def test_an_empty_custom_tag_is_allowed() -> None:
    # The CRD's oneOf allows no member at all, and istiod accepts it.
    assert_valid(telemetry("tracing: [{customTags: {a: {}}}]"))


def test_valid_wasm_plugins() -> None:
    config = assert_valid(
        wasm(
            """
selector: {matchLabels: {istio: ingressgateway}}
url: oci://ghcr.io/example/filter:1.0
imagePullPolicy: Always
phase: AUTHZ
priority: 10
pluginConfig: {rules: [{a: 1}]}
match: [{mode: SERVER, ports: [{number: 8080}]}]
"""
        )
    )
    assert config.spec.phase is PluginPhase.AUTHZ
    assert config.spec.plugin_config == {"rules": [{"a": 1}]}
    assert_valid(wasm("url: https://example.com/filter.wasm"))
    assert_valid(wasm("url: example.com/filter.wasm"))


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ("phase: AUTHN", "spec.url", "Required value"),
        ("url: 'ftp://x/f.wasm'", "spec.url", "url must have schema"),
        (
            "url: 'http://x'\nmatch: [{ports: [{number: 70000}]}]",
            "spec.match[0].ports[0].number",
            "less than or equal to 65535",
        ),
        (
            "url: 'http://x'\nmatch: [{ports: [{number: 80}, {number: 80}]}]",
            "spec.match[0].ports[1]",
            "Duplicate value",
        ),
        ("url: 'http://x'\nphase: EARLY", "spec.phase", "Unsupported value"),
        ("url: 'http://x'\npluginConfig: [1]", "spec.pluginConfig", "must be of type object"),
        (
            "url: 'http://x'\nselector: {matchLabels: {a: b}}\ntargetRef: {kind: Service, name: s}",
            "spec",
            "only one of",
        ),
    ],
)
def test_wasm_plugin_rules(body: str, path: str, fragment: str) -> None:
    assert_rejected(wasm(body), path, fragment)


def test_proxy_config() -> None:
    api = "networking.istio.io/v1beta1"
    config = assert_valid(doc(api, "ProxyConfig", "concurrency: 2\nimage: {imageType: distroless}"))
    assert config.spec.concurrency == 2
    assert config.spec.image.image_type == "distroless"
    assert_rejected(
        doc(api, "ProxyConfig", "environmentVariables: {A: 1}"),
        "spec.environmentVariables[A]",
        "string",
    )
