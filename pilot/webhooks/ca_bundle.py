"""Keep `caBundle` of istiod's webhook configurations equal to the mesh root (Kubernetes mode).

Kubernetes checks the webhook's serving certificate (issued by our CA) against each webhook's
`clientConfig.caBundle`; istiod writes it — as Istio's webhook controllers do — on start and
whenever the trust bundle changes, with one JSON patch per configuration. The validating
configuration is also switched to `failurePolicy: Fail` once its caBundle is in (the manifest
ships `Ignore`, as Istio's chart does on a fresh install). A failed or missing configuration
is retried with backoff until it succeeds.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from typing import Any

from pkg.kube.client import KubeClient, status_of

log = logging.getLogger(__name__)

VALIDATING = "istio-validator-istio-system"
MUTATING = "istio-sidecar-injector"
RETRY_MIN = 0.5
RETRY_MAX = 30.0


def bundle_patch(webhooks: list[Any], bundle_b64: str, fail_closed: bool) -> list[dict[str, Any]]:
    """JSON patch ops setting every webhook's caBundle (and failurePolicy Fail)."""
    ops: list[dict[str, Any]] = []
    for i, hook in enumerate(webhooks):
        config = hook.client_config
        if config is None or config.ca_bundle != bundle_b64:
            op = "replace" if config is not None and config.ca_bundle else "add"
            ops.append({"op": op, "path": f"/webhooks/{i}/clientConfig/caBundle",
                        "value": bundle_b64})  # fmt: skip
        if fail_closed and hook.failure_policy != "Fail":
            ops.append({"op": "add", "path": f"/webhooks/{i}/failurePolicy", "value": "Fail"})
    return ops


class CaBundlePatcher:
    """`run()` patches whenever `changed()` was called (and once at start)."""

    def __init__(
        self,
        kube: KubeClient,
        trust_bundle: Callable[[], bytes],
        validating: str = VALIDATING,
        mutating: str = MUTATING,
    ) -> None:
        self._kube = kube
        self._trust_bundle = trust_bundle
        self._validating = validating
        self._mutating = mutating
        self._dirty = asyncio.Event()
        self._dirty.set()
        self.patched = 0  # successful passes (for tests and logs)

    def changed(self) -> None:
        """The trust bundle changed (call from the event loop)."""
        self._dirty.set()

    async def run(self) -> None:
        delay = RETRY_MIN
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await asyncio.to_thread(self.patch_once)
            except Exception as e:  # API server down, config not yet created, ...
                log.warning("webhook caBundle not updated (retrying in %.1fs): %s", delay, e)
                self._dirty.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_MIN
            self.patched += 1

    def patch_once(self) -> None:
        """Both configurations, synchronously (raises when either cannot be patched)."""
        bundle = base64.b64encode(self._trust_bundle()).decode()
        api = self._kube.admissionregistration()
        errors: list[str] = []
        for name, read, patch, fail_closed in (
            (self._validating, api.read_validating_webhook_configuration,
             api.patch_validating_webhook_configuration, True),
            (self._mutating, api.read_mutating_webhook_configuration,
             api.patch_mutating_webhook_configuration, False),
        ):  # fmt: skip
            try:
                current = read(name)
                ops = bundle_patch(list(current.webhooks or []), bundle, fail_closed)
                if ops:
                    patch(name, ops)
                    log.info("webhook configuration %s: caBundle updated", name)
            except Exception as e:
                status = status_of(e)
                errors.append(f"{name}: {'not found' if status == 404 else e}")
        if errors:
            raise RuntimeError("; ".join(errors))
