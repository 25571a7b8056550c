"""Long-running commands say once what they wait on, on stderr, only when it is a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
from collections.abc import Callable

import puka
import pytest

from tests.cli.helpers import Names, Run, declare, process_env, publish_many


def _waiting_lines(stderr: str) -> list[str]:
    # a terminal also gets progress lines redrawn with \r: split on both
    return [part for part in stderr.replace("\r", "\n").splitlines() if "waiting on" in part]


@pytest.mark.parametrize("tty", [True, False])
def test_consume(tty: bool, cli: Callable[..., Run], names: Names, admin: puka.Client) -> None:
    first, second = names.queue(), names.queue()
    declare(admin, first)
    declare(admin, second)
    publish_many(admin, first, [b"x"])
    run = cli("consume", first, second, "-c", "1", stderr_tty=tty)
    assert run.code == 0, run.stderr
    expected = [f"puka: waiting on queues '{first}', '{second}' (Ctrl-C to stop)"]
    assert _waiting_lines(run.stderr) == (expected if tty else [])


@pytest.mark.parametrize("tty", [True, False])
def test_tap(tty: bool, cli: Callable[..., Run]) -> None:
    run = cli("tap", "amq.topic:puka.test.nothing", "--idle-timeout", "0.2", stderr_tty=tty)
    assert run.code == 0, run.stderr
    expected = ["puka: waiting on messages through amq.topic:puka.test.nothing (Ctrl-C to stop)"]
    assert _waiting_lines(run.stderr) == (expected if tty else [])


@pytest.mark.parametrize("tty", [True, False])
def test_shovel(tty: bool, cli: Callable[..., Run], names: Names, admin: puka.Client) -> None:
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest)
    publish_many(admin, source, [b"1", b"2"])
    run = cli("shovel", source, dest, "--until-empty", stderr_tty=tty)
    assert run.code == 0, run.stderr
    expected = [f"puka: waiting on queue '{source}' (Ctrl-C to stop)"]
    assert _waiting_lines(run.stderr) == (expected if tty else [])


@pytest.mark.parametrize("tty", [True, False])
def test_rpc_serve(tty: bool, cli: Callable[..., Run], names: Names, admin: puka.Client) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"no reply_to"])  # rejected, and counts as the one request
    run = cli("rpc", "serve", queue, "-c", "1", stderr_tty=tty)
    assert run.code == 0, run.stderr
    expected = [f"puka: waiting on requests on queue '{queue}' (Ctrl-C to stop)"]
    assert _waiting_lines(run.stderr) == (expected if tty else [])


def test_a_real_terminal_gets_the_line(names: Names, admin: puka.Client, amqp_url: str) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"x"])
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "puka_cli", "consume", queue, "-c", "1", "-F", "raw"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            env=process_env(amqp_url),
        )
        os.close(follower)
        follower = -1
        output = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None
        assert process.stdout.read() == b"x"
        process.stdout.close()
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    text = output.decode("utf-8", "replace")
    assert _waiting_lines(text) == [f"puka: waiting on queue '{queue}' (Ctrl-C to stop)"]
