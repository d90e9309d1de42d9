"""Finding and reading the files of a config directory (pilot/config/file.py).

`scan` lists the config files (`*.yaml`, `*.yml`, `*.json`; hidden files and editor droppings
skipped; symlinked directories not followed, so a directory symlink loop is harmless).
`read_config_file` reads one without ever blocking: anything but a regular file (a FIFO, a
device; a symlink loop fails to open) is an OSError with a message, as is a file over
MAX_FILE_BYTES; a file written less than `settle` seconds ago raises NotSettled, so a writer
caught between two writes is read a little later instead of half way.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 64 * 1024 * 1024
SETTLE_SECONDS = 0.1  # a file written less than this long ago is read a little later


class NotSettled(Exception):
    """The file was written less than `settle` seconds ago: read it later."""

    def __init__(self, remaining: float) -> None:
        super().__init__(f"still being written ({remaining:.3f}s to settle)")
        self.remaining = remaining


def read_config_file(path: Path, settle: float = 0.0) -> bytes:
    """The bytes of a regular file, without ever blocking on a FIFO or device: raises OSError
    (with a message) for anything else, and NotSettled for a file written too recently."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file (mode {stat.filemode(info.st_mode)})")
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(f"file is larger than {MAX_FILE_BYTES} bytes ({info.st_size})")
        age = time.time() - info.st_mtime
        if settle > 0 and 0 <= age < settle:
            raise NotSettled(settle - age)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def is_config_file(path: Path) -> bool:
    name = path.name
    if name.startswith(".") or name.endswith("~") or name.startswith("#"):
        return False
    return name.endswith(SUFFIXES)


def scan(dirs: Sequence[Path]) -> list[Path]:
    """All config files under `dirs`, sorted; symlinked directories are not followed."""
    found: list[Path] = []
    for root in dirs:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in filenames:
                path = Path(dirpath) / filename
                if is_config_file(path):
                    found.append(path)
    return sorted(found)
