"""Fixtures for end-to-end tests: factories that start real processes and clean them up.

Every test under tests/e2e is marked `e2e` automatically (`-m "not e2e"` skips them).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from istioctl.bootstrap import BootstrapOptions

from .backend import Backend, TcpEcho
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .net import allocate_ip

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def loopback_ip() -> str:
    """A loopback IP of this test's own (127.0.B.H, unique across test processes)."""
    return allocate_ip()


EnvoyFactory = Callable[..., EnvoyProcess]


@pytest.fixture
def envoy_factory(tmp_path: Path) -> Iterator[EnvoyFactory]:
    """`envoy_factory(bootstrap=None, *, options=None, name=None, wait_live=True,
    live_timeout=10.0, **EnvoyProcess kwargs)` → a started EnvoyProcess.

    Give either a bootstrap dict (e.g. `static_http_bootstrap(...)`; its admin port should be
    0) or `options` (BootstrapOptions, built by `istioctl bootstrap`'s builder; a secure one
    also needs `secure=SecureMaterial`, see security_helpers.fetch_material).
    """
    started: list[EnvoyProcess] = []
    counter = itertools.count(1)

    def factory(
        bootstrap: Mapping[str, Any] | None = None,
        *,
        options: BootstrapOptions | None = None,
        name: str | None = None,
        wait_live: bool = True,
        live_timeout: float = 10.0,
        **kwargs: Any,
    ) -> EnvoyProcess:
        if (bootstrap is None) == (options is None):
            raise TypeError("give exactly one of bootstrap= or options=")
        label = name or (f"{options.name}.{options.namespace}" if options else "envoy")
        workdir = tmp_path / f"envoy-{next(counter)}-{label}"
        if options is not None:
            envoy = EnvoyProcess.for_proxy(options, workdir, name=label, **kwargs)
        else:
            assert bootstrap is not None
            envoy = EnvoyProcess(bootstrap, workdir, name=label, **kwargs)
        started.append(envoy)
        envoy.start()
        if wait_live:
            envoy.wait_live(live_timeout)
        return envoy

    yield factory
    for envoy in reversed(started):
        envoy.stop()


@pytest.fixture
def backend_factory() -> Iterator[Callable[..., Backend]]:
    """`backend_factory(name, ip=None, port=0, **Backend kwargs)` → a started Backend
    (ip None → a fresh loopback IP)."""
    started: list[Backend] = []

    def factory(name: str, ip: str | None = None, port: int = 0, **kwargs: Any) -> Backend:
        backend = Backend(name, ip or allocate_ip(), port, **kwargs).start()
        started.append(backend)
        return backend

    yield factory
    for backend in reversed(started):
        backend.stop()


@pytest.fixture
def tcp_echo_factory() -> Iterator[Callable[..., TcpEcho]]:
    """`tcp_echo_factory(name, ip=None, port=0)` → a started TcpEcho."""
    started: list[TcpEcho] = []

    def factory(name: str, ip: str | None = None, port: int = 0) -> TcpEcho:
        echo = TcpEcho(name, ip or allocate_ip(), port).start()
        started.append(echo)
        return echo

    yield factory
    for echo in reversed(started):
        echo.stop()


@pytest.fixture
def istiod_factory(tmp_path: Path) -> Iterator[Callable[..., IstiodProcess]]:
    """`istiod_factory(config_dir=None, *, start_timeout=30.0, **IstiodProcess kwargs)` → a
    started (ready) istiod; config dir defaults to a fresh tmp dir (see `.config_dirs[0]`)."""
    started: list[IstiodProcess] = []
    counter = itertools.count(1)

    def factory(
        config_dir: Path | None = None, *, start_timeout: float = 30.0, **kwargs: Any
    ) -> IstiodProcess:
        workdir = tmp_path / f"istiod-{next(counter)}"
        if config_dir is not None:
            kwargs["config_dirs"] = [config_dir]
        istiod = IstiodProcess(workdir, **kwargs)
        started.append(istiod)
        return istiod.start(start_timeout)

    yield factory
    for istiod in reversed(started):
        istiod.stop()
