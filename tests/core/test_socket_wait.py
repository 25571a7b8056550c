"""`SocketWait`, the blocking client's wait on its socket: `poll` and the `selectors` fallback
give the same answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from puka.blocking.socket_wait import HAS_POLL, READ, WAKE, WRITE, SocketWait

WAYS = [pytest.param(True, id="poll"), pytest.param(False, id="selectors")]
if not HAS_POLL:
    WAYS = WAYS[1:]


@dataclass
class Watched:
    """A connected socket pair, `ours` non-blocking and watched by `waiter`."""

    ours: socket.socket
    theirs: socket.socket
    waiter: SocketWait


@pytest.fixture(params=WAYS)
def watched(request: pytest.FixtureRequest) -> Iterator[Watched]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    waiter = SocketWait(ours, use_poll=request.param)
    yield Watched(ours, theirs, waiter)
    waiter.close()
    ours.close()
    theirs.close()


def _until_it_would_block(step: Callable[[], int]) -> int:
    """Repeat a non-blocking send or recv until it would block; the bytes it moved."""
    moved = 0
    while True:
        try:
            moved += step()
        except BlockingIOError:
            return moved


def test_ready_events_follow_the_socket(watched: Watched) -> None:
    waiter = watched.waiter
    assert waiter.wait(0, False) == 0  # nothing to read
    assert waiter.wait(0, True) == WRITE  # room to write
    assert waiter.wait(0, False) == 0  # no longer asked about writing
    watched.theirs.sendall(b"x")
    assert waiter.wait(None, False) == READ
    assert waiter.wait(None, True) == READ | WRITE
    assert watched.ours.recv(16) == b"x"
    assert waiter.wait(0, False) == 0


def test_a_closed_peer_is_readable(watched: Watched) -> None:
    watched.theirs.close()
    assert watched.waiter.wait(1.0, False) == READ  # the read finds the end of the stream
    assert watched.ours.recv(16) == b""


def test_a_full_socket_is_not_writable_until_the_peer_reads(watched: Watched) -> None:
    ours, theirs = watched.ours, watched.theirs
    sent = _until_it_would_block(lambda: ours.send(b"\0" * 65536))
    assert watched.waiter.wait(0, True) == 0
    theirs.setblocking(False)
    received = _until_it_would_block(lambda: len(theirs.recv(1 << 20)))
    assert received == sent
    assert watched.waiter.wait(1.0, True) == WRITE


def test_the_timeout_is_waited_out(watched: Watched) -> None:
    started = time.monotonic()
    assert watched.waiter.wait(0.05, False) == 0
    assert time.monotonic() - started >= 0.045  # not rounded down to a busy loop


def test_a_closed_waiter_refuses_to_wait(watched: Watched) -> None:
    watched.waiter.close()
    with pytest.raises(ValueError, match="closed"):
        watched.waiter.wait(0, False)


@pytest.mark.parametrize("use_poll", [way.values[0] for way in WAYS])
def test_the_wake_descriptor_is_watched_too(use_poll: bool) -> None:
    ours, theirs = socket.socketpair()
    wake_reader, wake_writer = socket.socketpair()
    ours.setblocking(False)
    waiter = SocketWait(ours, wake=wake_reader.fileno(), use_poll=use_poll)
    try:
        assert waiter.wait(0, False) == 0
        wake_writer.send(b"\0")
        began = time.monotonic()
        assert waiter.wait(None, False) == WAKE  # no timeout: the wake byte ends the wait
        assert time.monotonic() - began < 5.0
        theirs.sendall(b"x")
        assert waiter.wait(None, True) == READ | WRITE | WAKE
        assert wake_reader.recv(16) == b"\0"
        assert waiter.wait(0, False) == READ
        assert ours.recv(16) == b"x"
        assert waiter.wait(0, False) == 0
    finally:
        waiter.close()
        for sock in (ours, theirs, wake_reader, wake_writer):
            sock.close()
