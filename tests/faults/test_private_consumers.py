"""Issue 7 rows F8 and F21: the broker ends a consumer.

F8: the queue is deleted under an active consumer (from another client): the consume ends with
``ConsumerCancelled`` within 1 s (callback / async iterator), and a later recovery (every
connection of the private node closed with 320) does not start it again.

F21: a consumer that never acks, with ``consumer_timeout`` 1000 ms and ``channel_tick_interval``
1000 ms set on the private node (restored in ``finally``): its consume fails with
``PreconditionFailed`` (406) within 3 s, and the message is redelivered to the next consumer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import PrivateBrokerNode, UniqueName
from tests.faults.private_helpers import (
    DRIVERS,
    close_quietly,
    connect_blocking,
    delete_queues,
    env_guard,
    queue_counts,
    record,
    run_async,
)

#: Closes every client connection of the node with 320 CONNECTION_FORCED, as an operator would.
CLOSE_ALL = (
    '[rabbit_networking:close_connection(Pid, "puka fault test")'
    " || Pid <- rabbit_networking:connections()], ok."
)


def _delete_from_elsewhere(url: str, queue: str) -> float:
    """Delete ``queue`` with another connection; the time the delete was sent."""
    other = connect_blocking(url)
    try:
        sent = time.monotonic()
        other.wait(other.queue_delete(queue), timeout=5)
        return sent
    finally:
        close_quietly(other)


# ---------------------------------------------------------------------------
# F8: consumer cancel


@pytest.mark.hurts_broker
@pytest.mark.parametrize("driver", DRIVERS)
def test_f8_consumer_cancel(
    driver: str, private_node: PrivateBrokerNode, unique_name: UniqueName
) -> None:
    queue = unique_name("f8")
    began = time.monotonic()
    try:
        if driver == "blocking":
            figures = _f8_blocking(private_node, queue)
        else:
            figures = run_async(lambda: _f8_asyncio(private_node, queue), 30)
        assert figures["cancel_after_delete"] <= 1.0
        # recovery declared the queue again (the client declared it), but not the consumer
        ready, consumers = queue_counts(private_node.url, queue)
        assert consumers == 0, "the cancelled consumer was resurrected by the recovery"
        assert ready == 1, "the message published after the recovery was taken"
        record(
            "F8",
            driver,
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
            seconds=round(time.monotonic() - began, 3),
        )
    finally:
        delete_queues(private_node.url, queue)


def _f8_blocking(node: PrivateBrokerNode, queue: str) -> dict[str, Any]:
    client = connect_blocking(node.url, reconnect=True)
    recovered: list[float] = []
    client.on_recovered = lambda: recovered.append(time.monotonic())
    results: list[tuple[float, puka.Result]] = []
    try:
        client.wait(client.queue_declare(queue), timeout=5)
        consume = client.basic_consume(
            queue, callback=lambda _p, r: results.append((time.monotonic(), r))
        )
        client.wait(client.basic_publish("", queue, body=b"one"), timeout=5)
        until = time.monotonic() + 5
        while not results and time.monotonic() < until:
            client.loop(timeout=0.02)
        assert [r["body"] for _, r in results] == [b"one"]
        client.basic_ack(results[0][1])
        sent = _delete_from_elsewhere(node.url, queue)
        until = time.monotonic() + 3
        while len(results) < 2 and time.monotonic() < until:
            client.loop(timeout=0.01)
        assert len(results) == 2, "no cancel arrived"
        cancelled_at, cancel = results[1]
        assert cancel.is_error and isinstance(cancel.exception, puka.ConsumerCancelled)
        assert client.engine.promises.is_finished_consume(consume)
        with pytest.raises(puka.ChannelClosed):
            client.wait(consume)  # over: raises at once instead of hanging
        # a recovery now must not bring the consumer back
        node.eval(CLOSE_ALL)
        until = time.monotonic() + 5
        while not recovered and time.monotonic() < until:
            client.loop(timeout=0.02)
        assert recovered, "the client did not recover"
        client.wait(client.basic_publish("", queue, body=b"after recovery"), timeout=5)
        client.loop(timeout=0.3)
        assert len(results) == 2, f"the cancelled consume got more: {results[2:]}"
        return {
            "cancel_after_delete": cancelled_at - sent,
            "recoveries": client.engine.recoveries,
            "deliveries_after_cancel": len(results) - 2,
        }
    finally:
        close_quietly(client)


async def _f8_asyncio(node: PrivateBrokerNode, queue: str) -> dict[str, Any]:
    client = await puka_asyncio.connect(node.url, reconnect=True)
    recovered = asyncio.Event()
    client.on_recovered = recovered.set
    async with client:
        await client.queue_declare(queue)
        consume = client.basic_consume(queue)
        assert isinstance(consume, puka_asyncio.ConsumeHandle)
        await client.basic_publish("", queue, body=b"one")
        seen: list[bytes] = []
        ended: list[tuple[float, BaseException | None]] = []
        first = asyncio.Event()

        async def consumer() -> None:
            try:
                async for message in consume:
                    seen.append(message["body"])
                    client.basic_ack(message)
                    first.set()
            except puka.ConsumerCancelled as exc:
                ended.append((time.monotonic(), exc))
            else:
                ended.append((time.monotonic(), None))

        task = asyncio.create_task(consumer())
        await asyncio.wait_for(first.wait(), 5)
        sent = await asyncio.to_thread(_delete_from_elsewhere, node.url, queue)
        await asyncio.wait_for(task, 3)
        ended_at, error = ended[0]
        assert isinstance(error, puka.ConsumerCancelled), "the iterator did not end with the cancel"
        assert consume.done
        node.eval(CLOSE_ALL)
        await asyncio.wait_for(recovered.wait(), 5)
        await client.basic_publish("", queue, body=b"after recovery")
        await asyncio.sleep(0.3)
        assert seen == [b"one"]
        return {
            "cancel_after_delete": ended_at - sent,
            "recoveries": client.engine.recoveries,
            "deliveries_after_cancel": len(seen) - 1,
        }


# ---------------------------------------------------------------------------
# F21: consumer ack timeout


TIMEOUT_SETTINGS = (
    "application:set_env(rabbit, consumer_timeout, 1000),"
    " application:set_env(rabbit, channel_tick_interval, 1000)."
)


@pytest.mark.hurts_broker
@pytest.mark.parametrize("driver", DRIVERS)
def test_f21_consumer_ack_timeout(
    driver: str, private_node: PrivateBrokerNode, unique_name: UniqueName
) -> None:
    queue = unique_name("f21")
    began = time.monotonic()
    try:
        with env_guard(private_node, "consumer_timeout", "channel_tick_interval"):
            private_node.eval(TIMEOUT_SETTINGS)
            if driver == "blocking":
                figures = _f21_blocking(private_node.url, queue)
            else:
                figures = run_async(lambda: _f21_asyncio(private_node.url, queue), 30)
        assert figures["timeout_after_delivery"] <= 3.0
        assert queue_counts(private_node.url, queue) == (0, 0)
        record(
            "F21",
            driver,
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
            seconds=round(time.monotonic() - began, 3),
        )
    finally:
        delete_queues(private_node.url, queue)


def _f21_blocking(url: str, queue: str) -> dict[str, Any]:
    client = connect_blocking(url)
    try:
        client.wait(client.queue_declare(queue), timeout=5)
        client.wait(client.basic_publish("", queue, body=b"slow"), timeout=5)
        consume = client.basic_consume(queue, prefetch_count=1)
        message = client.wait(consume, timeout=5)
        assert message is not None and message["body"] == b"slow"
        delivered = time.monotonic()
        with pytest.raises(puka.PreconditionFailed) as timed_out:
            client.wait(consume, timeout=5)  # never acked
        detected = time.monotonic() - delivered
        assert timed_out.value.reply_code == 406
        # the connection goes on; the next consumer gets the message again
        second = client.basic_consume(queue, prefetch_count=1)
        again = client.wait(second, timeout=5)
        assert again is not None and again["body"] == b"slow" and again["redelivered"] is True
        client.basic_ack(again)
        client.wait(client.basic_cancel(second), timeout=5)
        assert client.engine.state.value == "open"
        return {
            "timeout_after_delivery": detected,
            "reply_code": 406,
            "redelivered": True,
            "lost": 0,
        }
    finally:
        close_quietly(client)


async def _f21_asyncio(url: str, queue: str) -> dict[str, Any]:
    async with await puka_asyncio.connect(url) as client:
        await client.queue_declare(queue)
        await client.basic_publish("", queue, body=b"slow")
        consume = client.basic_consume(queue, prefetch_count=1)
        assert isinstance(consume, puka_asyncio.ConsumeHandle)
        message = await asyncio.wait_for(consume, 5)
        assert message["body"] == b"slow"
        delivered = time.monotonic()
        with pytest.raises(puka.PreconditionFailed) as timed_out:
            await asyncio.wait_for(consume, 5)
        detected = time.monotonic() - delivered
        assert timed_out.value.reply_code == 406
        second = client.basic_consume(queue, prefetch_count=1)
        assert isinstance(second, puka_asyncio.ConsumeHandle)
        again = await asyncio.wait_for(second, 5)
        assert again["body"] == b"slow" and again["redelivered"] is True
        client.basic_ack(again)
        await client.basic_cancel(second)
        assert client.engine.state.value == "open"
        return {
            "timeout_after_delivery": detected,
            "reply_code": 406,
            "redelivered": True,
            "lost": 0,
        }
