"""`SocketWait`, the blocking client's wait on its socket: `poll` and the `selectors` fallback
give the same answers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from puka.socket_wait import HAS_POLL, READ, WRITE, SocketWait

WAYS = [pytest.param(True, id="poll"), pytest.param(False, id="selectors")]
if not HAS_POLL:
    WAYS = WAYS[1:]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.mark.parametrize("use_poll", WAYS)
def test_ready_events_follow_the_socket(
    pair: tuple[socket.socket, socket.socket], use_poll: bool
) -> None:
    ours, theirs = pair
    waiter = SocketWait(ours, use_poll=use_poll)
    assert waiter.wait(0, False) == 0  # nothing to read
    assert waiter.wait(0, True) == WRITE  # room to write
    assert waiter.wait(0, False) == 0  # no longer asked about writing
    theirs.sendall(b"x")
    assert waiter.wait(None, False) == READ
    assert waiter.wait(None, True) == READ | WRITE
    assert ours.recv(16) == b"x"
    assert waiter.wait(0, False) == 0
    waiter.close()


@pytest.mark.parametrize("use_poll", WAYS)
def test_a_closed_peer_is_readable(
    pair: tuple[socket.socket, socket.socket], use_poll: bool
) -> None:
    ours, theirs = pair
    waiter = SocketWait(ours, use_poll=use_poll)
    theirs.close()
    assert waiter.wait(1.0, False) == READ  # the read finds the end of the stream
    assert ours.recv(16) == b""
    waiter.close()


def _until_it_would_block(step: Callable[[], int]) -> int:
    """Repeat a non-blocking send or recv until it would block; the bytes it moved."""
    moved = 0
    while True:
        try:
            moved += step()
        except BlockingIOError:
            return moved


@pytest.mark.parametrize("use_poll", WAYS)
def test_a_full_socket_is_not_writable_until_the_peer_reads(
    pair: tuple[socket.socket, socket.socket], use_poll: bool
) -> None:
    ours, theirs = pair
    waiter = SocketWait(ours, use_poll=use_poll)
    sent = _until_it_would_block(lambda: ours.send(b"\0" * 65536))
    assert waiter.wait(0, True) == 0
    theirs.setblocking(False)
    received = _until_it_would_block(lambda: len(theirs.recv(1 << 20)))
    assert received == sent
    assert waiter.wait(1.0, True) == WRITE
    waiter.close()


@pytest.mark.parametrize("use_poll", WAYS)
def test_the_timeout_is_waited_out(
    pair: tuple[socket.socket, socket.socket], use_poll: bool
) -> None:
    ours, _theirs = pair
    waiter = SocketWait(ours, use_poll=use_poll)
    started = time.monotonic()
    assert waiter.wait(0.05, False) == 0
    assert time.monotonic() - started >= 0.045  # not rounded down to a busy loop
    waiter.close()
