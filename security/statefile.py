"""Crash-safe files in istiod's state directory: atomic writes and a directory lock.

Key material is written so that a reader only ever sees a complete old file or a complete new
one: a temporary file in the same directory, created with its final mode (0600 for keys) and
never readable by others even for an instant, fsynced, renamed over the target, and the
directory fsynced so the rename survives a power cut.

Several istiods may share a state directory (or start at the same moment). `state_lock` is an
exclusive `flock` on a lock file in the directory: whoever holds it decides whether to create
or to load, so two racing processes never end up with files from different generations.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".pyistio-state.lock"
_TEMP_PREFIX = ".pyistio-tmp."
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def ensure_dir(directory: Path) -> None:
    """Create the state directory (0700) if needed."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


@contextlib.contextmanager
def state_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (blocking); also sweeps temp files of crashed writers.

    Locks are per open file: do not nest two `state_lock`s on one directory in one process.
    """
    ensure_dir(directory)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _sweep_temp_files(directory)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def write_atomic(path: Path, data: bytes, mode: int = PUBLIC_MODE) -> None:
    """Replace `path` with `data` atomically; the file has exactly `mode` from its creation."""
    temp = path.with_name(f"{_TEMP_PREFIX}{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have removed bits we want (never added any)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _sweep_temp_files(directory: Path) -> None:
    # Only called under the lock, so no live writer owns these.
    for leftover in directory.glob(f"{_TEMP_PREFIX}*"):
        log.warning("removing leftover temporary file path=%s", leftover)
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
