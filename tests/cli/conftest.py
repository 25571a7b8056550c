"""Fixtures of the CLI tests: run `puka` in process or as a subprocess; broker resources.

* ``cli(*argv, stdin=b"")`` runs ``main([...])`` in this process against the shared broker
  (``-u`` is added) and returns a :class:`Run` (exit status, stdout bytes, stderr text);
  ``stderr_tty=True`` makes its stderr say it is a terminal (``isatty()``).
* ``cli_process(*argv, stdin=b"")`` runs ``python -m puka_cli`` the same way;
  ``spawn(*argv)`` starts it and returns the ``Popen``.
* ``names`` gives unique queue and exchange names and deletes them at teardown.
* ``admin`` is a connected ``puka.Client`` for setting up and checking queues.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable, Iterator

import puka
import pytest
from puka_cli.__main__ import main

from tests.broker_node import UniqueName
from tests.cli.helpers import Names, Run, process_env


def _stream(data: bytes = b"") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="", write_through=True)


class _TerminalStream(io.TextIOWrapper):
    """A captured stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def cli(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run `puka` in process with the shared broker's URL."""

    def run(
        *argv: str, stdin: bytes = b"", url: str | None = None, stderr_tty: bool = False
    ) -> Run:
        out, inp = _stream(), _stream(stdin)
        err = (
            _TerminalStream(io.BytesIO(), encoding="utf-8", newline="", write_through=True)
            if stderr_tty
            else _stream()
        )
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", out)
            patch.setattr(sys, "stderr", err)
            patch.setattr(sys, "stdin", inp)
            code = main(["-u", url or amqp_url, *argv])
        out.flush()
        err.flush()
        stdout = out.buffer.getvalue()  # type: ignore[attr-defined]
        stderr = err.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
        return Run(code, stdout, stderr)

    return run


@pytest.fixture
def cli_process(amqp_url: str) -> Callable[..., Run]:
    """Run `python -m puka_cli` as a subprocess (AMQP_URL set to the shared broker)."""

    def run(*argv: str, stdin: bytes = b"", timeout: float = 30.0) -> Run:
        done = subprocess.run(
            [sys.executable, "-m", "puka_cli", *argv],
            input=stdin,
            capture_output=True,
            env=process_env(amqp_url),
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr.decode("utf-8", "replace"))

    return run


@pytest.fixture
def spawn(amqp_url: str, names: Names) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `python -m puka_cli` in the background; killed at teardown if still running.

    It asks for `names` so that it is set up after it and torn down before it: a process still
    running is killed before the test's queues are deleted, and cannot declare one again after.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "puka_cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=process_env(amqp_url),
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def admin(amqp_url: str) -> Iterator[puka.Client]:
    """A connected client for setting up and checking the broker."""
    client = puka.Client(amqp_url)
    client.wait(client.connect(), timeout=10)
    yield client
    with contextlib.suppress(Exception):
        client.wait(client.close(), timeout=5)


@pytest.fixture
def names(amqp_url: str, unique_name: UniqueName) -> Iterator[Names]:
    """Unique names for queues and exchanges, deleted at teardown."""
    made = Names(unique_name)
    yield made
    made.cleanup(amqp_url)
