"""`Handoff`, the queue and wake channel behind `Client.call_soon_threadsafe`, on its own."""

from __future__ import annotations

import contextvars
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from puka.blocking.handoff import Handoff
from puka.errors import ClientClosed

from tests.faults.fault_proxy import open_fds

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("CURRENT", default="unset")


@pytest.fixture
def handoff() -> Iterator[Handoff]:
    made = Handoff()
    made.open()
    yield made
    made.close()


def _readable(handoff: Handoff, timeout: float = 0.0) -> bool:
    ready, _, _ = select.select([handoff.fileno()], [], [], timeout)
    return bool(ready)


def _queued_bytes(handoff: Handoff) -> int:
    """Read what is in the wake channel (as `drain` would, but counting it)."""
    reader = socket.socket(fileno=handoff.fileno())
    try:
        count = 0
        while True:
            try:
                chunk = reader.recv(65536)
            except BlockingIOError:
                return count
            count += len(chunk)
    finally:
        reader.detach()  # the handoff still owns the descriptor


def test_a_call_wakes_the_channel_and_runs_in_order(handoff: Handoff) -> None:
    ran: list[int] = []
    assert not _readable(handoff)
    for n in range(3):
        handoff.submit(ran.append, (n,), contextvars.copy_context())
    assert _readable(handoff)
    assert ran == []  # nothing runs until the client's thread runs the queue
    handoff.drain()
    assert not _readable(handoff)
    handoff.run()
    assert ran == [0, 1, 2]
    assert not handoff.calls


def test_a_burst_writes_one_byte_until_drained(handoff: Handoff) -> None:
    context = contextvars.copy_context()
    for _ in range(1000):
        handoff.submit(int, (), context)
    assert _queued_bytes(handoff) == 1  # one pending wake-up is enough
    handoff.drain()  # (clears the flag: the next call writes a byte again)
    handoff.submit(int, (), context)
    assert _queued_bytes(handoff) == 1


def test_no_wakeup_is_lost_when_calls_race_the_drain(handoff: Handoff) -> None:
    """Producers hammer the queue while a consumer drains and runs it as the client does:
    each call runs exactly once, and whenever the queue is not empty after a round, the
    channel is readable (the next poll would return)."""
    total, producers = 20000, 4
    ran: list[int] = []
    context = contextvars.copy_context()

    def produce(start: int) -> None:
        for n in range(start, total, producers):
            handoff.submit(ran.append, (n,), context)

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(ran) < total:
        assert time.monotonic() < deadline, f"{len(ran)} of {total} ran"
        # the client's round: sleep until woken (a lost wake-up would make this time out)
        assert _readable(handoff, 5.0), "calls are queued but nothing woke the client"
        handoff.drain()
        handoff.run()
    for thread in threads:
        thread.join()
    assert sorted(ran) == list(range(total))


def test_a_full_channel_never_blocks_the_caller(handoff: Handoff) -> None:
    writer = socket.socket(fileno=handoff._writer.fileno())  # type: ignore[union-attr]
    try:
        writer.setblocking(False)
        while True:  # fill the channel as a flood of wake-ups would
            try:
                writer.send(b"\0" * 65536)
            except BlockingIOError:
                break
    finally:
        writer.detach()
    handoff._signalled = False  # as after a drain that raced a refill
    began = time.monotonic()
    handoff.submit(int, (), contextvars.copy_context())  # its byte does not fit: no matter
    assert time.monotonic() - began < 1.0
    assert _readable(handoff)
    handoff.drain()
    assert not _readable(handoff)
    assert len(handoff.calls) == 1


def test_calls_run_in_their_context(handoff: Handoff) -> None:
    seen: list[str] = []
    token = CURRENT.set("caller")
    try:
        caller_context = contextvars.copy_context()
    finally:
        CURRENT.reset(token)
    handoff.submit(lambda: seen.append(CURRENT.get()), (), caller_context)
    handoff.submit(lambda: seen.append(CURRENT.get()), (), contextvars.Context())
    handoff.run()
    assert seen == ["caller", "unset"]
    assert CURRENT.get() == "unset"  # the client's own context is untouched


def test_an_exception_leaves_the_later_calls_queued(handoff: Handoff) -> None:
    ran: list[str] = []
    context = contextvars.copy_context()

    def fail() -> None:
        raise KeyError("boom")

    handoff.submit(ran.append, ("first",), context)
    handoff.submit(fail, (), context)
    handoff.submit(ran.append, ("third",), context)
    with pytest.raises(KeyError, match="boom"):
        handoff.run()
    assert ran == ["first"]
    handoff.run()
    assert ran == ["first", "third"]


def test_calls_before_open_are_kept_and_wake_the_first_wait() -> None:
    handoff = Handoff()
    try:
        assert handoff.fileno() == -1
        handoff.submit(int, (), contextvars.copy_context())  # before connect: queued
        handoff.open()
        assert _readable(handoff)  # the first wait returns at once
        assert len(handoff.calls) == 1
    finally:
        handoff.close()


def test_after_close_calls_are_refused_and_the_descriptors_freed() -> None:
    before = open_fds()
    handoff = Handoff()
    handoff.open()
    if before >= 0:
        assert open_fds() == before + 2
    handoff.submit(int, (), contextvars.copy_context())
    handoff.close()
    if before >= 0:
        assert open_fds() == before
    assert handoff.fileno() == -1
    with pytest.raises(ClientClosed):
        handoff.submit(int, (), contextvars.copy_context())
    assert len(handoff.calls) == 1  # what was accepted before still runs
    handoff.run()
    handoff.open()  # a closed handoff stays closed
    assert handoff.fileno() == -1


def test_wait_sleeps_unless_a_call_comes(handoff: Handoff) -> None:
    began = time.monotonic()
    assert handoff.wait(0.05) is False
    assert time.monotonic() - began >= 0.045
    timer = threading.Timer(0.05, handoff.submit, (int, (), contextvars.copy_context()))
    timer.start()
    began = time.monotonic()
    assert handoff.wait(30.0) is True
    assert time.monotonic() - began < 10.0
    assert not _readable(handoff)  # drained
    timer.join()
