"""What every part of the demo shares: where things are, the Bookinfo constants, DemoError."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NAMESPACE = "bookinfo"
GATEWAY_HOST = "bookinfo.example.com"
SERVICE_PORT = 9080  # every Bookinfo service's port; sidecars listen on it


class DemoError(Exception):
    """The demo could not do what it needed; the message says what and shows logs."""


def say(text: str = "") -> None:
    print(text, flush=True)
