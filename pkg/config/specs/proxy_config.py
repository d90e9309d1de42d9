"""ProxyConfig (networking/v1beta1/proxy_config.proto).

`ProxyConfig.selector` is the `istio.type.v1beta1` selector (`pkg.config.types.WorkloadSelector`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pkg.config.fields import C, mapping, wrapper
from pkg.config.types import WorkloadSelector


@dataclass(frozen=True, slots=True)
class ProxyImage:
    image_type: str = ""


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    selector: WorkloadSelector | None = None
    concurrency: int | None = wrapper("int32", minimum=0)
    environment_variables: Mapping[str, str] = mapping(items=C(max_len=2048))
    image: ProxyImage | None = None


__all__ = ["ProxyConfig", "ProxyImage"]
