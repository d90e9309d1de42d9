"""Issue 8 (2): config directory abuse with a real istiod and a real Envoy carrying traffic.

One istiod watches a config dir routing reviews → v1; one Envoy sidecar sends steady traffic to
reviews while the directory is abused: a half-written file left broken, invalid UTF-8, a
duplicate definition in another file, a VirtualService claiming the same host, a symlink loop,
a file replaced by a FIFO (as root, the way to make its open fail), a 5 MB document, and the
directory deleted. Through all of it istiod keeps running and serving the last good
VirtualService (same resourceVersion in /debug/configz), Envoy routes every request to v1, and
each problem is listed in /debug/push_status with the file and document index and logged
once. Finally the directory is re-created routing to v2, and traffic follows.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Backend
from .envoy import EnvoyProcess
from .istiod import IstiodProcess
from .mesh import (
    SERVICE_PORT,
    Bookinfo,
    configz_object,
    join_docs,
    problems,
    sidecar_options,
    wait_for_backend,
    write_config,
)
from .net import allocate_ip, wait_until
from .traffic import LoadGenerator

DUP_DOMAIN = "pilot_vservice_dup_domain"  # Istio's ProxyStatus metric for a contested host


def raw(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def reviews_version(istiod: IstiodProcess) -> str:
    obj = configz_object(istiod, "VirtualService", "default", "reviews")
    return str((obj or {}).get("metadata", {}).get("resourceVersion", ""))


def problem_about(istiod: IstiodProcess, needle: str) -> str | None:
    return next((p for p in problems(istiod) if needle in p), None)


def test_config_dir_abuse_keeps_traffic_flowing(
    tmp_path: Path,
    istiod_factory: Callable[..., IstiodProcess],
    envoy_factory: Callable[..., EnvoyProcess],
    backend_factory: Callable[..., Backend],
) -> None:
    app = Bookinfo.start(backend_factory, ("reviews-v1", "reviews-v2"))
    config = tmp_path / "config"
    config.mkdir()
    services = join_docs(app.service_entry("reviews"), app.subsets("reviews", ("v1", "v2")))
    to_v1 = app.weighted_vs("reviews", {"v1": 100, "v2": 0})
    to_v2 = app.weighted_vs("reviews", {"v1": 0, "v2": 100})
    write_config(config, "services.yaml", services)
    vs_path = write_config(config, "reviews-vs.yaml", to_v1)
    istiod = istiod_factory(config)
    ip = allocate_ip()
    envoy_factory(
        options=sidecar_options(istiod, "productpage", ip, {"app": "productpage"}, "delta")
    )
    wait_for_backend(ip, SERVICE_PORT, "reviews-v1", host="reviews")
    good_version = reviews_version(istiod)
    assert good_version and not problems(istiod)

    def still_good(needle: str) -> str:
        """The problem about `needle` is listed; the last good VirtualService is served."""
        found = wait_until(lambda: problem_about(istiod, needle), 10.0, 0.05, needle)
        assert istiod.running, istiod.log_tail()
        assert reviews_version(istiod) == good_version, found
        return found

    def restore() -> None:
        vs_path.unlink(missing_ok=True)
        write_config(config, "reviews-vs.yaml", to_v1)
        wait_until(lambda: not problems(istiod), 10.0, 0.05, f"no problems: {problems(istiod)}")

    with LoadGenerator(ip, SERVICE_PORT, rate=50, duration=30.0, host="reviews") as load:
        wait_until(lambda: len(load.samples) >= 10, 5.0, 0.02, "load running")

        # A writer that died half way through a non-atomic rewrite to v2.
        half = raw(to_v2)
        vs_path.write_text(half[: half.index("weight:") + 3])
        assert "reviews-vs.yaml[0]" in still_good("reviews-vs.yaml")
        restore()

        # Invalid UTF-8 in the document's subset name.
        vs_path.write_bytes(raw(to_v2).replace("subset: v2", "subset: v\xff").encode("latin-1"))
        assert "invalid UTF-8" in still_good("invalid UTF-8")
        restore()

        # The same VirtualService in another (later) file: the first file in path order wins.
        write_config(config, "zz-duplicate.yaml", to_v2)
        found = still_good("zz-duplicate.yaml[0]")
        assert f"the one in {vs_path}[0] is used" in found, found
        (config / "zz-duplicate.yaml").unlink()
        restore()

        # Another VirtualService for the same host: the older one keeps the host (traffic stays
        # on v1), and the contested host is listed in /debug/push_status as Istio does.
        write_config(config, "conflict.yaml", app.weighted_vs("reviews", {"v2": 100}, "rival"))
        duplicate = wait_until(
            lambda: istiod.get_json("/debug/push_status")["ProxyStatus"].get(DUP_DOMAIN),
            10.0,
            0.05,
            f"{DUP_DOMAIN} in /debug/push_status",
        )
        assert f"reviews.default.svc.cluster.local:{SERVICE_PORT}" in duplicate, duplicate

        # A symlink loop (file) and a directory that links to itself.
        (config / "loop-a.yaml").symlink_to(config / "loop-b.yaml")
        (config / "loop-b.yaml").symlink_to(config / "loop-a.yaml")
        (config / "self").symlink_to(config)
        assert "Too many levels of symbolic links" in still_good("loop-a.yaml")
        for name in ("loop-a.yaml", "loop-b.yaml", "self", "conflict.yaml"):
            (config / name).unlink()
        restore()

        # No read permission: as root, a FIFO in the file's place is what makes reading fail
        # (a blocking open would hang istiod's config loading).
        vs_path.unlink()
        os.mkfifo(vs_path)
        assert "not a regular file" in still_good("reviews-vs.yaml")
        restore()

        # A 5 MB document (Kubernetes' 256 kB annotation limit).
        pad = "x" * (5 * 1024 * 1024)
        big = raw(to_v2).replace(
            "namespace: default}", f"namespace: default, annotations: {{pad: {pad}}}}}", 1
        )
        vs_path.write_text(big)
        assert "at most 262144 bytes" in still_good("reviews-vs.yaml[0]")
        restore()

        # The directory deleted: the last good config keeps serving while it is gone.
        shutil.rmtree(config)
        assert "missing" in still_good(str(config))
        seen = len(load.samples)
        wait_until(lambda: len(load.samples) >= seen + 10, 5.0, 0.02, "traffic while gone")
        assert istiod.running

    assert not load.failures(), load.summary()
    assert set(load.backends()) == {"reviews-v1"}, load.backends()

    # Re-created (atomically, by a rename) routing to v2: picked up by itself.
    staging = tmp_path / "staging"
    staging.mkdir()
    write_config(staging, "services.yaml", services)
    write_config(staging, "reviews-vs.yaml", to_v2)
    start = time.monotonic()
    staging.rename(config)
    wait_for_backend(ip, SERVICE_PORT, "reviews-v2", host="reviews")
    print(f"re-created config dir routed after {time.monotonic() - start:.2f}s")
    assert not problems(istiod)

    # Every problem was logged once, not on every rescan.
    lines = [
        line.split("config rejected: ", 1)[1]
        for line in istiod.log_path.read_text(errors="replace").splitlines()
        if "config rejected: " in line
    ]
    repeated: dict[Any, int] = {k: n for k, n in Counter(lines).items() if n > 1}
    assert len(lines) >= 7 and not repeated, repeated
