"""(F) Istio's Bookinfo traffic samples, each applied to a Bookinfo mesh, behave as Istio's docs
describe (Request Routing, Fault Injection, Traffic Shifting, the Bookinfo getting-started and
the mutual TLS variant of the DestinationRules).

One istiod, the gateway and ten secure sidecars serve the whole module (tests/e2e/bookinfo.py).
Every test sets the whole sample state it needs with `mesh.use(...)` — the gateway, a
DestinationRule file, then its samples in the order the docs apply them — and waits until every
sidecar holds it, so tests do not depend on each other's order. The samples are read in place
from ../shared/conformance/bookinfo/networking/.

egress-rule-google-apis.yaml is not applied here: its ServiceEntry resolves www.googleapis.com
by DNS, which a loopback-only test cannot serve.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .bookinfo import SAMPLES, BookinfoMesh, bookinfo_mesh
from .bookinfo_apps import DETAILS_ERROR, RATINGS_ERROR, REVIEWS_ERROR, SERVICE_PORT
from .net import wait_until
from .traffic import request

ALL_V1 = "virtual-service-all-v1.yaml"
TEST_V2 = "virtual-service-reviews-test-v2.yaml"
REVIEWS_API = "/api/v1/products/0/reviews"
STARS = {"reviews-v1": None, "reviews-v2": "black", "reviews-v3": "red"}


def spiffe(namespace: str, service_account: str) -> str:
    return f"spiffe://cluster.local/ns/{namespace}/sa/{service_account}"


GATEWAY_ID = spiffe("istio-system", "istio-ingressgateway-service-account")
PRODUCTPAGE_ID = spiffe("default", "bookinfo-productpage")
REVIEWS_ID = spiffe("default", "bookinfo-reviews")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BookinfoMesh]:
    with bookinfo_mesh(tmp_path_factory.mktemp("bookinfo")) as m:
        yield m


def served(pages: list[Any], part: str = "reviews") -> Counter[str]:
    return Counter(str(p[part]["served_by"]) if part else str(p["served_by"]) for p in pages)


def colors(reviews: dict[str, Any]) -> set[str | None]:
    return {(r.get("rating") or {}).get("color") for r in reviews["reviews"]}


def assert_stars_match_version(reviews: dict[str, Any]) -> None:
    """v1 shows no stars; v2 black and v3 red ones, 5 and 4 from ratings."""
    version = reviews["served_by"]
    if STARS[version] is None:
        assert all("rating" not in r for r in reviews["reviews"]), reviews
    else:
        assert colors(reviews) == {STARS[version]}, reviews
        assert [r["rating"]["stars"] for r in reviews["reviews"]] == [5, 4], reviews


NOT_APPLIED = {"egress-rule-google-apis.yaml"}  # DNS resolution of www.googleapis.com


def test_every_sample_is_exercised() -> None:
    """Each file of the samples folder is named by a test below or by BookinfoMesh.use's
    defaults (or listed in NOT_APPLIED with the reason): a sample added to the folder is not
    silently left out."""
    present = {p.name for p in SAMPLES.glob("*.yaml")}
    assert present, f"no Bookinfo samples at {SAMPLES}"
    here = Path(__file__).resolve().parent
    files = (here / "test_bookinfo_samples.py", here / "bookinfo.py")  # bookinfo.py: defaults
    source = "".join(f.read_text(encoding="utf-8") for f in files)
    applied = {name for name in present if f'"{name}"' in source}
    assert present - NOT_APPLIED == applied - NOT_APPLIED, sorted(present - applied)


def test_bookinfo_gateway(mesh: BookinfoMesh) -> None:
    """bookinfo-gateway: its five URI matches reach productpage, anything else is a 404; with
    no VirtualService for reviews every version answers (stars come and go on refresh)."""
    mesh.use()
    for path in ("/productpage", "/static/tailwind/tailwind.css", "/api/v1/products"):
        resp = mesh.page(path)
        assert resp.status == 200, (path, resp.status, resp.body[:200])
        assert resp.json()["served_by"] == "productpage-v1"
        assert resp.json()["peer"] == GATEWAY_ID  # gateway → productpage over mTLS
    cookie = mesh.login("jason")
    logout = mesh.page("/logout", cookie=cookie)
    assert logout.status == 302 and "Max-Age=0" in logout.headers["set-cookie"], logout.headers
    before = len(mesh.app("productpage-v1").seen)
    for path in ("/", "/health", "/productpage/extra", "/loginx"):
        assert mesh.page(path).status == 404, path
    assert len(mesh.app("productpage-v1").seen) == before  # the gateway answered those

    pages = mesh.pages(30)
    versions = served(pages)
    assert set(versions) == {"reviews-v1", "reviews-v2", "reviews-v3"}, versions
    for page in pages:
        assert_stars_match_version(page["reviews"])
        assert page["details"]["peer"] == PRODUCTPAGE_ID
        assert page["reviews"]["peer"] == PRODUCTPAGE_ID


def test_destination_rule_all_mtls(mesh: BookinfoMesh) -> None:
    """destination-rule-all-mtls: clusters switch to an explicit ISTIO_MUTUAL transport socket
    (waited for in every sidecar) and every hop still answers, with the caller's identity."""
    mesh.use(ALL_V1, "virtual-service-reviews-v3.yaml", dr="destination-rule-all-mtls.yaml")
    for page in mesh.pages(10):
        assert page["peer"] == GATEWAY_ID
        assert page["details"]["served_by"] == "details-v1"
        assert page["details"]["peer"] == PRODUCTPAGE_ID
        assert page["reviews"]["served_by"] == "reviews-v3"
        assert page["reviews"]["peer"] == PRODUCTPAGE_ID
        assert page["reviews"]["ratings_by"] == "ratings-v1"
        assert page["reviews"]["ratings_peer"] == REVIEWS_ID
        assert_stars_match_version(page["reviews"])


def test_virtual_service_all_v1(mesh: BookinfoMesh) -> None:
    """Request routing, step 1: every service on v1 — no stars, whoever is logged in."""
    mesh.use(ALL_V1)
    jason = mesh.login("jason")
    for cookie in ("", jason):
        pages = mesh.pages(20, cookie=cookie)
        assert served(pages) == {"reviews-v1": 20}
        assert served(pages, "details") == {"details-v1": 20}
        for page in pages:
            assert_stars_match_version(page["reviews"])


def test_virtual_service_reviews_test_v2(mesh: BookinfoMesh) -> None:
    """Request routing, step 2: jason sees reviews v2 (black stars), everyone else v1; after
    logout jason is anonymous again."""
    mesh.use(ALL_V1, TEST_V2)
    jason = mesh.login("jason")
    pages = mesh.pages(20, cookie=jason)
    assert served(pages) == {"reviews-v2": 20}
    assert {p["user"] for p in pages} == {"jason"}
    for page in pages:
        assert_stars_match_version(page["reviews"])
        assert page["reviews"]["ratings_by"] == "ratings-v1"
    assert served(mesh.pages(20)) == {"reviews-v1": 20}
    assert served(mesh.pages(10, cookie=mesh.login("alice"))) == {"reviews-v1": 10}
    assert mesh.page("/logout", cookie=jason).status == 302
    assert served(mesh.pages(5)) == {"reviews-v1": 5}


def via_sidecar(mesh: BookinfoMesh, workload: str, service: str, user: str = "") -> Any:
    """GET <service> through `workload`'s egress listener, as its application would."""
    ip, port = mesh.app(workload).egress or ("", 0)
    headers = {"end-user": user} if user else {}
    started = time.monotonic()
    resp = request(
        ip,
        port,
        path=f"/{service}/0",
        host=f"{service}:{SERVICE_PORT}",
        headers=headers,
        timeout=15,
    )
    return time.monotonic() - started, resp


def test_virtual_service_ratings_test_delay(mesh: BookinfoMesh) -> None:
    """Fault injection, delay: ratings answers jason after 7 s. reviews v2 waits for it (its
    timeout is 10 s) but productpage gives up on reviews after 3 s, twice: jason's page takes
    about 6 s and shows the reviews error; everyone else is unaffected."""
    mesh.use(ALL_V1, TEST_V2, "virtual-service-ratings-test-delay.yaml")
    jason = mesh.login("jason")
    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        page = pool.submit(mesh.timed_page, jason)
        anonymous = pool.submit(mesh.timed_page)
        direct = pool.submit(via_sidecar, mesh, "reviews-v2", "ratings", "jason")
        (page_time, page_resp), (anon_time, anon_resp) = page.result(), anonymous.result()
        direct_time, direct_resp = direct.result()

    assert page_resp.status == 200
    body = page_resp.json()
    assert 5.9 <= page_time < 7.5, page_time  # 3 s + 3 s: productpage gave up twice
    assert body["reviews"] == {"error": REVIEWS_ERROR} and body["reviewsStatus"] == 500, body
    assert body["details"]["served_by"] == "details-v1"
    tries = [s for s in mesh.app("reviews-v2").seen_since(started) if s.headers.get("end-user")]
    assert len(tries) == 2, tries  # productpage's retry

    assert anon_resp.status == 200 and anon_time < 2.0, anon_time
    assert anon_resp.json()["reviews"]["served_by"] == "reviews-v1"

    assert direct_resp.status == 200 and direct_resp.json()["served_by"] == "ratings-v1"
    assert 6.9 <= direct_time < 8.5, direct_time  # the sample's fixedDelay: 7s
    no_user_time, no_user = via_sidecar(mesh, "reviews-v2", "ratings")
    assert no_user.status == 200 and no_user_time < 1.0, no_user_time


def test_virtual_service_ratings_test_abort(mesh: BookinfoMesh) -> None:
    """Fault injection, abort: ratings calls by jason fail with HTTP 500 at once (before they
    leave reviews' sidecar), so jason's page shows "Ratings service is currently unavailable";
    anonymous users (reviews v1) never call ratings."""
    mesh.use(ALL_V1, TEST_V2, "virtual-service-ratings-test-abort.yaml")
    jason = mesh.login("jason")
    started = time.monotonic()
    pages = mesh.pages(10, cookie=jason)
    assert time.monotonic() - started < 3.0
    assert served(pages) == {"reviews-v2": 10}
    for page in pages:
        reviews = page["reviews"]
        assert reviews["ratings_status"] == 500, reviews
        assert {r["rating"]["error"] for r in reviews["reviews"]} == {RATINGS_ERROR}
    assert not [s for s in mesh.app("ratings-v1").seen_since(started) if s.headers.get("end-user")]

    _, direct = via_sidecar(mesh, "reviews-v2", "ratings", "jason")
    assert direct.status == 500 and b"fault filter abort" in direct.body, direct
    _, no_user = via_sidecar(mesh, "reviews-v2", "ratings")
    assert no_user.status == 200 and no_user.json()["served_by"] == "ratings-v1"
    assert served(mesh.pages(10)) == {"reviews-v1": 10}


WEIGHTED: dict[str, dict[str, float]] = {
    "virtual-service-reviews-50-v3.yaml": {"reviews-v1": 50, "reviews-v3": 50},
    "virtual-service-reviews-90-10.yaml": {"reviews-v1": 90, "reviews-v2": 10},
    "virtual-service-reviews-80-20.yaml": {"reviews-v1": 80, "reviews-v2": 20},
    "virtual-service-reviews-v2-v3.yaml": {"reviews-v2": 50, "reviews-v3": 50},
}
SPLIT_REQUESTS = 300


def assert_split(counts: Counter[str], weights: dict[str, float]) -> None:
    """Each share within 5 binomial standard deviations of its weight (a false alarm about
    once in a million runs): ±14 points for 50/50, ±9 for 90/10 at 300 requests."""
    n = sum(counts.values())
    assert set(counts) == set(weights), counts
    for version, weight in weights.items():
        p = weight / 100
        tolerance = 500 * math.sqrt(p * (1 - p) / n)
        share = 100 * counts[version] / n
        assert abs(share - weight) <= tolerance, (version, share, weight, tolerance, counts)


@pytest.mark.parametrize("name", sorted(WEIGHTED))
def test_weighted_reviews(mesh: BookinfoMesh, name: str) -> None:
    """Traffic shifting: the split between reviews versions follows the weights."""
    mesh.use(ALL_V1, name)
    pages = mesh.pages(SPLIT_REQUESTS, path=REVIEWS_API)
    assert_split(served(pages, ""), WEIGHTED[name])
    for reviews in pages:
        assert_stars_match_version(reviews)


def test_virtual_service_reviews_v3(mesh: BookinfoMesh) -> None:
    """Traffic shifting, last step: all traffic to reviews v3 (red stars)."""
    mesh.use(ALL_V1, "virtual-service-reviews-v3.yaml")
    for cookie in ("", mesh.login("jason")):
        pages = mesh.pages(20, cookie=cookie)
        assert served(pages) == {"reviews-v3": 20}
        for page in pages:
            assert_stars_match_version(page["reviews"])


def test_virtual_service_reviews_jason_v2_v3(mesh: BookinfoMesh) -> None:
    """jason sees reviews v2 (black stars), everyone else v3 (red stars)."""
    mesh.use(ALL_V1, "virtual-service-reviews-jason-v2-v3.yaml")
    assert served(mesh.pages(20, cookie=mesh.login("jason"))) == {"reviews-v2": 20}
    pages = mesh.pages(20)
    assert served(pages) == {"reviews-v3": 20}
    assert {c for p in pages for c in colors(p["reviews"])} == {"red"}


def test_virtual_service_details_v2(mesh: BookinfoMesh) -> None:
    mesh.use(ALL_V1, "virtual-service-details-v2.yaml")
    pages = mesh.pages(20)
    assert served(pages, "details") == {"details-v2": 20}
    assert served(pages) == {"reviews-v1": 20}


def test_fault_injection_details_v1(mesh: BookinfoMesh) -> None:
    """Every call to details is aborted with HTTP 555 in productpage's sidecar (its
    DestinationRule keeps only subset v1): the page shows the details error, reviews work."""
    mesh.use("fault-injection-details-v1.yaml")
    started = time.monotonic()
    for page in mesh.pages(10):
        assert page["detailsStatus"] == 555 and page["details"] == {"error": DETAILS_ERROR}
        assert page["reviewsStatus"] == 200
    assert not mesh.app("details-v1").seen_since(started)
    assert not mesh.app("details-v2").seen_since(started)
    _, direct = via_sidecar(mesh, "productpage-v1", "details")
    assert direct.status == 555, direct


@pytest.mark.parametrize(
    ("name", "ratings"),
    [
        ("virtual-service-ratings-db.yaml", "ratings-v2"),
        ("virtual-service-ratings-mysql.yaml", "ratings-v2-mysql"),
        ("virtual-service-ratings-mysql-vm.yaml", "ratings-v2-mysql-vm"),
    ],
)
def test_ratings_database_versions(mesh: BookinfoMesh, name: str, ratings: str) -> None:
    """reviews v3 (red stars) with its ratings from the database-backed ratings version."""
    mesh.use(ALL_V1, name)
    pages = mesh.pages(20)
    assert served(pages) == {"reviews-v3": 20}
    assert {p["reviews"]["ratings_by"] for p in pages} == {ratings}
    for page in pages:
        assert_stars_match_version(page["reviews"])


def test_destination_rule_reviews(mesh: BookinfoMesh) -> None:
    """destination-rule-reviews: RANDOM load balancing over the three versions (the cluster's
    lb_policy is waited for); with no VirtualService each version takes about a third."""
    mesh.use("destination-rule-reviews.yaml")
    pages = mesh.pages(SPLIT_REQUESTS, path=REVIEWS_API)
    third = 100 / 3
    assert_split(served(pages, ""), {"reviews-v1": third, "reviews-v2": third, "reviews-v3": third})


def test_certmanager_gateway(mesh: BookinfoMesh) -> None:
    """certmanager-gateway (port 80 of the gateway's Service, i.e. its 8080 listener, shared
    with bookinfo-gateway): ACME challenges reach cert-manager-resolver, Bookinfo still works."""
    mesh.use("certmanager-gateway.yaml")
    path = "/.well-known/acme-challenge/token-1"
    resp = wait_until(
        lambda: r if (r := mesh.page(path)).status == 200 else None,
        10.0,
        0.05,
        f"the gateway to route {path}",
    )
    assert resp is not None and resp.headers.get("x-backend") == "cert-manager-resolver", resp
    assert mesh.resolver.requests[-1].path == path
    assert mesh.page().status == 200
