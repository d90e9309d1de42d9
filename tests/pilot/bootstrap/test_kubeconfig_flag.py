"""`--kubeconfig` errors name the flag and the file (Kubernetes mode itself:
tests/e2e/test_kube_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilot.bootstrap.main import run


@pytest.mark.parametrize("content", [None, "{not: [valid"])
async def test_unusable_kubeconfig_is_a_clear_error(
    tmp_path: Path, content: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    argv = ["--kubeconfig", str(path), "--state-dir", str(tmp_path / "state")]
    assert await run(argv) == 2
    err = capsys.readouterr().err
    assert f"istiod: --kubeconfig {path}: " in err
