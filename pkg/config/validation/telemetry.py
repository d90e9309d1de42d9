"""Telemetry, WasmPlugin and ProxyConfig: the smaller policy-like kinds."""

from __future__ import annotations

from pkg.config.specs.extensions import EnvValueSource, WasmPlugin
from pkg.config.specs.proxy_config import ProxyConfig
from pkg.config.specs.telemetry import Operation, Telemetry
from pkg.config.validation.policy import check_selector, check_target_refs
from pkg.config.validation.report import Report


def validate_telemetry(telemetry: Telemetry, report: Report) -> None:
    check_target_refs(report, telemetry.selector, telemetry.target_ref, telemetry.target_refs)
    check_selector(report, telemetry.selector, "spec.selector")
    for index, metrics in enumerate(telemetry.metrics):
        for o, override in enumerate(metrics.overrides):
            for name, tag in override.tag_overrides.items():
                path = f"spec.metrics[{index}].overrides[{o}].tagOverrides[{name}]"
                if not name:
                    report.warn(path, "tagOverrides.name may not be empty")
                if tag.operation == Operation.UPSERT and not tag.value:
                    report.error(path, "value must be set when operation is UPSERT")
                if tag.operation == Operation.REMOVE and tag.value:
                    report.error(path, "value must not be set when operation is REMOVE")
    if len(telemetry.tracing) > 1:
        report.warn("spec.tracing", "multiple tracing is not currently supported")
    for index, tracing in enumerate(telemetry.tracing):
        path = f"spec.tracing[{index}]"
        if len(tracing.providers) > 1:
            report.warn(f"{path}.providers", "multiple providers is not currently supported")
        for name in tracing.custom_tags:
            if not name:
                report.error(f"{path}.customTags", "tag name may not be empty")


def validate_wasm_plugin(plugin: WasmPlugin, report: Report) -> None:
    check_target_refs(report, plugin.selector, plugin.target_ref, plugin.target_refs)
    check_selector(report, plugin.selector, "spec.selector")
    if plugin.vm_config is not None:
        for index, env in enumerate(plugin.vm_config.env):
            if env.value_from == EnvValueSource.HOST and env.value:
                report.error(
                    f"spec.vmConfig.env[{index}]", "value may only be set when valueFrom is INLINE"
                )


def validate_proxy_config(config: ProxyConfig, report: Report) -> None:
    check_selector(report, config.selector, "spec.selector")
