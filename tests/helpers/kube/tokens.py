"""TokenReview for the fake API server: the test says which tokens are valid for whom."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# What the API server checks a token against when the review names no audiences.
DEFAULT_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)


@dataclass(frozen=True, slots=True)
class _Identity:
    namespace: str
    service_account: str
    audiences: tuple[str, ...]


class TokenRegistry:
    """Registered service-account tokens; `review` answers an authentication.k8s.io/v1 body."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Identity] = {}

    def register(
        self, token: str, namespace: str, service_account: str, audiences: tuple[str, ...]
    ) -> None:
        self._tokens[token] = _Identity(namespace, service_account, audiences)

    def review(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("spec") or {}
        wanted = tuple(spec.get("audiences") or ()) or DEFAULT_AUDIENCES
        status: dict[str, Any] = {"authenticated": False, "user": {}}
        found = self._tokens.get(spec.get("token", ""))
        common = [a for a in wanted if found and a in found.audiences]
        if found is None:
            status["error"] = "[invalid bearer token, token lookup failed]"
        elif not common:
            status["error"] = (
                f"[invalid bearer token, token audiences {json.dumps(list(found.audiences))} "
                f"is invalid for the target audiences {json.dumps(list(wanted))}]"
            )
        else:
            ns, sa = found.namespace, found.service_account
            status = {
                "authenticated": True,
                "user": {
                    "username": f"system:serviceaccount:{ns}:{sa}",
                    "uid": f"uid-{ns}-{sa}",
                    "groups": [
                        "system:serviceaccounts",
                        f"system:serviceaccounts:{ns}",
                        "system:authenticated",
                    ],
                },
                "audiences": common,
            }
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": status,
        }
