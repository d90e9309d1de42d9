"""Where proxy-status reads istiod's sync status from, and istiod's view of one proxy over ADS.

- `--istiod URL`: `GET URL/debug/syncz`.
- `--xds-address HOST:PORT`: plaintext ADS, as istioctl's `--plaintext --xds-address`: one
  SotW request for `istio.io/debug/syncz` (or `istio.io/debug/config_dump` naming PROXY) with
  node metadata `GENERATOR=event`; the first response is the answer.

Config dumps over HTTP (Envoy's `--admin`, a saved `--file`, istiod's
`/debug/config_dump?proxyID=`) are read by proxy-config's sources (istioctl/proxyconfig).

HTTP requests time out, ignore `*_proxy` settings and follow no redirects. Every failure is a
`SourceError` whose message names the flag and the address.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2

from istioctl.http import OPENER
from istioctl.proxyconfig.sources import normalize_url
from istioctl.proxystatus.model import SyncError, SyncReport, from_response, from_syncz
from pkg.version import VERSION
from pkg.xds import typeurls

DEFAULT_ISTIOD = "http://127.0.0.1:8080"
_MAX_BODY = 64 << 20
# istioctl's debug node: it is no proxy, and says so with the `event` generator.
DEBUG_NODE_ID = "sidecar~127.0.0.1~istioctl.istio-system~istio-system.svc.cluster.local"


class SourceError(Exception):
    """Reading istiod or Envoy failed; the message says what, for the user."""


def get_json(url: str, flag: str, timeout: float) -> Any:
    try:
        with OPENER.open(urllib.request.Request(url), timeout=timeout) as response:
            body = response.read(_MAX_BODY)
    except urllib.error.HTTPError as err:
        text = err.read(300).decode("utf-8", "replace").strip()
        err.close()
        raise SourceError(f"{flag}: {url} answered HTTP {err.code}: {text}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise SourceError(f"{flag}: cannot reach {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise SourceError(f"{flag}: {url} did not answer JSON") from None


def syncz_http(istiod: str, timeout: float) -> SyncReport:
    try:
        base = normalize_url("--istiod", istiod)
    except ValueError as err:
        raise SourceError(str(err)) from None
    data = get_json(f"{base}/debug/syncz", "--istiod", timeout)
    try:
        return from_syncz(data, urllib.parse.urlsplit(base).netloc)
    except SyncError as err:
        raise SourceError(f"--istiod: {base}: {err}") from None


def debug_request(type_url: str, names: tuple[str, ...] = ()) -> discovery_pb2.DiscoveryRequest:
    metadata = struct_pb2.Struct()
    metadata.update({"GENERATOR": "event", "NAMESPACE": "istio-system", "ISTIO_VERSION": VERSION})
    return discovery_pb2.DiscoveryRequest(
        node=base_pb2.Node(id=DEBUG_NODE_ID, metadata=metadata),
        type_url=type_url,
        resource_names=list(names),
    )


def xds_request(
    address: str, request: discovery_pb2.DiscoveryRequest, timeout: float
) -> discovery_pb2.DiscoveryResponse:
    """The first response to `request` on a plaintext ADS stream to `address`."""
    options = [("grpc.enable_http_proxy", 0)]
    try:
        with grpc.insecure_channel(address, options=options) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.StreamAggregatedResources(iter([request]), timeout=timeout)
            try:
                response: discovery_pb2.DiscoveryResponse = next(call)
            finally:
                call.cancel()
    except grpc.RpcError as err:
        raise SourceError(f"--xds-address: {address}: {_rpc_error(err)}") from None
    except StopIteration:
        raise SourceError(f"--xds-address: {address} closed the stream unanswered") from None
    return response


def _rpc_error(err: grpc.RpcError) -> str:
    code, details = getattr(err, "code", None), getattr(err, "details", None)
    name = code().name if callable(code) else "error"
    return f"{name}: {details() if callable(details) else err}"


def syncz_xds(address: str, timeout: float) -> SyncReport:
    response = xds_request(address, debug_request(typeurls.DEBUG_SYNCZ), timeout)
    try:
        return from_response(response)
    except SyncError as err:
        raise SourceError(f"--xds-address: {address}: {err}") from None


def config_dump_xds(address: str, proxy: str, timeout: float) -> discovery_pb2.DiscoveryResponse:
    request = debug_request(typeurls.DEBUG_CONFIG_DUMP, (proxy,))
    return xds_request(address, request, timeout)
