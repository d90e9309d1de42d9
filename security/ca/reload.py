"""Reloading a plugged-in CA when its `cacerts` files change (Istio's cacerts file watch).

Istio's istiod watches ROOT_CA_DIR and, 100 ms after a write, re-reads the four files. A new
signer (intermediate) that verifies to the current root-cert.pem is always accepted. A changed
root-cert.pem is accepted only with ISTIO_MULTIROOT_MESH=true and only when one bundle is a
subset of the other: that is Istio's documented root rotation, three separate edits of the
files, each given time to reach every proxy:

1. root-cert.pem = old root + new root (the signer is unchanged): every proxy trusts both;
2. ca-cert.pem / ca-key.pem / cert-chain.pem = a signer under the new root: workloads get
   certificates of the new root, which every peer already trusts;
3. root-cert.pem = new root only: the old root is dropped.

Here the directory is polled (a stat of the four files each pass, read only when it changed)
instead of inotify; a half-written set is refused (the current CA is kept) and re-read once the
files change again.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from security.ca.storage import PLUGGED_FILES, SignerBundle

log = logging.getLogger(__name__)

# (name, inode, size, mtime_ns) of each file; a missing file has (name, 0, -1, 0).
Fingerprint = tuple[tuple[str, int, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """What identifies the current contents of the cacerts files without reading them."""
    out = []
    for name in PLUGGED_FILES:
        try:
            st = os.stat(directory / name)
        except OSError:
            out.append((name, 0, -1, 0))
        else:
            out.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ReloadPolicy:
    """ISTIO_MULTIROOT_MESH: whether root-cert.pem may change while istiod runs."""

    multi_root: bool = False


def refusal(current: SignerBundle, new: SignerBundle, policy: ReloadPolicy) -> str | None:
    """Why `new` may not replace `current` (None: it may). Mirrors Istio's handleEvent."""
    old_roots, new_roots = set(current.roots), set(new.roots)
    if old_roots == new_roots:
        return None
    if not policy.multi_root:
        return "root-cert.pem changed but ISTIO_MULTIROOT_MESH is disabled"
    if old_roots <= new_roots or new_roots <= old_roots:
        return None
    return (
        "root-cert.pem is neither a subset nor a superset of the current trust bundle "
        "(add the new root first, then drop the old one)"
    )


def same_bundle(a: SignerBundle, b: SignerBundle) -> bool:
    return (
        a.signer_cert == b.signer_cert
        and a.chain == b.chain
        and a.root == b.root
        and a.roots == b.roots
    )
