"""The read buffer that the clients of one thread share (`puka.driver.ReadBuffer`).

The engine copies what it keeps of a read, so one 64 KiB buffer per thread serves every
client the thread drives; one per client was most of an idle client's memory.
"""

from __future__ import annotations

import gc
import select
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
from puka.engine import Engine

from tests.integration.helpers import SOON, Resources, wait_ok


def test_an_idle_client_holds_no_read_buffer_of_its_own(make_client: Callable[..., Any]) -> None:
    """20 connected clients (each after a round trip) cost well under 64 KiB each: the read
    buffer is the thread's (before, each held 64 KiB: 78 KiB per client in all)."""
    make_client()  # the thread's buffer, and what the first client sets up once
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        clients = [make_client() for _ in range(20)]
        for client in clients:
            wait_ok(client, client.queue_declare(exclusive=True))
        gc.collect()
        each = (tracemalloc.get_traced_memory()[0] - before) / len(clients)
    finally:
        tracemalloc.stop()
    assert each < 32 * 1024, f"{each / 1024:.1f} KiB per idle client"


def _readable(*clients: Any) -> None:
    """Wait until each client's socket has bytes waiting (the broker answered)."""
    deadline = time.monotonic() + SOON
    waiting = {client.socket() for client in clients}
    while waiting and time.monotonic() < deadline:
        ready, _, _ = select.select(list(waiting), [], [], 0.1)
        waiting -= set(ready)
    assert not waiting, "the broker did not answer"


def test_a_read_made_inside_another_clients_feed_leaves_its_bytes_alone(
    make_client: Callable[..., Any], resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Client two reads (a hook, a nested wait) while client one's read is being fed to its
    engine from the thread's buffer: two reads into a spare buffer, and each gets its own
    message."""
    one, two = make_client(), make_client()
    queues = resources.queue(), resources.queue()
    for client, queue, body in ((one, queues[0], b"1" * 3000), (two, queues[1], b"2" * 5000)):
        wait_ok(client, client.queue_declare(queue=queue))
        wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=body))
    get_two = two.basic_get(queue=queues[1], no_ack=True)
    get_one = one.basic_get(queue=queues[0], no_ack=True)
    one.on_write()  # (a call is written at the next wait, or now)
    two.on_write()
    _readable(one, two)
    engine = one.engine
    feed = Engine.receive_data
    nested: list[bool] = []

    def receive_data(self: Engine, data: Any, now: float | None = None) -> None:
        if self is engine and not nested:  # the first read of one: two reads before one's
            nested.append(True)  # engine decodes it
            two.on_read()
        feed(self, data, now)

    with monkeypatch.context() as patch:  # (on the class: an engine has slots)
        patch.setattr(Engine, "receive_data", receive_data)
        assert wait_ok(one, get_one)["body"] == b"1" * 3000
    assert nested
    assert wait_ok(two, get_two)["body"] == b"2" * 5000
