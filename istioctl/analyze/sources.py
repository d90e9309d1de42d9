"""Where `istioctl analyze` reads from: files and directories (as istioctl gathers them), and
a running istiod's `/debug/configz` and `/debug/adsz` over HTTP (standard library only)."""

from __future__ import annotations

import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from istioctl.http import OPENER
from pkg.analysis.configz import ConfigzError, from_configz, workloads_from_adsz
from pkg.analysis.loader import Loaded
from pkg.version import VERSION

EXTENSIONS = (".json", ".yaml", ".yml")
STDIN = "-"
MAX_BODY = 256 << 20
MAX_FILE = 64 << 20


class SourceError(Exception):
    """An input cannot be read; the message says which and why (exit status 1)."""


@dataclass(frozen=True, slots=True)
class InputFile:
    name: str
    data: bytes


def gather_files(paths: Sequence[str], err: TextIO) -> list[InputFile]:
    """Every file named, and every *.yaml/*.yml/*.json below each directory named (others are
    skipped with a note on `err`, as istioctl does); `-` is stdin."""
    out: list[InputFile] = []
    for name in paths:
        if name == STDIN:
            out.append(InputFile(STDIN, sys.stdin.buffer.read()))
            continue
        path = Path(name)
        if not path.exists():
            raise SourceError(f"stat {name}: no such file or directory")
        candidates = _walk(path) if path.is_dir() else iter([path])
        for candidate in candidates:
            if candidate.suffix not in EXTENSIONS:
                print(
                    f"Skipping file {candidate}, recognized file extensions are: "
                    f"[{' '.join(EXTENSIONS)}]",
                    file=err,
                )
                continue
            out.append(InputFile(str(candidate), _read(candidate)))
    return out


def _walk(root: Path) -> Iterator[Path]:
    """Files below `root` in lexical order (filepath.Walk); symlinked directories not
    followed."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for filename in sorted(filenames):
            yield Path(dirpath) / filename


def _read(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE:
            raise SourceError(f"{path}: file is larger than {MAX_FILE} bytes ({size})")
        return path.read_bytes()
    except OSError as error:
        raise SourceError(f"open {path}: {error.strerror or error}") from None


def istiod_base(url: str) -> str:
    """`http://HOST:PORT` from `--istiod` (a bare HOST:PORT means http)."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"--istiod: {url!r} is not an http(s) URL or HOST:PORT")
    return text


def read_istiod(url: str, timeout: float) -> Loaded:
    """istiod's current configs (with proxies' rejections) and its connected proxies."""
    base = istiod_base(url)
    try:
        loaded = from_configz(_get_json(f"{base}/debug/configz", timeout))
        proxies = workloads_from_adsz(_get_json(f"{base}/debug/adsz", timeout))
    except ConfigzError as error:
        raise SourceError(f"--istiod: {base}: {error}") from None
    return replace(loaded, workloads=loaded.workloads + proxies)


def _get_json(url: str, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"User-Agent": f"istioctl/{VERSION}"})
    try:
        with OPENER.open(request, timeout=timeout) as response:
            body = response.read(MAX_BODY + 1)
    except urllib.error.HTTPError as error:
        text = error.read(300).decode("utf-8", "replace").strip()
        error.close()
        raise SourceError(f"--istiod: {url} answered HTTP {error.code}: {text}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, TimeoutError):
            reason = "timed out"
        raise SourceError(f"--istiod: cannot reach {url}: {reason}") from None
    if len(body) > MAX_BODY:
        raise SourceError(f"--istiod: {url} answered more than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise SourceError(f"--istiod: {url} did not answer JSON") from None
