"""Every example script and every runnable code block of the documentation runs against the broker.

Scripts: each ``*.py`` in ``examples/`` and ``examples/tutorials/`` (written by anyone), run as
a subprocess with ``AMQP_URL`` set, no arguments, and a timeout; it must exit 0. Runnable blocks:
those of the pages in ``docs/`` and of the repository's ``README.md``; see
``tests/docs/runnable.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs.runnable import MARKER, Block, all_blocks, blocks_in

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE_DIRS = (ROOT / "examples", ROOT / "examples" / "tutorials")
SCRIPTS = sorted(path for folder in EXAMPLE_DIRS for path in folder.glob("*.py"))
README = ROOT / "README.md"
BLOCKS = all_blocks(DOCS) + blocks_in(README)
TIMEOUT = 60.0  # seconds per script; each should take a few


def _run(command: list[str], amqp_url: str, what: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AMQP_URL": amqp_url, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{what} did not finish within {TIMEOUT:g} s; output so far:\n{exc.stdout}")
    elapsed = time.monotonic() - started
    assert done.returncode == 0, (
        f"{what} exited with {done.returncode} after {elapsed:.1f} s\n"
        f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(p.relative_to(ROOT)) for p in SCRIPTS])
def test_example_script_runs(script: Path, amqp_url: str) -> None:
    _run([sys.executable, str(script)], amqp_url, str(script.relative_to(ROOT)))


@pytest.mark.parametrize(
    "block",
    BLOCKS,
    ids=[f"{b.path.relative_to(ROOT)}:{b.line}{':' + b.title if b.title else ''}" for b in BLOCKS],
)
def test_runnable_block_runs(block: Block, amqp_url: str, tmp_path: Path) -> None:
    script = tmp_path / (block.title or "block.py")
    script.write_text(block.with_broker(amqp_url), encoding="utf-8")
    _run([sys.executable, str(script)], amqp_url, f"{block.path.relative_to(ROOT)}:{block.line}")


def test_the_examples_and_blocks_are_found() -> None:
    """Guard against a change that silently makes the tests above run nothing."""
    assert len([p for p in SCRIPTS if p.parent.name == "tutorials"]) >= 7
    assert len(BLOCKS) >= 5
    pages = [*DOCS.rglob("*.md"), README]
    marked = sum(p.read_text(encoding="utf-8").count(MARKER) for p in pages)
    assert marked == len(BLOCKS)


def test_first_steps_run_as_pasted() -> None:
    """The programs a new user copies first are whole programs the tests run: the README's, and
    one per style on Getting started (blocking, callbacks, asyncio, trio). Every ``python`` block
    of those two pages is one of them."""
    for page, wanted in ((README, 1), (DOCS / "getting-started.md", 4)):
        text = page.read_text(encoding="utf-8")
        fences = re.findall(r"^[ \t]*```python\b", text, re.MULTILINE)
        runnable = blocks_in(page)
        assert len(runnable) >= wanted, f"{page.name}: {len(runnable)} runnable blocks"
        assert len(fences) == len(runnable), f"{page.name}: a python block is not runnable"
        for block in runnable:
            assert "import puka" in block.code, f"{page.name}:{block.line} imports nothing"


def test_every_tutorial_script_is_in_the_docs() -> None:
    """Each script of examples/tutorials is included by some page (no orphan examples)."""
    included = set()
    for page in DOCS.rglob("*.md"):
        included.update(re.findall(r'--8<-- "examples/tutorials/([\w.]+?\.py)', page.read_text()))
    scripts = {path.name for path in (ROOT / "examples" / "tutorials").glob("*.py")}
    assert scripts - included == set()


def test_tutorial_scripts_read_the_broker_from_amqp_url() -> None:
    for script in (ROOT / "examples" / "tutorials").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        assert 'os.environ.get("AMQP_URL"' in source, (
            f"{script.name}: take the broker from $AMQP_URL"
        )
