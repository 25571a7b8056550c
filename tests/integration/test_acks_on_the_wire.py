"""Issue 19 item 1: when control returns to the user, what the user asked to send is on the wire.

Each test acks some messages, then sleeps outside the client (no call into it), then asks the
broker itself (`rabbitmqctl list_queues messages_unacknowledged`) how many of the queue's
messages are still unacknowledged: none, within 0.2 s, whether the messages came from `wait`,
from callbacks run by `loop`, or from the asyncio client. Before the rule, acks queued in the
client until 4 KiB or a blocking wait (Puka 0.0.8's bug #3), and the broker still counted all
three unacked a second later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import RabbitmqCtl, UniqueName

SLEEP = 0.2
COUNT = 3


def _unacked(rabbitmqctl: RabbitmqCtl, queue: str) -> int:
    out = rabbitmqctl("list_queues", "-q", "--no-table-headers", "name", "messages_unacknowledged")
    for line in out.splitlines():
        name, _, count = line.rpartition("\t")
        if name.strip() == queue:
            return int(count)
    raise AssertionError(f"queue {queue} not listed: {out!r}")


@pytest.fixture
def queue(amqp_url: str, unique_name: UniqueName) -> Iterator[str]:
    name = unique_name("acks")
    with puka.Client(amqp_url) as client:
        client.wait(client.connect())
        client.wait(client.queue_declare(queue=name))
        client.wait_for_all([client.basic_publish("", name, body=b"m%d" % i) for i in range(COUNT)])
    yield name
    with puka.Client(amqp_url) as client:
        client.wait(client.connect())
        client.wait(client.queue_delete(queue=name))


def _blocking(amqp_url: str) -> puka.Client:
    client = puka.Client(amqp_url)
    client.wait(client.connect())
    return client


def test_acks_after_wait_are_on_the_wire(
    amqp_url: str, queue: str, rabbitmqctl: RabbitmqCtl
) -> None:
    client = _blocking(amqp_url)
    try:
        consume = client.basic_consume(queue=queue, prefetch_count=COUNT)
        for _ in range(COUNT):  # the 2nd and 3rd are buffered: wait returns without blocking
            message = client.wait(consume)
            client.basic_ack(message)
        time.sleep(SLEEP)  # outside the client
        assert _unacked(rabbitmqctl, queue) == 0
    finally:
        client.wait(client.close(), raise_errors=False)


def test_nacks_and_rejects_after_wait_are_on_the_wire(
    amqp_url: str, queue: str, rabbitmqctl: RabbitmqCtl
) -> None:
    client = _blocking(amqp_url)
    try:
        consume = client.basic_consume(queue=queue, prefetch_count=COUNT)
        messages = [client.wait(consume) for _ in range(COUNT)]
        client.basic_reject(messages[0], requeue=False)
        client.basic_nack(messages[2], multiple=True, requeue=False)
        time.sleep(SLEEP)
        assert _unacked(rabbitmqctl, queue) == 0
    finally:
        client.wait(client.close(), raise_errors=False)


def test_acks_made_in_callbacks_are_on_the_wire_when_loop_returns(
    amqp_url: str, queue: str, rabbitmqctl: RabbitmqCtl
) -> None:
    client = _blocking(amqp_url)
    seen: list[Any] = []

    def on_message(promise: int, message: Any) -> None:
        client.basic_ack(message)  # inside the loop: written with its batch
        seen.append(message)
        if len(seen) == COUNT:
            client.loop_break()

    try:
        client.basic_consume(queue=queue, prefetch_count=COUNT, callback=on_message)
        client.loop(timeout=5)
        assert len(seen) == COUNT
        time.sleep(SLEEP)
        assert _unacked(rabbitmqctl, queue) == 0
    finally:
        client.wait(client.close(), raise_errors=False)


def test_acks_made_in_a_callback_are_on_the_wire_when_wait_returns(
    amqp_url: str, queue: str, rabbitmqctl: RabbitmqCtl
) -> None:
    """`wait` on a promise with a callback runs the callback with the result and returns it."""
    client = _blocking(amqp_url)
    try:
        consume = client.basic_consume(
            queue=queue, prefetch_count=COUNT, callback=lambda _p, m: client.basic_ack(m)
        )
        for _ in range(COUNT):
            client.wait(consume)
        time.sleep(SLEEP)
        assert _unacked(rabbitmqctl, queue) == 0
    finally:
        client.wait(client.close(), raise_errors=False)


def test_asyncio_acks_are_on_the_wire_without_an_await(
    amqp_url: str, queue: str, rabbitmqctl: RabbitmqCtl
) -> None:
    async def main() -> int:
        client = await puka_asyncio.connect(amqp_url)
        async with client:
            consume = client.basic_consume(queue=queue, prefetch_count=COUNT)
            messages = [await consume for _ in range(COUNT)]
            for message in messages:  # then no await: the loop never runs a scheduled flush
                client.basic_ack(message)
            time.sleep(SLEEP)  # blocks the loop: outside the client
            unacked = _unacked(rabbitmqctl, queue)
            await client.basic_cancel(consume)
        return unacked

    assert asyncio.run(main()) == 0


def test_asyncio_acks_made_in_callbacks_go_out_with_their_batch(
    amqp_url: str, queue: str, rabbitmqctl: RabbitmqCtl
) -> None:
    """A callback runs as results are handed out: its ack waits for the rest of that batch (one
    write), and is on the wire before the loop runs anything else."""

    async def main() -> int:
        client = await puka_asyncio.connect(amqp_url)
        async with client:
            seen = asyncio.Event()
            count = [0]

            def on_message(_promise: int, message: Any) -> None:
                client.basic_ack(message)
                assert client.engine.outgoing_bytes > 0  # waits for the batch
                count[0] += 1
                if count[0] == COUNT:
                    seen.set()

            consume = client.basic_consume(queue=queue, prefetch_count=COUNT, callback=on_message)
            await asyncio.wait_for(seen.wait(), 5)
            time.sleep(SLEEP)  # blocks the loop: outside the client
            unacked = _unacked(rabbitmqctl, queue)
            await client.basic_cancel(consume)
        return unacked

    assert asyncio.run(main()) == 0
