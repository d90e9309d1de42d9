"""Test-tree-wide options and fixtures.

`--update-golden` makes golden-file tests rewrite their expected outputs (and delete outputs no
case produces any more) instead of comparing against them; review the diff like code.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the generated output and delete stale ones",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run should rewrite golden files instead of checking them."""
    return bool(request.config.getoption("--update-golden"))
