"""Per-route policies of a VirtualService HTTP route: CORS (the per-route config of
envoy.filters.http.cors) and request mirroring (Istio's TranslateCORSPolicy, MirrorPercent,
MirrorPercentByPolicy and TranslateRequestMirrorPolicy).

CORS: origins become string matchers (the deprecated `allowOrigin` list exact ones), lists are
joined with commas, `maxAge` is whole seconds, the filter is enabled for 100 % of requests and
preflights that match no origin are forwarded upstream unless `unmatchedPreflights: IGNORE`.

Mirroring: `mirror` with `mirrorPercentage` (a fraction of a million) or the deprecated integer
`mirrorPercent` (default 100 %), and every `mirrors[]` entry with its own `percentage`; an
explicit 0 disables that mirror. Mirrored requests are not trace-sampled and keep their Host
(no `-shadow` suffix, Istio's DISABLE_SHADOW_HOST_SUFFIX default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from pilot.networking.route_match import string_matcher

# A mirror destination → its cluster name.
ClusterOf = Callable[[Any], str]


def translate_cors(cors: Any) -> Any:
    out = cors_pb2.CorsPolicy()
    ignore = str(cors.unmatched_preflights) == "IGNORE"
    out.forward_not_matching_preflights.CopyFrom(wrappers_pb2.BoolValue(value=not ignore))
    if cors.allow_origins:
        for origin in cors.allow_origins:
            matcher = string_matcher(origin)
            if matcher is not None:
                out.allow_origin_string_match.append(matcher)
    else:
        for origin in cors.allow_origin:
            out.allow_origin_string_match.add(exact=origin)
    out.filter_enabled.default_value.CopyFrom(_of_hundred(100))
    if cors.allow_credentials is not None:
        out.allow_credentials.CopyFrom(wrappers_pb2.BoolValue(value=cors.allow_credentials))
    out.allow_headers = ",".join(cors.allow_headers)
    out.allow_methods = ",".join(cors.allow_methods)
    out.expose_headers = ",".join(cors.expose_headers)
    if cors.max_age is not None:
        out.max_age = str(cors.max_age.seconds)
    return out


def _of_million(value: float) -> Any:
    return percent_pb2.FractionalPercent(
        numerator=int(value * 10000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def _of_hundred(value: int) -> Any:
    return percent_pb2.FractionalPercent(
        numerator=value, denominator=percent_pb2.FractionalPercent.HUNDRED
    )


def _mirror_fraction(percentage: Any, percent: int | None) -> Any | None:
    """None when mirroring is explicitly off (0 %)."""
    if percentage is not None:
        return _of_million(percentage.value) if percentage.value > 0 else None
    if percent is not None:
        return _of_hundred(percent) if percent > 0 else None
    return _of_hundred(100)


def _mirror_policy(cluster: str, fraction: Any) -> Any:
    out = route_pb2.RouteAction.RequestMirrorPolicy(cluster=cluster)
    out.runtime_fraction.CopyFrom(base_pb2.RuntimeFractionalPercent(default_value=fraction))
    out.trace_sampled.CopyFrom(wrappers_pb2.BoolValue(value=False))
    out.disable_shadow_host_suffix_append = True
    return out


def mirror_policies(http: Any, cluster_of: ClusterOf) -> list[Any]:
    """The request mirror policies of an HTTP route: `mirror` first, then `mirrors[]`."""
    out = []
    if http.mirror is not None:
        fraction = _mirror_fraction(http.mirror_percentage, http.mirror_percent)
        if fraction is not None:
            out.append(_mirror_policy(cluster_of(http.mirror), fraction))
    for mirror in http.mirrors:
        if mirror.destination is None:
            continue
        fraction = _mirror_fraction(mirror.percentage, None)
        if fraction is not None:
            out.append(_mirror_policy(cluster_of(mirror.destination), fraction))
    return out
