"""The printed guide once the mesh is up: what runs where, what to curl, how to change it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .base import EXAMPLES, GATEWAY_HOST, SERVICE_PORT, say
from .mesh import Mesh
from .procs import tool


def shown(path: Path) -> str:
    """`path` relative to the current directory when below it, else absolute."""
    path = path.absolute()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def istioctl_shown() -> str:
    cmd = tool("istioctl")
    return " ".join([shown(Path(cmd[0])), *cmd[1:]])


def curl_lines(mesh: Mesh) -> list[str]:
    t = mesh.topology
    url = f"http://{t.gateway_ip}:{t.gateway_port}"
    host = f"-H 'Host: {GATEWAY_HOST}'"
    loop = (
        f"for i in $(seq 20); do curl -s {host} {url}/productpage | grep -o 'reviews-v[0-9]'; "
        "done | sort | uniq -c"
    )
    return [
        "# the product page, through the gateway (productpage -> details + reviews -> ratings):",
        f"curl -s {host} {url}/productpage",
        "# reviews is split 80% v1 / 20% v3 (v3 shows red stars):",
        loop,
        "# the user jason always gets reviews v2 (black stars):",
        f"curl -s {host} -H 'end-user: jason' {url}/productpage | head -2",
        "# any other host gets a 404 from the gateway (and so does an unrouted path):",
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'Host: nope.example.com' "
        f"{url}/productpage",
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' {host} {url}/nothing-here",
        *sidecar_lines(mesh),
    ]


def sidecar_lines(mesh: Mesh) -> list[str]:
    pp = next((e for e in mesh.sidecars if e.labels.get("app") == "productpage"), None)
    if pp is None:
        return []
    sidecar = f"http://{pp.ip}:{SERVICE_PORT}/"
    return [
        "# productpage's own sidecar: it routes reviews, and refuses ratings (Sidecar",
        "# resource, REGISTRY_ONLY: 502):",
        f"curl -s -H 'Host: reviews' {sidecar} | head -2",
        f"curl -s -o /dev/null -w '%{{http_code}}\\n' -H 'Host: ratings' {sidecar}",
    ]


def print_banner(mesh: Mesh, took: float, live_dir: Path) -> None:
    t = mesh.topology
    istiod = f"http://{mesh.istiod.http}"
    say()
    say(f"The Bookinfo mesh is up (started in {took:.1f}s). Config: {live_dir}")
    say()
    say(f"  istiod        {istiod}   xDS {mesh.istiod.grpc} (plaintext)")
    for envoy in mesh.envoys:
        listens = ", ".join(f"{ip}:{port}" for ip, port in envoy.listen)
        say(
            f"  {envoy.kind:<8}      {envoy.proxy_id:<34} listens {listens:<20} "
            f"admin http://{envoy.admin}"
        )
    for w in t.workloads:
        say(f"  app           {w.app + ' ' + w.version:<34} listens {w.ip}:{w.port}")
    say()
    say("Send requests:")
    for line in curl_lines(mesh):
        say(f"  {line}")
    say()
    say("What istiod knows:")
    proxy = mesh.sidecars[0].proxy_id if mesh.sidecars else mesh.gateway.proxy_id
    for path in (
        "/debug/syncz",
        f"/debug/config_dump?proxyID={proxy}",
        f"/debug/config_dump?proxyID={mesh.gateway.proxy_id}",
        "/debug/adsz",
        "/debug/configz",
        "/debug/registryz",
        "/debug/push_status",
    ):
        say(f"  curl -s '{istiod}{path}'")
    say(f"  curl -s http://{mesh.gateway.admin}/config_dump   # what the gateway Envoy runs")
    say()
    say("Change the mesh while it runs:")
    rel = shown(live_dir)
    say(f"  {istioctl_shown()} validate -f {rel}/")
    say(f"  # edit {rel}/virtual-services.yaml: set the reviews weights to v1 0 / v3 100 and")
    say("  # save; istiod pushes new routes at once, re-run the reviews loop above. Or watch:")
    url = f"http://{t.gateway_ip}:{t.gateway_port}"
    say(
        f"  while sleep 1; do for i in $(seq 10); do curl -s -H 'Host: {GATEWAY_HOST}' "
        f"{url}/productpage | grep -o 'reviews-v[0-9]'; done | sort | uniq -c | tr -s ' \\n' ' '; "
        "echo; done"
    )
    extra = istioctl_extras(istiod, proxy)
    if extra:
        say()
        say("istioctl against this mesh:")
        for line in extra:
            say(f"  {line}")
    say()
    say(f"Logs: {mesh.workdir}    Stop with Ctrl-C.")


def istioctl_extras(istiod: str, proxy: str) -> list[str]:
    """proxy-status / proxy-config lines, only for the subcommands this istioctl has."""
    try:
        result = subprocess.run(
            [*tool("istioctl"), "--help"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    out = []
    ctl = istioctl_shown()
    if "proxy-status" in result.stdout:
        out.append(f"{ctl} proxy-status --istiod {istiod}")
    if "proxy-config" in result.stdout:
        out.append(f"{ctl} proxy-config route {proxy} --istiod {istiod}")
        out.append(f"{ctl} proxy-config cluster {proxy} --istiod {istiod}")
    if "analyze" in result.stdout:
        out.append(f"{ctl} analyze {shown(EXAMPLES)}/")
    return out
