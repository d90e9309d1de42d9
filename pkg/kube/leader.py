"""Leader election with a `coordination.k8s.io/v1` Lease (client-go's leaderelection, in short).

Replicas of one program share a Lease; the one named in `spec.holderIdentity` is the leader
and keeps `spec.renewTime` fresh. The others take the Lease over only when they have seen the
same record, unchanged, for `lease_duration` on their own clock (never by comparing
timestamps written by another machine: clocks differ). Every write is an update conditioned on
the `resourceVersion` just read, so of two replicas racing for the Lease exactly one wins
(the other gets 409 Conflict, or 409 AlreadyExists for the first create).

Timing as Istio's (pilot/pkg/leaderelection): lease 30 s, renew deadline lease/2, retry
lease/4. A leader that cannot renew within the renew deadline stops leading (its duties end
before another replica may take over); `release()` (graceful shutdown) empties
`holderIdentity` so another replica takes over at its next try instead of waiting out the
lease, like client-go's ReleaseOnCancel.

The client is blocking: every call runs in a worker thread (`asyncio.to_thread`); the
election loop and the callbacks run on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pkg.kube.client import CONFLICT, KubeClient, status_of

log = logging.getLogger(__name__)

NOT_FOUND = 404
DEFAULT_LEASE_DURATION = 30.0  # seconds, Istio's ttl


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    lease_duration: float = DEFAULT_LEASE_DURATION

    @property
    def renew_deadline(self) -> float:
        return self.lease_duration / 2

    @property
    def retry_period(self) -> float:
        return self.lease_duration / 4

    def __post_init__(self) -> None:
        if self.lease_duration <= 0:
            raise ValueError(f"lease duration must be positive, not {self.lease_duration}")


class LeaderElector:
    """Competes for Lease `namespace/name` as `identity`; `is_leader` tells the outcome.

    `on_change(leading)` is called on the event loop each time leadership is gained or lost.
    """

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        timing: LeaseTiming | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not identity:
            raise ValueError("a leader election identity (the replica's name) is required")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self._on_change = on_change
        self._clock = clock
        self._leading = False
        self._observed: tuple[str, str, str] | None = None  # holder, renewTime, rv
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self.changed = asyncio.Event()  # set on every leadership change (tests, waiters)
        self.transitions = 0

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def holder(self) -> str:
        """The holder seen in the Lease at the last try ("" when none yet)."""
        return self._observed[0] if self._observed is not None else ""

    async def run(self) -> None:
        """Try to acquire or renew every retry period, until cancelled."""
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.timing.retry_period)
        finally:
            if self._leading:
                self._set_leading(False)

    async def step(self) -> bool:
        """One try; whether this replica leads afterwards."""
        try:
            ok = await asyncio.to_thread(self._try_acquire_or_renew)
        except Exception as e:  # API server down, bad answer: keep the old state for now
            log.warning("leader election %s/%s: %s", self.namespace, self.name, e)
            ok = False
        now = self._clock()
        if ok:
            self._renewed_at = now
            self._set_leading(True)
        elif self._leading and now - self._renewed_at >= self.timing.renew_deadline:
            log.warning("leader election %s/%s: could not renew within %.1fs; stepping down",
                        self.namespace, self.name, self.timing.renew_deadline)  # fmt: skip
            self._set_leading(False)
        elif self._leading and self.holder and self.holder != self.identity:
            self._set_leading(False)
        return self._leading

    async def release(self) -> None:
        """Give the Lease up (graceful shutdown): another replica takes it at its next try.
        Also after `run()` was cancelled (which ends leading but cannot write)."""
        self._set_leading(False)
        if self.holder != self.identity:
            return
        try:
            await asyncio.to_thread(self._release)
        except Exception as e:
            log.warning("leader election %s/%s: release failed: %s", self.namespace, self.name, e)

    # ---- in a worker thread --------------------------------------------------------------

    def _read(self) -> dict[str, Any] | None:
        api = self.kube.coordination()
        try:
            resp = api.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
        except Exception as e:
            if status_of(e) == NOT_FOUND:
                return None
            raise
        lease: dict[str, Any] = json.loads(resp.data)
        return lease

    def _spec(self, acquire: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timing.lease_duration)),
            "acquireTime": acquire,
            "renewTime": micro_time(datetime.now(UTC)),
            "leaseTransitions": transitions,
        }

    def _try_acquire_or_renew(self) -> bool:
        api = self.kube.coordination()
        now_text = micro_time(datetime.now(UTC))
        lease = self._read()
        if lease is None:
            spec0 = self._spec(now_text, 0)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec0,
            }
            try:
                api.create_namespaced_lease(self.namespace, body, _preload_content=False)
            except Exception as e:
                if status_of(e) == CONFLICT:  # another replica created it first
                    return False
                raise
            self._observe(self.identity, spec0["renewTime"], "")
            return True
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        holder = str(spec.get("holderIdentity") or "")
        renew = str(spec.get("renewTime") or "")
        self._observe(holder, renew, str(meta.get("resourceVersion", "")))
        if holder and holder != self.identity:
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            if self._clock() - self._observed_at < duration:
                return False  # held, and renewed recently as far as we can tell
            log.info("leader election %s/%s: %s stopped renewing; taking over",
                     self.namespace, self.name, holder)  # fmt: skip
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(str(spec.get("acquireTime") or now_text), transitions)
        else:
            new_spec = self._spec(now_text, transitions + 1)
        body = {**lease, "spec": new_spec}
        try:
            api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False)
        except Exception as e:
            if status_of(e) == CONFLICT:  # someone else wrote it since we read it
                return False
            raise
        self._observe(self.identity, new_spec["renewTime"], "")
        return True

    def _observe(self, holder: str, renew: str, rv: str) -> None:
        record = (holder, renew, rv)
        if self._observed is None or self._observed[:2] != record[:2]:
            self._observed_at = self._clock()
        self._observed = record

    def _release(self) -> None:
        lease = self._read()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = dict(lease.get("spec") or {})
        spec.update(holderIdentity="", leaseDurationSeconds=1,
                    renewTime=micro_time(datetime.now(UTC)))  # fmt: skip
        api = self.kube.coordination()
        try:
            api.replace_namespaced_lease(
                self.name, self.namespace, {**lease, "spec": spec}, _preload_content=False
            )
        except Exception as e:
            if status_of(e) != CONFLICT:
                raise

    # ---- on the event loop ---------------------------------------------------------------

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self.transitions += 1
        log.info("leader election %s/%s: %s %s", self.namespace, self.name, self.identity,
                 "is now the leader" if leading else "is no longer the leader")  # fmt: skip
        self.changed.set()
        self.changed = asyncio.Event()
        if self._on_change is not None:
            try:
                self._on_change(leading)
            except Exception:
                log.exception("leader election callback failed")
