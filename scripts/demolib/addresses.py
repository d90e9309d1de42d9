"""Loopback addresses: claiming a 127.0.B.0/24 block, probing binds, and (for --check)
serving a copy of examples/ relocated to the claimed block."""

from __future__ import annotations

import fcntl
import socket
import tempfile
from pathlib import Path
from typing import IO

from .base import EXAMPLES, DemoError

EXAMPLES_BLOCK = 253  # examples/ use 127.0.253.0/24
CHECK_BLOCKS = (252, 251, 254, 253)  # --check relocates its copy to a free block


def can_bind(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
        return True


def claim_block(block: int) -> IO[bytes] | None:
    """flock /tmp/pyistio-demo-loopback/<block>.lock so two demos never share addresses."""
    lock_dir = Path(tempfile.gettempdir()) / "pyistio-demo-loopback"
    lock_dir.mkdir(parents=True, exist_ok=True)
    handle = (lock_dir / f"{block}.lock").open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def prepare_config(check: bool, workdir: Path) -> tuple[Path, int, IO[bytes]]:
    """The config dir to serve, its 127.0.B block, and the lock that owns that block."""
    if not check:
        lock = claim_block(EXAMPLES_BLOCK)
        if lock is None:
            raise DemoError(
                f"127.0.{EXAMPLES_BLOCK}.0/24 is taken by another running demo "
                "(scripts/demo); stop it first"
            )
        return EXAMPLES, EXAMPLES_BLOCK, lock
    for block in CHECK_BLOCKS:
        lock = claim_block(block)
        if lock is not None:
            break
    else:
        raise DemoError("every loopback block the demo may use is taken by other demos")
    config = workdir / "config"
    config.mkdir()
    for src in sorted(EXAMPLES.iterdir()):
        if src.suffix in (".yaml", ".yml", ".json"):
            text = src.read_text(encoding="utf-8")
            text = text.replace(f"127.0.{EXAMPLES_BLOCK}.", f"127.0.{block}.")
            (config / src.name).write_text(text, encoding="utf-8")
    return config, block, lock
