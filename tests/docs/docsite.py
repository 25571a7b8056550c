"""Build the documentation site, serve it on loopback, look at it with headless Chromium.

Used by the tests in this folder, and as a command to refresh the README's screenshot:

    hatch run docs:screenshot          # python tests/docs/docsite.py screenshot [OUTPUT.png]

Building prefers mkdocs in the running interpreter (the docs environment has it) and falls
back to ``hatch env run -e docs -- mkdocs ...`` (the test environment does not). Chromium is
Debian's ``chromium`` package (``apt-get install -y chromium``), or ``$PUKA_CHROMIUM``.
This module has no pytest dependency.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SCREENSHOT = DOCS / "assets" / "screenshot-home.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


class ToolMissing(RuntimeError):
    """A tool the check needs (mkdocs, hatch, chromium) is not installed."""


def mkdocs_command() -> list[str]:
    """How to run mkdocs with the docs environment's plugins."""
    if all(importlib.util.find_spec(name) for name in ("mkdocs", "material", "mkdocstrings")):
        return [sys.executable, "-m", "mkdocs"]
    hatch = shutil.which("hatch")
    if hatch is None:
        raise ToolMissing("neither mkdocs (with its plugins) nor hatch is installed")
    return [hatch, "env", "run", "-e", "docs", "--", "mkdocs"]


def build(site_dir: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` into `site_dir` (the first hatch run creates the docs env)."""
    command = [*mkdocs_command(), "build", "--strict", "--site-dir", str(site_dir)]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Say nothing."""


@contextlib.contextmanager
def serve(site_dir: Path) -> Iterator[str]:
    """Serve `site_dir` on a free loopback port; yields the base URL (ending in '/')."""
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium() -> str | None:
    """The Chromium executable, or None."""
    override = os.environ.get("PUKA_CHROMIUM")
    if override:
        return shutil.which(override)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run_chromium(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    executable = chromium()
    if executable is None:
        raise ToolMissing("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="puka-chromium-") as profile:
        command = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(url: str, timeout: float = 120) -> str:
    """The DOM of `url` once its scripts have run (five seconds of virtual time)."""
    done = _run_chromium("--virtual-time-budget=5000", "--dump-dom", url, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom {url} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def screenshot(url: str, output: Path, width: int = 1280, height: int = 900) -> None:
    """A PNG of `url` as a `width` x `height` window shows it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    done = _run_chromium(
        "--virtual-time-budget=5000",
        f"--window-size={width},{height}",
        f"--screenshot={output}",
        url,
        timeout=120,
    )
    if done.returncode != 0 or not output.exists():
        raise RuntimeError(f"chromium --screenshot {url} failed ({done.returncode}): {done.stderr}")


def main(argv: list[str]) -> int:
    """``screenshot [OUTPUT]``: build the site and take the home page's screenshot."""
    if not argv or argv[0] != "screenshot" or len(argv) > 2:
        print("usage: python tests/docs/docsite.py screenshot [OUTPUT.png]", file=sys.stderr)
        return 2
    output = Path(argv[1]) if len(argv) > 1 else SCREENSHOT
    with tempfile.TemporaryDirectory(prefix="puka-site-") as site_dir:
        built = build(Path(site_dir))
        if built.returncode != 0:
            print(built.stdout, built.stderr, sep="\n", file=sys.stderr)
            return 1
        with serve(Path(site_dir)) as base:
            screenshot(base, output.resolve())
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
