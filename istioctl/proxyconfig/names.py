"""Istio's resource names and provenance, read back from Envoy configuration.

- Cluster names `DIRECTION|PORT|SUBSET|FQDN` (e.g. `outbound|9080|v1|reviews.default.svc.
  cluster.local`) are split as Istio's `model.ParseSubsetKey` does; the DNS SRV spelling
  `outbound_.9080_.v1_.reviews...` too.
- Provenance: istiod stamps the object a resource came from into its metadata,
  `filter_metadata["istio"]["config"] = "/apis/networking.istio.io/v1/namespaces/NS/KIND/NAME"`
  (a DestinationRule on clusters, a VirtualService on routes); istioctl shows it as
  `NAME.NS`, `<unknown>` for any other path, and nothing when there is none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ISTIO_METADATA_KEY = "istio"
NETWORKING_PREFIX = "/apis/networking.istio.io/"


@dataclass(frozen=True, order=True)
class SubsetKey:
    """A cluster name's parts, ordered as istioctl sorts clusters: FQDN, subset, port,
    direction. A name that is no subset key has only `fqdn` (the whole name)."""

    fqdn: str
    subset: str = ""
    port: int = 0
    direction: str = ""


def is_subset_key(name: str) -> bool:
    """istioctl's test: more than three `|`-separated parts."""
    return len(name.split("|")) > 3


def parse_subset_key(name: str) -> SubsetKey:
    """Istio's ParseSubsetKey (missing parts stay empty, a bad port is 0)."""
    sep = "_." if name.startswith(("outbound_", "inbound_")) else "|"
    direction, found, rest = name.partition(sep)
    if not found:
        return SubsetKey("")
    port_text, found, rest = rest.partition(sep)
    port = _atoi(port_text)
    if not found:
        return SubsetKey("", port=port, direction=direction)
    subset, found, rest = rest.partition(sep)
    if not found or sep in rest:
        return SubsetKey("", subset, port, direction)
    return SubsetKey(rest, subset, port, direction)


def sort_key(name: str) -> SubsetKey:
    """istioctl's safelyParseSubsetKey: parsed when a subset key, else just the name."""
    return parse_subset_key(name) if is_subset_key(name) else SubsetKey(name)


def _atoi(text: str) -> int:
    """Go's strconv.Atoi, 0 on error."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        return 0
    return int(text)


def describe_management(metadata: Any) -> str:
    """The object behind a resource, from its `istio` filter metadata (istioctl's
    describeManagement): `NAME.NS`, `<unknown>`, or `` when there is none."""
    if metadata is None or ISTIO_METADATA_KEY not in metadata.filter_metadata:
        return ""
    fields = metadata.filter_metadata[ISTIO_METADATA_KEY].fields
    if "config" not in fields:
        return ""
    return render_config(fields["config"].string_value)


def render_config(path: str) -> str:
    if not path.startswith(NETWORKING_PREFIX):
        return "<unknown>"
    pieces = path.split("/")
    if len(pieces) != 8:
        return ""
    return f"{pieces[7]}.{pieces[5]}"
