"""The scripts of examples/ run against the broker and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import puka
import puka_spec
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _pythonpath() -> str:
    """The directories puka and puka_spec come from here, so the scripts import the same ones."""
    paths = [str(Path(m.__file__).resolve().parent.parent) for m in (puka, puka_spec)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(dict.fromkeys(paths))


@pytest.mark.parametrize(
    "script", ["hello_publish.py", "hello_consume.py", "rpc_direct_reply_to.py"]
)
def test_example_runs(amqp_url: str, script: str) -> None:
    env = {**os.environ, "AMQP_URL": amqp_url, "PYTHONPATH": _pythonpath()}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), f"{script} printed nothing"
