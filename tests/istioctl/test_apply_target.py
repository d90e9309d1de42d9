"""`istioctl apply` without --config-dir asks istiod where its config lives."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from istioctl import cli

VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
"""


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_unreachable_istiod_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    change = tmp_path / "vs.yaml"
    change.write_text(VS)
    # Port 1 on loopback: nothing listens there.
    code, out, err = run("apply", "-f", str(change), "--istiod", "http://127.0.0.1:1")
    assert code == 1 and not out, out
    assert "--istiod" in err and "127.0.0.1:1" in err and "--config-dir" in err, err
