"""The JWKS resolver: istiod fetches the key sets RequestAuthentications name (Istio's
JwksResolver, PILOT_JWT_ENABLE_REMOTE_JWKS=false) and keeps them fresh.

- Every key set the current RequestAuthentications name (`jwksUri`, or OpenID discovery from
  `issuer` alone) gets one watcher task: it fetches at once, retries a failed first fetch in the
  background (7 retries, 1s apart), then refetches every PILOT_JWT_PUB_KEY_REFRESH_INTERVAL
  (20m). While refreshes fail the interval drops to 1m and doubles up to 1h; a success resets
  it. Each GET is bounded by the rule's `timeout` (5s by default).
- A failed refresh keeps serving the last good key set, for at most a week without a successful
  refresh; a key set never fetched, or evicted, is served as `PUBLIC_ONLY_JWKS` (tokens of that
  issuer are rejected, requests without one are not). Failures are logged and listed by
  `problems()` (/debug/push_status).
- When the keys a proxy would get change (a reordering or reformatting is no change), the
  RequestAuthentications naming that key set are pushed (`on_change`), which regenerates LDS.
- Fetches go only to the http(s) URLs the config names (and, for discovery, the `jwks_uri` the
  issuer's discovery document names), never through environment proxies, never to link-local
  or cloud metadata addresses or BLOCKED_CIDRS_IN_JWKS_URIS (checked on the resolved addresses
  of every redirect hop, as Istio's dialer does); bodies over 1 MiB are refused.

Everything runs on the event loop (DNS in aiohttp's thread resolver); watchers are guarded
tasks, cancelled when their key set is no longer named and by `close()`.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from pilot.config.store import ConfigEvent, ConfigStore
from pilot.features import Features
from pilot.model.jwks import (
    JwksDemand,
    JwksFormatError,
    JwksRef,
    JwksResult,
    JwksSnapshot,
    jwks_demand,
    parse_discovery,
    parse_jwks,
    same_keys,
)
from pkg.aio import cancel_and_wait, guarded_task
from pkg.config.model import ConfigKey, Kind

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1 << 20
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata services outside the link-local range (Alibaba Cloud; AWS IMDS over IPv6).
_CLOUD_METADATA = (
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fd00:ec2::/32"),
)
_IPV4_LINK_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")


class FetchError(Exception):
    """A GET that did not produce a body (network, TLS, status, size, timeout)."""


# (url, timeout in seconds) → the response body; raises FetchError.
Fetch = Callable[[str, float], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class JwksSettings:
    refresh_interval: float = 20 * 60.0  # PILOT_JWT_PUB_KEY_REFRESH_INTERVAL
    refresh_interval_on_failure: float = 60.0
    max_refresh_interval_on_failure: float = 60 * 60.0
    retries: int = 7  # extra attempts of a background fetch
    retry_interval: float = 1.0
    eviction: float = 7 * 24 * 3600.0  # serve a key set this long without a good refresh

    @classmethod
    def from_features(cls, features: Features) -> JwksSettings:
        return cls(refresh_interval=features.jwt_pub_key_refresh_interval)


def blocked_ip_reason(ip: IPAddress, blocked: Sequence[IPNetwork] = ()) -> str | None:
    """Why a JWKS fetch may not connect to `ip` (None: it may)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        link_local_multicast = ip in _IPV4_LINK_LOCAL_MULTICAST
    else:
        link_local_multicast = ip.packed[0] == 0xFF and ip.packed[1] & 0x0F == 0x02
    if ip.is_link_local or link_local_multicast:
        return f"connection blocked: resolved IP {ip} is link-local"
    if any(ip in net for net in _CLOUD_METADATA):
        return f"connection blocked: resolved IP {ip} is a known cloud metadata address"
    for net in blocked:
        if ip in net:
            return f"connection blocked: resolved IP {ip} is in blocked CIDR range {net}"
    return None


class _GuardedResolver(AbstractResolver):
    """aiohttp's thread resolver without the addresses JWKS fetches may not reach."""

    def __init__(self, blocked: Sequence[IPNetwork]) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._blocked = blocked

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        allowed: list[ResolveResult] = []
        reason = f"no address for {host}"
        for result in await self._inner.resolve(host, port, family):
            why = blocked_ip_reason(ipaddress.ip_address(result["host"]), self._blocked)
            if why is None:
                allowed.append(result)
            else:
                reason = why
        if not allowed:
            raise OSError(errno.EACCES, reason)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class HttpFetcher:
    """GETs with aiohttp: no keep-alive, no environment proxies, bounded body, the
    address policy of `blocked_ip_reason` on every hop."""

    def __init__(
        self,
        *,
        insecure_skip_verify: bool = False,
        blocked_cidrs: Iterable[str] = (),
        max_bytes: int = MAX_JWKS_BYTES,
    ) -> None:
        self._blocked = tuple(ipaddress.ip_network(c, strict=False) for c in blocked_cidrs)
        self._max_bytes = max_bytes
        self._ssl = ssl.create_default_context()
        if insecure_skip_verify:
            self._ssl.check_hostname = False
            self._ssl.verify_mode = ssl.CERT_NONE
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_features(cls, features: Features) -> HttpFetcher:
        return cls(
            insecure_skip_verify=features.jwks_resolver_insecure_skip_verify,
            blocked_cidrs=features.blocked_cidrs_in_jwks_uris,
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=_GuardedResolver(self._blocked), ssl=self._ssl, force_close=True
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def __call__(self, url: str, timeout: float) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._get(url)
        except TimeoutError:
            raise FetchError(f"GET {url}: timed out after {timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as err:
            raise FetchError(f"GET {url}: {err or type(err).__name__}") from None

    def _check(self, target: URL) -> None:
        if target.scheme not in ("http", "https") or not target.host:
            raise FetchError(f"GET {target}: only http:// and https:// URLs are fetched")
        try:
            literal = ipaddress.ip_address(target.host)
        except ValueError:
            return  # a name: checked on its resolved addresses
        reason = blocked_ip_reason(literal, self._blocked)
        if reason is not None:
            raise FetchError(f"GET {target}: {reason}")

    async def _get(self, url: str) -> bytes:
        target = URL(url)
        session = self._client()
        for _ in range(MAX_REDIRECTS + 1):
            self._check(target)
            async with session.get(target, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in _REDIRECT_STATUSES and location:
                    target = target.join(URL(location))
                    continue
                body = await self._read(response, target)
                if not 200 <= response.status < 300:
                    message = body[:100].decode("utf-8", "replace")
                    raise FetchError(f"GET {target}: status {response.status}, message {message!r}")
                return body
        raise FetchError(f"GET {url}: more than {MAX_REDIRECTS} redirects")

    async def _read(self, response: aiohttp.ClientResponse, target: URL) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > self._max_bytes:
                raise FetchError(f"GET {target}: response larger than {self._max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class JwksResolver:
    """Fetches and refreshes the key sets in demand; `snapshot` is the current state."""

    def __init__(
        self,
        fetch: Fetch,
        settings: JwksSettings | None = None,
        on_change: Callable[[frozenset[ConfigKey]], None] | None = None,
    ) -> None:
        self._fetch = fetch
        self.settings = settings or JwksSettings()
        self._on_change = on_change
        self._snapshot = JwksSnapshot()
        self._demand: dict[JwksRef, JwksDemand] = {}
        self._watchers: dict[JwksRef, asyncio.Task[None]] = {}
        self._first_attempt: dict[JwksRef, asyncio.Event] = {}
        self._last_success: dict[JwksRef, float] = {}

    @property
    def snapshot(self) -> JwksSnapshot:
        return self._snapshot

    def problems(self) -> list[str]:
        return self._snapshot.problems()

    # ---- demand ------------------------------------------------------------------------------

    def set_demand(self, demand: Mapping[JwksRef, JwksDemand]) -> None:
        """Fetch exactly these key sets from now on (call on the event loop)."""
        self._demand = dict(demand)
        for ref in [r for r in self._watchers if r not in demand]:
            self._watchers.pop(ref).cancel()
            self._first_attempt.pop(ref).set()  # nobody waits for a key set no longer wanted
            self._last_success.pop(ref, None)
        self._snapshot = self._snapshot.only(demand)
        for ref in demand:
            if ref not in self._watchers:
                done = asyncio.Event()
                self._first_attempt[ref] = done
                self._watchers[ref] = guarded_task(self._watch(ref, done), name=f"jwks {ref}")

    async def settled(self) -> None:
        """Wait until every key set in demand has had its first fetch attempt."""
        await asyncio.gather(*(event.wait() for event in list(self._first_attempt.values())))

    async def prime(self, demand: Mapping[JwksRef, JwksDemand]) -> None:
        """`set_demand`, then wait for the first attempts (each bounded by its timeout)."""
        self.set_demand(demand)
        await self.settled()

    async def refresh(self) -> None:
        """Refetch every key set in demand now (once each, no retries); the periodic refresh
        goes on as scheduled."""
        await asyncio.gather(*(self._attempt(ref, retries=0) for ref in list(self._demand)))

    def follow(self, store: ConfigStore) -> None:
        """Keep the demand in step with the RequestAuthentications in `store`."""

        def on_events(events: list[ConfigEvent]) -> None:
            if any(e.key.kind is Kind.REQUEST_AUTHENTICATION for e in events):
                self.set_demand(jwks_demand(store.list(Kind.REQUEST_AUTHENTICATION)))

        store.add_handler(on_events)

    async def close(self) -> None:
        watchers = list(self._watchers.values())
        self._watchers.clear()
        for event in self._first_attempt.values():
            event.set()
        self._first_attempt.clear()
        await cancel_and_wait(*watchers)
        close = getattr(self._fetch, "close", None)
        if close is not None:
            await close()

    # ---- fetching ----------------------------------------------------------------------------

    async def _watch(self, ref: JwksRef, first_done: asyncio.Event) -> None:
        s = self.settings
        try:
            ok = await self._attempt(ref, retries=0)
        finally:
            first_done.set()
        if not ok:
            # Istio retries a failed first fetch at once, in the background.
            ok = await self._attempt(ref, retries=s.retries)
        interval = s.refresh_interval if ok else s.refresh_interval_on_failure
        while True:
            await asyncio.sleep(interval)
            was_ok = ok
            ok = await self._attempt(ref, retries=s.retries)
            if ok:
                interval = s.refresh_interval
            elif was_ok:
                interval = s.refresh_interval_on_failure
            else:
                interval = min(interval * 2, s.max_refresh_interval_on_failure)

    async def _get(self, url: str, timeout: float, retries: int) -> bytes:
        for _ in range(retries):
            try:
                return await self._fetch(url, timeout)
            except FetchError as err:
                log.warning("jwks: %s; retrying in %gs", err, self.settings.retry_interval)
            await asyncio.sleep(self.settings.retry_interval)
        return await self._fetch(url, timeout)

    async def _attempt(self, ref: JwksRef, retries: int) -> bool:
        demand = self._demand.get(ref)
        timeout = demand.timeout if demand is not None else JwksDemand().timeout
        try:
            uri = ref.jwks_uri
            if not uri:
                uri = parse_discovery(await self._get(ref.discovery_url, timeout, retries))
                if URL(uri).scheme not in ("http", "https"):
                    raise JwksFormatError(f"discovered jwks_uri {uri!r} is not http(s)")
            text = parse_jwks(await self._get(uri, timeout, retries))
        except (FetchError, JwksFormatError) as err:
            self._failed(ref, str(err))
            return False
        except Exception as err:
            log.exception("jwks %s: unexpected failure", ref)
            self._failed(ref, f"{type(err).__name__}: {err}")
            return False
        self._succeeded(ref, text, uri)
        return True

    def _succeeded(self, ref: JwksRef, text: str, uri: str) -> None:
        self._last_success[ref] = asyncio.get_running_loop().time()
        old = self._snapshot.result(ref)
        if old is not None and old.jwks and same_keys(old.jwks, text):
            text = old.jwks  # the same keys: keep the bytes proxies already have
        elif old is None or old.jwks != text:
            log.info("jwks %s: fetched new public keys", ref)
        self._store(ref, old, JwksResult(jwks=text, jwks_uri=uri))

    def _failed(self, ref: JwksRef, error: str) -> None:
        old = self._snapshot.result(ref)
        jwks = old.jwks if old is not None else ""
        last = self._last_success.get(ref)
        now = asyncio.get_running_loop().time()
        if jwks and last is not None and now - last >= self.settings.eviction:
            log.error("jwks %s: no successful refresh for %gs, dropping its keys", ref, now - last)
            jwks = ""
        if jwks:
            log.error("jwks %s: refresh failed, keeping the keys fetched before: %s", ref, error)
        else:
            log.error("jwks %s: fetch failed, tokens of this issuer are rejected: %s", ref, error)
        uri = old.jwks_uri if old is not None else ""
        self._store(ref, old, JwksResult(jwks=jwks, error=error, jwks_uri=uri))

    def _store(self, ref: JwksRef, old: JwksResult | None, new: JwksResult) -> None:
        if ref not in self._demand or old == new:
            return
        self._snapshot = self._snapshot.with_result(ref, new)
        if (old.jwks if old is not None else "") != new.jwks and self._on_change is not None:
            self._on_change(self._demand[ref].keys)
