"""--check: a bounded set of requests and edits that prove the running mesh routes as
examples/ say."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

from .base import SERVICE_PORT, DemoError, say
from .mesh import Mesh
from .procs import tool, wait_for
from .web import Reply, http_get


@dataclass
class Checks:
    results: list[tuple[bool, str]] = field(default_factory=list)

    def record(self, ok: bool, text: str) -> None:
        self.results.append((ok, text))
        say(f"  {'ok  ' if ok else 'FAIL'}  {text}")

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(ok for ok, _ in self.results)


def reviews_version(reply: Reply) -> str:
    if reply.status != 200:
        return f"HTTP {reply.status}"
    body = reply.json()
    reviews = body.get("reviews", {})
    if "error" in reviews:
        return "error"
    return str(reviews.get("version", "?"))


def run_checks(mesh: Mesh, requests: int) -> Checks:
    checks = Checks()
    # 1. the gateway serves the product page, every hop answered
    reply = mesh.productpage()
    body = reply.json() if reply.status == 200 else {}
    trace = body.get("trace", "")
    ok = reply.status == 200 and "details-v1" in trace and "reviews-v" in trace
    checks.record(ok, f"gateway GET /productpage -> {reply.status}: {trace or reply.body[:200]!r}")

    # 2. the 80/20 split, and v3 calls ratings (red stars)
    counts: Counter[str] = Counter()
    stars_ok = True
    for _ in range(requests):
        reply = mesh.productpage()
        version = reviews_version(reply)
        counts[version] += 1
        if version == "v3":
            ratings = [r.get("rating", {}) for r in reply.json()["reviews"]["reviews"]]
            stars_ok &= all(r.get("color") == "red" and r.get("stars") for r in ratings)
    v1, v3 = counts["v1"] / requests, counts["v3"] / requests
    split = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
    ok = set(counts) <= {"v1", "v3"} and 0.68 <= v1 <= 0.90 and 0.10 <= v3 <= 0.32
    checks.record(ok, f"{requests} requests: reviews {split} (want ~80% v1 / ~20% v3, no v2)")
    checks.record(stars_ok and counts["v3"] > 0, "reviews v3 -> ratings: red stars")

    # 3. jason → v2 (black stars)
    jason: Counter[str] = Counter()
    black = True
    for _ in range(20):
        reply = mesh.productpage(headers={"end-user": "jason"})
        version = reviews_version(reply)
        jason[version] += 1
        if version == "v2":
            ratings = [r.get("rating", {}) for r in reply.json()["reviews"]["reviews"]]
            black &= all(r.get("color") == "black" and r.get("stars") for r in ratings)
    got = ", ".join(f"{k} {n}" for k, n in sorted(jason.items()))
    checks.record(
        jason["v2"] == 20 and black,
        f"end-user: jason x20 -> reviews {got} (want all v2, black stars)",
    )

    # 4. unknown host and unrouted path → 404
    reply = mesh.productpage(host="nope.example.com")
    checks.record(reply.status == 404, f"Host: nope.example.com -> {reply.status} (want 404)")
    reply = mesh.productpage(path="/nothing-here")
    checks.record(reply.status == 404, f"GET /nothing-here -> {reply.status} (want 404)")

    # 5. the Sidecar resource: productpage's proxy knows reviews, and refuses ratings
    pp = next((e for e in mesh.sidecars if e.labels.get("app") == "productpage"), None)
    if pp is not None:
        known = http_get(pp.ip, SERVICE_PORT, "/", {"Host": "reviews"})
        refused = http_get(pp.ip, SERVICE_PORT, "/", {"Host": "ratings"})
        checks.record(
            known.status == 200 and refused.status == 502,
            f"productpage's sidecar: Host reviews -> {known.status} (want 200), "
            f"Host ratings -> {refused.status} (want 502, REGISTRY_ONLY)",
        )

    # 6. istiod's debug view has every proxy
    try:
        text = mesh.istiod.get("/debug/syncz").body.decode("utf-8", "replace")
        missing = [e.proxy_id for e in mesh.envoys if e.proxy_id not in text]
        checks.record(
            not missing,
            f"/debug/syncz lists all {len(mesh.envoys)} proxies"
            + (f" (missing {missing})" if missing else ""),
        )
    except OSError as err:
        checks.record(False, f"/debug/syncz: {err}")

    # 7. every proxy got its SPIFFE certificate over SDS (secure bootstrap, token identity)
    missing = [e.proxy_id for e in mesh.envoys if e.spiffe_id() not in e.certificate_uris()]
    checks.record(
        not missing,
        f"every proxy holds its SPIFFE certificate (e.g. {mesh.gateway.spiffe_id()})"
        + (f"; missing on {missing}" if missing else ""),
    )

    # 8. the files validate (what the README tells users to run before editing)
    result = subprocess.run(
        [*tool("istioctl"), "validate", "-f", str(mesh.config_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = (result.stderr or result.stdout).strip().replace("\n", "; ")
    checks.record(
        result.returncode == 0,
        f"istioctl validate -f <config dir> -> exit {result.returncode}"
        + (f": {problems}" if result.returncode else ""),
    )

    # 9. a live edit of the config directory takes effect (reviews → 100% v3)
    checks.record(*live_edit(mesh))
    return checks


def live_edit(mesh: Mesh) -> tuple[bool, str]:
    path = mesh.config_dir / "virtual-services.yaml"
    original = path.read_text(encoding="utf-8")
    edited = re.sub(r"(subset: v1\}\n\s+weight: )80", r"\g<1>0", original)
    edited = re.sub(r"(subset: v3\}\n\s+weight: )20", r"\g<1>100", edited)
    if edited == original:
        return False, "live edit: could not find the reviews weights 80/20 to flip"
    path.write_text(edited, encoding="utf-8")
    started = time.monotonic()

    def all_v3() -> bool:
        return all(reviews_version(mesh.productpage()) == "v3" for _ in range(10))

    try:
        wait_for("reviews to move to 100% v3", all_v3, 15.0, mesh.istiod.logs, interval=0.2)
    except DemoError as err:
        return False, f"live edit reviews -> 100% v3: {str(err).splitlines()[0]}"
    took = time.monotonic() - started
    return True, f"live edit of virtual-services.yaml (reviews -> 100% v3) served in {took:.1f}s"
