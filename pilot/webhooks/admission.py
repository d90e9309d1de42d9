"""AdmissionReview v1 in, AdmissionReview out: the two admission decisions, as pure functions.

- `validate_review`: Istio's validation webhook (pkg/webhooks/validation/server). Only CREATE
  and UPDATE are checked (DELETE and CONNECT are allowed); the object goes through the very
  validation `istioctl validate` uses (`pkg.config.schema.parse_object`), and a denial's
  `status.message` is Istio's `configuration is invalid: ...` followed by every error as
  `<kind>/<namespace>/<name>: <field path>: <reason>`. Kinds pyistio does not serve outside
  the istio.io groups are allowed; unknown istio.io kinds are denied (`unrecognized type`).
- `inject_review`: Istio's injection webhook: a Pod CREATE gets a base64 JSONPatch adding the
  sidecar when the policy says so; everything else is allowed untouched.

`webhook_app` serves both as Istio's webhook servers do: a body that is not JSON → 415 when
the content type is not `application/json`, 400 when it does not decode or is not an
AdmissionReview request (with the reason); otherwise 200 with the answer carrying the `uid`.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pkg.config.schema import parse_object
from pkg.inject.policy import NAMESPACE_LABEL, decide
from pkg.inject.sidecar import InjectionSettings, inject, json_patch

log = logging.getLogger(__name__)

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
CHECKED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
# When Kubernetes calls /inject, the webhook's namespaceSelector has already chosen the
# namespace: without a namespace lookup it is taken as enabled (the pod's own opt-out stays).
SELECTED_NAMESPACE: Mapping[str, str] = {NAMESPACE_LABEL: "enabled"}

NamespaceLabels = Callable[[str], Mapping[str, str] | None]


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 request (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Request:
    uid: str
    operation: str
    namespace: str
    kind: str
    obj: Any
    dry_run: bool


def parse_review(body: Any) -> Request:
    if not isinstance(body, dict):
        raise BadReview("expected an AdmissionReview object")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != KIND:
        raise BadReview(
            f"expected apiVersion {API_VERSION} kind {KIND}, got "
            f"{body.get('apiVersion')!r} {body.get('kind')!r}"
        )
    request = body.get("request")
    if not isinstance(request, dict):
        raise BadReview("request: Required value")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid: Required value")
    kind = request.get("kind")
    return Request(
        uid=uid,
        operation=str(request.get("operation", "")),
        namespace=str(request.get("namespace") or ""),
        kind=str(kind.get("kind", "")) if isinstance(kind, dict) else "",
        obj=request.get("object"),
        dry_run=request.get("dryRun") is True,
    )


def review(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def allowed(uid: str, warnings: list[str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if warnings:
        response["warnings"] = warnings
    return review(response)


def denied(uid: str, message: str) -> dict[str, Any]:
    return review({"uid": uid, "allowed": False, "status": {"message": message}})


def validate_review(request: Request) -> dict[str, Any]:
    if request.operation not in CHECKED_OPERATIONS:
        return allowed(request.uid)
    if not isinstance(request.obj, dict):
        return denied(request.uid, "cannot decode configuration: request.object is not an object")
    parsed = parse_object(request.obj, default_namespace=request.namespace or "default")
    if parsed.ignored:
        return allowed(request.uid)
    if parsed.errors:
        first = parsed.errors[0]
        if first.path == "apiVersion" and "unsupported" in first.reason:
            return denied(request.uid, f"unrecognized type {first.kind}: {first.reason}")
        return denied(
            request.uid,
            "configuration is invalid: " + "; ".join(str(e) for e in parsed.errors),
        )
    return allowed(request.uid, [str(w) for w in parsed.warnings])


def inject_review(
    request: Request,
    settings: InjectionSettings,
    namespace_labels: NamespaceLabels | None = None,
) -> dict[str, Any]:
    if request.kind != "Pod" or request.operation != "CREATE" or not isinstance(request.obj, dict):
        return allowed(request.uid)
    pod = request.obj
    namespace = request.namespace or str(pod.get("metadata", {}).get("namespace") or "default")
    labels = namespace_labels(namespace) if namespace_labels is not None else None
    decision = decide(pod, namespace, SELECTED_NAMESPACE if labels is None else labels)
    if not decision.inject:
        return allowed(request.uid)
    injected = inject(pod, settings)
    patch = json.dumps(json_patch(pod, injected), separators=(",", ":")).encode()
    return review(
        {
            "uid": request.uid,
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(patch).decode(),
        }
    )


# ---- the HTTP application --------------------------------------------------------------

MAX_BODY = 8 * 1024 * 1024  # Kubernetes objects are at most ~1.5 MiB; reviews carry two


def webhook_app(
    settings: InjectionSettings, namespace_labels: NamespaceLabels | None = None
) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def validate(request: web.Request) -> web.Response:
        return await _serve(request, validate_review)

    async def inject(request: web.Request) -> web.Response:
        return await _serve(request, lambda r: inject_review(r, settings, namespace_labels))

    app.router.add_post("/validate", validate)
    app.router.add_post("/inject", inject)
    return app


async def _serve(request: web.Request, decide: Callable[[Request], dict[str, Any]]) -> web.Response:
    if request.content_type != "application/json":
        return web.Response(
            status=415,
            text=f"{request.path}: invalid Content-Type {request.content_type!r}, "
            "want application/json\n",
        )
    try:
        body = json.loads(await request.read())
        review = parse_review(body)
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError and BadReview too
        reason = str(e) if isinstance(e, BadReview) else f"body is not JSON: {e}"
        return web.Response(status=400, text=f"{request.path}: could not decode body: {reason}\n")
    answer = decide(review)
    response = answer["response"]
    log.debug("%s %s %s/%s uid=%s allowed=%s", request.path, review.operation, review.kind,
              review.namespace, review.uid, response["allowed"])  # fmt: skip
    return web.json_response(answer)
