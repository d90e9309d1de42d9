"""`proxy-config bootstrap`: the bootstrap Envoy runs with (`BootstrapConfigDump`, printed as
JSON by default, as istioctl does), or with `-o short` istioctl's version summary:

    Istio Version:       <node metadata ISTIO_VERSION>
    Istio Proxy Version: <node metadata ISTIO_PROXY_SHA, after its ':'>
    Envoy Version:       <major.minor.patch[-label][/status][/build type][/ssl]>

(lines without a value are left out; the Envoy line always shows). istiod's view of a proxy
carries an empty bootstrap: istiod does not write the proxy's bootstrap.
"""

from __future__ import annotations

from typing import Any

from istioctl.proxyconfig.configdump import ConfigDump, NothingToShow
from istioctl.proxyconfig.tabwriter import render

PADDING = 1


class NoBootstrap(NothingToShow):
    def __str__(self) -> str:
        return "the config dump has no bootstrap section"


def section(dump: ConfigDump) -> Any:
    found = dump.bootstrap()
    if found is None:
        raise NoBootstrap()
    return found


def summary(dump: ConfigDump) -> str:
    node = section(dump).bootstrap.node
    lines: list[tuple[str, str]] = []
    metadata = node.metadata.fields
    if metadata.get("ISTIO_VERSION") and metadata["ISTIO_VERSION"].string_value:
        lines.append(("Istio Version:", metadata["ISTIO_VERSION"].string_value))
    if metadata.get("ISTIO_PROXY_SHA") and metadata["ISTIO_PROXY_SHA"].string_value:
        sha = metadata["ISTIO_PROXY_SHA"].string_value
        parts = sha.split(":")
        lines.append(("Istio Proxy Version:", parts[1] if len(parts) > 1 else sha))
    lines.append(("Envoy Version:", envoy_version(node)))
    return render(lines, PADDING)


def envoy_version(node: Any) -> str:
    build = node.user_agent_build_version
    version = build.version
    text = f"{version.major_number}.{version.minor_number}.{version.patch}"
    fields = build.metadata.fields
    for key, sep in (
        ("build.label", "-"),
        ("revision.status", "/"),
        ("build.type", "/"),
        ("ssl.version", "/"),
    ):
        if key in fields:
            text += sep + fields[key].string_value
    return text
