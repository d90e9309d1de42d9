"""Network namespaces for REDIRECT-mode end-to-end tests: one namespace per workload, wired to
a bridge, with the iptables capture rules Istio's init container installs.

Topology (nothing is added to, or changed in, the host's own network namespace):

    host: pytest, istiod on 127.0.0.1:<ephemeral>      (reached through a relay, see
                                                        redirect_mesh.XdsRelay)
    <prefix>-hub:  br0, a bridge with no address
                    ├── v1 ══ eth0 in <prefix>-productpage   10.77.0.10/24
                    ├── v2 ══ eth0 in <prefix>-reviews-v1    10.77.0.11/24
                    └── ...

Every veth pair is created inside the hub namespace with its peer moved straight into the
workload namespace, so no interface ever appears on the host; deleting a namespace deletes its
end of the pair and thereby the pair. Addresses in 10.77.0.0/24 and service VIPs in
10.96.77.0/24 exist only inside these namespaces; each workload's default route points at its
eth0, so a connection to a VIP gets as far as the OUTPUT chain, where the rules redirect it.

Code in a namespace: `Netns.run(fn)` calls `fn` in a fresh thread that first joins the
namespace with setns(2) (a network namespace is per thread). Sockets created there stay in
that namespace wherever they are used afterwards: a Backend started through `run` listens in
the namespace, and a request sent through `run` leaves from inside it, as from an application
process there (uid 0, not the proxy's uid, so the capture rules apply to it). Processes start
through `Netns.command` (`ip netns exec NAME setpriv ...`).

Names are `pyistio-<pid>-<n>-<role>`; `Topology` removes its namespaces on close, also after
failures, and first removes namespaces that dead test processes left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

POD_PREFIX = "10.77.0"  # workload addresses: 10.77.0.N/24
SERVICE_PREFIX = "10.96.77"  # service VIPs (never assigned to an interface)
PROXY_UID = PROXY_GID = 1337  # Istio's proxy user and group
NAME_PREFIX = "pyistio"

_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"
_NAME = re.compile(rf"^{NAME_PREFIX}-(\d+)-\d+-")
_TOOLS = (("ip", "iproute2"), ("iptables-restore", "iptables"), ("iptables-save", "iptables"))
_COUNTER = itertools.count(1)
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsUnavailable(AssertionError):
    """This machine cannot run the namespace tests (not root, a tool missing, no netns)."""


def missing_requirements() -> list[str]:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces and iptables need CAP_SYS_ADMIN/CAP_NET_ADMIN)")
    for tool, package in (*_TOOLS, ("setpriv", "util-linux")):
        if shutil.which(tool) is None:
            missing.append(f"`{tool}` (apt-get install {package})")
    return missing


def require_netns() -> None:
    """Raise NetnsUnavailable, saying what is missing, unless namespaces can be built here."""
    missing = missing_requirements()
    if missing:
        raise NetnsUnavailable(
            "REDIRECT-mode tests run workloads in network namespaces with Istio's iptables "
            f"rules; this machine lacks: {'; '.join(missing)}. Run ./scripts/test as root: it "
            "installs iptables with apt-get when missing."
        )


def _run(argv: Sequence[str], *, input: str | None = None) -> str:
    proc = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise NetnsUnavailable(
            f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


class Netns:
    """One network namespace (`ip netns add NAME`)."""

    def __init__(self, name: str, role: str, ip: str = "") -> None:
        self.name = name
        self.role = role
        self.ip = ip  # its eth0 address ("" for the hub)

    def ip_cmd(self, *args: str) -> str:
        return _run(["ip", "-n", self.name, *args])

    def command(
        self, argv: Sequence[str], uid: int | None = None, gid: int | None = None
    ) -> list[str]:
        """argv run inside the namespace, as `uid`/`gid` when given. Such a process keeps two
        capabilities, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (ambient), so that Envoy can run
        as Istio's proxy user and still read its bootstrap and write its logs in the test's
        work directories, which belong to root."""
        prefix = ["ip", "netns", "exec", self.name]
        if uid is not None or gid is not None:
            caps = "+dac_override,+dac_read_search"
            prefix += ["setpriv", "--clear-groups", f"--inh-caps={caps}", f"--ambient-caps={caps}"]
            prefix += [f"--reuid={uid}"] if uid is not None else []
            prefix += [f"--regid={gid}"] if gid is not None else []
            prefix.append("--")
        return [*prefix, *argv]

    def exec(self, *argv: str, input: str | None = None) -> str:
        return _run(self.command(argv), input=input)

    def _enter(self) -> None:
        fd = os.open(f"{_NETNS_DIR}/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns into {self.name}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in a thread inside this namespace; its result or exception."""
        outcome: list[Any] = []

        def target() -> None:
            try:
                self._enter()
                outcome.append((True, fn(*args, **kwargs)))
            except BaseException as err:
                outcome.append((False, err))

        thread = threading.Thread(target=target, name=f"netns-{self.role}", daemon=True)
        thread.start()
        thread.join(120.0)
        if not outcome:
            raise TimeoutError(f"{getattr(fn, '__name__', fn)} in netns {self.name} hung")
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Netns({self.name!r}, ip={self.ip!r})"


def istio_capture_rules(
    *,
    proxy_port: int = 15001,
    inbound_port: int = 15006,
    tunnel_port: int = 15008,
    uid: int = PROXY_UID,
    gid: int = PROXY_GID,
    exclude_inbound: Sequence[int] = (15090, 15021, 15020),
) -> str:
    """The nat table istio-iptables writes for the sidecar injector's default arguments
    (`-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`; the
    proxy group defaults to 1337 too), in its order (tools/istio-iptables/pkg/capture/run.go),
    as iptables-restore input: inbound TCP to any port but the excluded ones → 15006; outbound
    TCP → 15001 except the proxy's own (by uid and by gid), traffic of the inbound passthrough
    source 127.0.0.6 and traffic to 127.0.0.1; the proxy calling its own workload over lo →
    15006."""
    rules = [
        "*nat",
        *(
            f":{chain} - [0:0]"
            for chain in ("ISTIO_INBOUND", "ISTIO_REDIRECT", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT")
        ),
        f"-A ISTIO_INBOUND -p tcp --dport {tunnel_port} -j RETURN",
        f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {proxy_port}",
        f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {inbound_port}",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        *(f"-A ISTIO_INBOUND -p tcp --dport {port} -j RETURN" for port in exclude_inbound),
        "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
    ]
    for kind, owner in (("uid", uid), ("gid", gid)):
        rules += [
            f"-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport {tunnel_port} "
            f"-m owner --{kind}-owner {owner} -j ISTIO_IN_REDIRECT",
            f"-A ISTIO_OUTPUT -o lo -m owner ! --{kind}-owner {owner} -j RETURN",
            f"-A ISTIO_OUTPUT -m owner --{kind}-owner {owner} -j RETURN",
        ]
    rules += ["-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN", "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"]
    return "\n".join([*rules, "COMMIT", ""])


def install_capture(ns: Netns, rules: str | None = None) -> str:
    """Install Istio's capture rules in `ns` (as the istio-init container does); returns the
    nat table as `iptables-save` then lists it."""
    ns.exec("iptables-restore", input=rules if rules is not None else istio_capture_rules())
    return ns.exec("iptables-save", "-t", "nat")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete namespaces named by this harness whose test process is gone; their names."""
    try:
        names = os.listdir(_NETNS_DIR)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        match = _NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(NetnsUnavailable):
                _run(["ip", "netns", "del", name])
                removed.append(name)
    return removed


class Topology:
    """A hub namespace with a bridge and one namespace per workload, each on a veth to the
    bridge. Use as a context manager: every namespace is deleted on exit."""

    def __init__(self) -> None:
        self.prefix = f"{NAME_PREFIX}-{os.getpid()}-{next(_COUNTER)}"
        self.hub = Netns(f"{self.prefix}-hub", "hub")
        self.namespaces: dict[str, Netns] = {}
        self._created: list[Netns] = []

    def __enter__(self) -> Topology:
        require_netns()
        cleanup_stale()
        try:
            self._add_netns(self.hub)
            self.hub.ip_cmd("link", "add", "br0", "type", "bridge")
            self.hub.ip_cmd("link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, ns: Netns) -> None:
        _run(["ip", "netns", "add", ns.name])
        self._created.append(ns)
        ns.ip_cmd("link", "set", "lo", "up")

    def add(self, role: str, host: int) -> Netns:
        """A workload namespace `role` with eth0 = 10.77.0.<host>/24 on the bridge."""
        if role in self.namespaces:
            raise ValueError(f"namespace {role} exists")
        ns = Netns(f"{self.prefix}-{role}", role, pod_ip(host))
        self._add_netns(ns)
        hub_end = f"v{len(self.namespaces) + 1}"
        self.hub.ip_cmd(
            "link", "add", hub_end, "type", "veth", "peer", "name", "eth0", "netns", ns.name
        )
        self.hub.ip_cmd("link", "set", hub_end, "master", "br0", "up")
        ns.ip_cmd("addr", "add", f"{ns.ip}/24", "dev", "eth0")
        ns.ip_cmd("link", "set", "eth0", "up")
        ns.ip_cmd("route", "add", "default", "dev", "eth0")
        self.namespaces[role] = ns
        return ns

    def close(self) -> None:
        errors = []
        for ns in reversed(self._created):
            try:
                _run(["ip", "netns", "del", ns.name])
            except NetnsUnavailable as err:
                errors.append(str(err))
        self._created.clear()
        if errors:
            raise NetnsUnavailable("cleanup: " + "; ".join(errors))


def pod_ip(host: int) -> str:
    return f"{POD_PREFIX}.{host}"


def service_vip(host: int) -> str:
    return f"{SERVICE_PREFIX}.{host}"


__all__ = [
    "PROXY_GID",
    "PROXY_UID",
    "Netns",
    "NetnsUnavailable",
    "Topology",
    "cleanup_stale",
    "install_capture",
    "istio_capture_rules",
    "missing_requirements",
    "pod_ip",
    "require_netns",
    "service_vip",
]
