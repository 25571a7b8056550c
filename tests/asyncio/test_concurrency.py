"""Many calls at once, leaving consumes early, cancelling tasks: nothing leaks, nothing desyncs."""

from __future__ import annotations

import asyncio
import gc

import puka
import puka_asyncio
import pytest
from puka import promises as promises_module
from puka.engine.channels import IDLE_CHANNELS_KEPT

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import (
    assert_no_leaks,
    counts,
    eventually,
    exclusive_queue,
    next_message,
    within,
)
from tests.broker_node import UniqueName


async def test_ten_thousand_concurrent_publishes(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    results = await within(
        asyncio.gather(*(client.basic_publish("", queue, body=b"%d" % i) for i in range(10_000))),
        30,
    )
    assert len(results) == 10_000
    assert all(result == {} and not result.is_error for result in results)
    assert await counts(client, queue) == (10_000, 0)
    assert len(client.engine.promises.live) == 0 and not client.engine.promises.bare
    assert client.pending_handles == 0
    assert client.engine.publisher is not None
    assert client.engine.publisher.in_flight == 0
    assert len(client.engine.channels) <= 3
    assert_no_leaks(client)
    # and they arrived in order
    consume = client.basic_consume(queue=queue, prefetch_count=1000, no_ack=True)
    bodies = [(await next_message(consume))["body"] for _ in range(10_000)]
    assert bodies == [b"%d" % i for i in range(10_000)]
    await within(client.basic_cancel(consume))
    assert_no_leaks(client)


async def test_many_concurrent_declares_share_few_channels(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    names = [unique_name("many") for _ in range(300)]
    results = await within(
        asyncio.gather(*(client.queue_declare(queue=name, exclusive=True) for name in names))
    )
    assert [r["queue"] for r in results] == names  # each answer went to its own call
    pool = client.engine.channels

    async def trimmed() -> bool:
        # the pool keeps IDLE_CHANNELS_KEPT idle channels and closes the others
        return len(pool) == len(pool.idle) == IDLE_CHANNELS_KEPT

    await eventually(trimmed, what="the idle channels to be trimmed")
    deleted = await within(asyncio.gather(*(client.queue_delete(queue=n) for n in names)))
    assert [r["message_count"] for r in deleted] == [0] * 300
    await eventually(trimmed, what="the idle channels to be trimmed again")
    assert_no_leaks(client, max_channels=IDLE_CHANNELS_KEPT)


async def test_break_out_of_a_consume_cancels_it(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(
        asyncio.gather(*(client.basic_publish("", queue, body=b"%d" % i) for i in range(50)))
    )
    for round_ in range(5):  # leaving a consume early, again and again, leaks nothing
        async for message in client.basic_consume(queue=queue, prefetch_count=100):
            assert message["body"] == b"0"
            client.basic_ack(message)
            break
        gc.collect()  # (the loop's async generator is finalised at once on CPython anyway)

        async def no_consumer() -> bool:
            return (await counts(client, queue))[1] == 0

        await eventually(no_consumer, what=f"the consume of round {round_} to be cancelled")
        # the messages it had prefetched but never handed out are back in the queue
        await eventually(lambda: _ready(client, queue, 49), what="the prefetched to be requeued")
        await within(client.queue_purge(queue=queue))
        await within(
            asyncio.gather(*(client.basic_publish("", queue, body=b"%d" % i) for i in range(50)))
        )
    await eventually(lambda: _settled(client), what="the client to be idle")
    assert_no_leaks(client, max_channels=3)  # the publisher's, the consumes', a declare's


async def _ready(client: puka_asyncio.AsyncClient, queue: str, expected: int) -> bool:
    return (await counts(client, queue))[0] == expected


async def _settled(client: puka_asyncio.AsyncClient) -> bool:
    """No operation in flight, no delivery left to settle."""
    engine = client.engine
    channels = engine.channels.by_number.values()
    promises = engine.promises
    return not promises.live and not promises.bare and not any(c.unacked for c in channels)


async def test_exception_inside_a_consume_loop_cancels_it(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(client.basic_publish("", queue, body=b"boom"))

    async def fail_on_first() -> None:
        async for message in client.basic_consume(queue=queue, no_ack=True):
            raise RuntimeError(message["body"])

    with pytest.raises(RuntimeError):
        await within(fail_on_first())

    async def no_consumer() -> bool:
        return (await counts(client, queue))[1] == 0

    await eventually(no_consumer, what="the consume to be cancelled")
    await eventually(lambda: _settled(client), what="the client to be idle")
    assert_no_leaks(client)


async def test_cancel_then_break_sends_one_cancel(make_client: ClientFactory) -> None:
    """``basic_cancel(handle)`` then ``break``: the loop sends no second cancel (which would
    leave the first one unanswered), and the caller's cancel completes."""
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(
        asyncio.gather(*(client.basic_publish("", queue, body=b"%d" % i) for i in range(20)))
    )
    consume = client.basic_consume(queue=queue, prefetch_count=10)
    async for message in consume:
        client.basic_ack(message)
        cancel = client.basic_cancel(consume)
        break
    assert (await within(cancel)).name == "basic.cancel_ok"
    await eventually(lambda: _settled(client), what="the client to be idle")
    # the 9 prefetched were requeued (the rejects reach the queue after their own channel)
    await eventually(lambda: _ready(client, queue, 19), what="the prefetched to be requeued")
    assert_no_leaks(client)


async def test_two_cancels_in_flight_both_complete(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue)
    await within(client.queue_declare(queue=queue, passive=True))  # consume-ok has arrived
    first, second = client.basic_cancel(consume), client.basic_cancel(consume)
    try:
        await within(asyncio.gather(first, second), 2)
    finally:
        for cancel in (first, second):
            cancel.cancel()


async def test_cancelling_the_task_of_a_consume_loop_cancels_the_consume(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    received: list[bytes] = []

    async def consume() -> None:
        async for message in client.basic_consume(queue=queue, prefetch_count=10):
            received.append(message["body"])
            client.basic_ack(message)

    task = asyncio.ensure_future(consume())
    await within(client.basic_publish("", queue, body=b"one"))

    async def got_one() -> bool:
        return received == [b"one"]

    await eventually(got_one, what="the first message")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def no_consumer() -> bool:
        return (await counts(client, queue))[1] == 0

    await eventually(no_consumer, what="the consume to be cancelled")
    await within(client.basic_publish("", queue, body=b"two"))
    assert (await within(client.basic_get(queue=queue, no_ack=True)))["body"] == b"two"
    await eventually(lambda: _settled(client), what="the client to be idle")
    assert_no_leaks(client)


async def test_cancelled_declare_does_not_desynchronise(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    first, second, third = unique_name("first"), unique_name("second"), unique_name("third")

    async def declare(name: str) -> str:
        return str((await client.queue_declare(queue=name, exclusive=True))["queue"])

    task = asyncio.ensure_future(declare(first))
    await asyncio.sleep(0)  # the task is now awaiting the declare
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the next operations get their own answers, not the cancelled one's
    assert await within(declare(second)) == second
    results = await within(
        asyncio.gather(
            client.queue_declare(queue=third, exclusive=True),
            client.queue_declare(queue=first, passive=True),  # the cancelled one ran anyway
        )
    )
    assert [r["queue"] for r in results] == [third, first]
    # a cancel mid-flight through wait_for, many times over, with publishes in between
    queue = await exclusive_queue(client)
    for i in range(20):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.queue_declare(queue=unique_name("t"), exclusive=True), 0)
        assert await within(client.basic_publish("", queue, body=b"%d" % i)) == {}
        assert (await within(client.queue_declare(queue=queue, passive=True)))["queue"] == queue
    assert await counts(client, queue) == (20, 0)
    await eventually(lambda: _settled(client), what="the cancelled calls to finish")
    # the overlapping calls took channels of their own: idle now, kept for reuse
    assert_no_leaks(client, max_channels=IDLE_CHANNELS_KEPT + 1)


async def test_cancelled_publish_still_completes(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    publish = client.basic_publish("", queue, body=b"cancelled, yet sent")
    publish.cancel()
    assert publish.cancelled()
    assert await within(client.basic_publish("", queue, body=b"next")) == {}
    assert await counts(client, queue) == (2, 0)
    await eventually(lambda: _settled(client), what="the cancelled publish to be confirmed")
    assert_no_leaks(client)


async def test_concurrent_consumers_and_publishers(make_client: ClientFactory) -> None:
    """Several consume loops and publishers on one client at once."""
    client = await make_client()
    queues = [await exclusive_queue(client) for _ in range(4)]
    per_queue = 500

    async def consume(queue: str) -> list[bytes]:
        bodies: list[bytes] = []
        async for message in client.basic_consume(queue=queue, prefetch_count=50):
            bodies.append(message["body"])
            client.basic_ack(message)
            if len(bodies) == per_queue:
                break
        return bodies

    async def publish(queue: str) -> None:
        for i in range(per_queue):
            await client.basic_publish("", queue, body=b"%d" % i)

    consumers = [asyncio.ensure_future(consume(q)) for q in queues]
    await within(asyncio.gather(*(publish(q) for q in queues)), 30)
    results = await within(asyncio.gather(*consumers), 30)
    for bodies in results:
        assert bodies == [b"%d" % i for i in range(per_queue)]
    await eventually(lambda: _settled(client), what="the consumes to be cancelled")
    for queue in queues:
        assert await counts(client, queue) == (0, 0)
    assert_no_leaks(client, max_channels=6)


async def test_publishes_are_futures_without_promise_objects(make_client: ClientFactory) -> None:
    """A publish without a callback is a bare promise: its future, and a number in the engine."""
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(client.basic_publish("", queue, body=b"first"))  # opens the publish channel
    futures = [client.basic_publish("", queue, body=b"%d" % i) for i in range(100)]
    assert {int(f) for f in futures} == set(client.engine.promises.bare)
    assert not client.engine.promises.live
    results = await within(asyncio.gather(*futures))
    assert [r.name for r in results] == ["basic.ack"] * 100
    assert await counts(client, queue) == (101, 0)
    assert_no_leaks(client)


@pytest.mark.parametrize("pubacks", [True, False])
async def test_publishes_ended_past_the_unclaimed_bound_still_resolve(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, pubacks: bool
) -> None:
    """More publishes end in one read (or one write) than the engine keeps successes for: the
    future of one pushed out still gets a success."""
    monkeypatch.setattr(promises_module, "UNCLAIMED_SUCCESSES_KEPT", 3)
    client = await make_client(pubacks=pubacks)
    queue = await exclusive_queue(client)
    await within(client.basic_publish("", queue, body=b"first"))
    results = await within(
        asyncio.gather(*(client.basic_publish("", queue, body=b"%d" % i) for i in range(200)))
    )
    assert len(results) == 200 and not any(r.is_error for r in results)

    async def all_enqueued() -> bool:  # without confirms, "written" is all a publish knows
        return await counts(client, queue) == (201, 0)

    await eventually(all_enqueued, what="the 201 messages to be enqueued")
    assert_no_leaks(client)


async def test_a_call_from_another_thread_is_refused(make_client: ClientFactory) -> None:
    """The engine belongs to the loop's thread: another thread's call raises `WrongThread`
    (naming the call and the way to hand it over) and leaves the client as it was."""
    client = await make_client()
    queue = await exclusive_queue(client)
    raised: list[BaseException] = []

    def other_thread() -> None:
        for call in (
            lambda: client.basic_publish("", queue, body=b"x"),
            lambda: client.basic_publish_number("", queue, body=b"x"),
            lambda: client.queue_declare(queue=queue, passive=True),
        ):
            try:
                call()
            except BaseException as exc:  # (what was raised is checked below)
                raised.append(exc)

    await asyncio.get_running_loop().run_in_executor(None, other_thread)
    assert [type(e) for e in raised] == [puka.WrongThread] * 3
    assert "basic_publish: thread" in str(raised[0]) and "call_soon_threadsafe" in str(raised[0])
    assert "queue_declare" in str(raised[2])
    # handed over the documented way, it works
    loop = asyncio.get_running_loop()
    done: asyncio.Future[puka.Result] = loop.create_future()

    def hand_over() -> None:
        loop.call_soon_threadsafe(
            lambda: client.basic_publish("", queue, body=b"y").add_done_callback(
                lambda f: done.set_result(f.result())
            )
        )

    await loop.run_in_executor(None, hand_over)
    assert (await within(done)).name == "basic.ack"
    assert await counts(client, queue) == (1, 0)
    assert_no_leaks(client)
