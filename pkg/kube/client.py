"""The one door to the official `kubernetes` client (import-linter and ruff enforce it).

`KubeClient` owns one `ApiClient` bound to an API server (a URL, or a kubeconfig file) and
hands out the typed API groups pyistio uses. Everything else in pyistio (and the tests) imports
the client's classes from here, so a client upgrade touches one module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes.client as _k  # noqa: TID251 - this module is the sanctioned import point
import kubernetes.config as _kconfig  # noqa: TID251
import kubernetes.config.incluster_config as _kincluster  # noqa: TID251
import kubernetes.dynamic as _kdynamic  # noqa: TID251
import kubernetes.watch as _kwatch  # noqa: TID251

ApiException: type[Exception] = _k.ApiException
Watch: Any = _kwatch.Watch
_DynamicClient: Any = _kdynamic.DynamicClient
_new_client_from_config: Any = _kconfig.new_client_from_config
_InClusterConfigLoader: Any = _kincluster.InClusterConfigLoader
models: Any = _k.models

# Watch event types and the HTTP code of an expired resourceVersion.
ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"
GONE = 410
# Where Kubernetes mounts a pod's service-account token and the cluster CA.
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
SERVICE_HOST_ENV = "KUBERNETES_SERVICE_HOST"
CONFLICT = 409


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an `ApiException`, else None."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


@dataclass(frozen=True, slots=True)
class KubeClient:
    """Typed entry points of one API server connection."""

    api_client: Any

    @classmethod
    def for_url(cls, url: str, *, token: str = "", verify_ssl: bool = True) -> KubeClient:
        """A client for `url` (e.g. "http://127.0.0.1:6443"), optionally with a bearer token."""
        conf = _k.Configuration(host=url.rstrip("/"))
        conf.verify_ssl = verify_ssl
        if token:
            conf.api_key = {"authorization": token}
            conf.api_key_prefix = {"authorization": "Bearer"}
        return cls(_k.ApiClient(conf))

    @classmethod
    def from_kubeconfig(cls, path: str, context: str | None = None) -> KubeClient:
        """A client for the cluster of `context` (default: current) in the kubeconfig at `path`."""
        return cls(_new_client_from_config(config_file=path, context=context))

    @classmethod
    def in_cluster(
        cls,
        *,
        token_path: str = SERVICE_ACCOUNT_TOKEN,
        ca_path: str = SERVICE_ACCOUNT_CA,
        environ: Mapping[str, str] | None = None,
    ) -> KubeClient:
        """A client for the cluster this pod runs in: `https://$KUBERNETES_SERVICE_HOST:
        $KUBERNETES_SERVICE_PORT`, the pod's service-account token (re-read every minute, so
        a rotated projected token is picked up) and the cluster CA. Raises with the reason
        when not in a pod (no service host, no token file, ...)."""
        conf = _k.Configuration()
        loader = _InClusterConfigLoader(
            token_filename=token_path,
            cert_filename=ca_path,
            environ=os.environ if environ is None else environ,
        )
        loader.load_and_set(conf)
        return cls(_k.ApiClient(conf))

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    def core(self) -> Any:
        return _k.CoreV1Api(self.api_client)

    def custom(self) -> Any:
        return _k.CustomObjectsApi(self.api_client)

    def discovery(self) -> Any:
        return _k.DiscoveryV1Api(self.api_client)

    def coordination(self) -> Any:
        return _k.CoordinationV1Api(self.api_client)

    def authentication(self) -> Any:
        return _k.AuthenticationV1Api(self.api_client)

    def admissionregistration(self) -> Any:
        return _k.AdmissionregistrationV1Api(self.api_client)

    def apis(self) -> Any:
        return _k.ApisApi(self.api_client)

    def core_versions(self) -> Any:
        return _k.CoreApi(self.api_client)

    def dynamic(self) -> Any:
        """A `DynamicClient` (runs API discovery now)."""
        return _DynamicClient(self.api_client)

    def watch(self) -> Any:
        """A new `kubernetes.watch.Watch` (one per stream)."""
        return Watch()

    def close(self) -> None:
        self.api_client.close()
