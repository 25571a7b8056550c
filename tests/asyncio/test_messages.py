"""Messages through the asyncio client: bodies, properties, headers, acks, consumes, tx, RPC."""

from __future__ import annotations

import asyncio
import datetime
import os
import tracemalloc
from decimal import Decimal
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import (
    assert_no_leaks,
    counts,
    eventually,
    exclusive_queue,
    next_message,
    within,
)
from tests.integration.helpers import every_basic_property, url_user
from tests.integration.test_messages import PROPERTY_NAMES, assert_same

UTC = datetime.timezone.utc


async def round_trip(
    client: puka_asyncio.AsyncClient, queue: str, body: bytes | str = b"", **publish: Any
) -> Any:
    """Publish to ``queue`` (confirmed), then fetch it back with basic_get."""
    assert await within(client.basic_publish("", queue, body=body, **publish)) == {}
    message = await within(client.basic_get(queue=queue, no_ack=True))
    assert message.name == "basic.get_ok", "the published message is not in the queue"
    return message


# --- bodies ---------------------------------------------------------------------------------


async def test_every_byte_value_by_get_and_by_consume(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    body = bytes(range(256))
    assert (await round_trip(client, queue, body))["body"] == body
    consume = client.basic_consume(queue=queue, no_ack=True)
    await within(client.basic_publish("", queue, body=body[::-1]))
    message = await next_message(consume)
    assert message["body"] == body[::-1]
    assert type(message["body"]) is bytes
    await within(client.basic_cancel(consume))


async def test_empty_and_str_bodies(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    assert (await round_trip(client, queue, b""))["body"] == b""
    assert (await round_trip(client, queue, "žluťoučký kůň 🐴"))["body"] == (
        "žluťoučký kůň 🐴".encode()
    )


async def test_five_mebibyte_body(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    body = os.urandom(5 * 1024 * 1024)
    assert (await round_trip(client, queue, body))["body"] == body
    # and through a consume, with a small body after it on the same channel
    consume = client.basic_consume(queue=queue, no_ack=True)
    await within(
        asyncio.gather(
            client.basic_publish("", queue, body=body), client.basic_publish("", queue, body=b"s")
        )
    )
    assert (await next_message(consume))["body"] == body
    assert (await next_message(consume))["body"] == b"s"
    await within(client.basic_cancel(consume))
    assert_no_leaks(client)


async def test_large_publishes_gathered_are_not_copied_nor_buffered_whole(
    make_client: ClientFactory,
) -> None:
    """Twenty 4 MiB publishes at once: the transport never holds more than about a slice
    beyond its high-water mark, and the bodies (one object, sent twenty times) are not copied
    into the outgoing buffers: memory grows by a few MiB, not by 80."""
    client = await make_client()
    queue = await exclusive_queue(client)
    body = os.urandom(4 * 1024 * 1024)
    transport = client._protocol.transport
    assert transport is not None
    _low, high = transport.get_write_buffer_limits()
    largest = 0

    def watch() -> None:
        nonlocal largest
        largest = max(largest, transport.get_write_buffer_size())
        if not transport.is_closing():
            watcher.append(client.loop.call_soon(watch))

    watcher = [client.loop.call_soon(watch)]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        results = await within(
            asyncio.gather(*[client.basic_publish("", queue, body=body) for _ in range(20)])
        )
        growth = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
        watcher[-1].cancel()
    assert all(not result.is_error for result in results)
    assert growth < 16 * 1024 * 1024, f"grew by {growth / 2**20:.1f} MiB"
    assert largest <= high + 512 * 1024, f"transport buffer reached {largest} bytes"
    consume = client.basic_consume(queue=queue, no_ack=True)
    for _ in range(20):
        assert (await next_message(consume))["body"] == body
    await within(client.basic_cancel(consume))
    assert_no_leaks(client)


# --- properties and headers -------------------------------------------------------------------


async def test_every_basic_property_round_trips(make_client: ClientFactory, amqp_url: str) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    properties = every_basic_property(url_user(amqp_url))  # user_id: the connection's user
    for fetch in ("get", "consume"):
        if fetch == "get":
            received = (await round_trip(client, queue, b"{}", headers=dict(properties)))["headers"]
        else:
            consume = client.basic_consume(queue=queue)
            await within(client.basic_publish("", queue, headers=dict(properties), body=b"{}"))
            message = await next_message(consume)
            client.basic_ack(message)
            await within(client.basic_cancel(consume))
            received = message["headers"]
        for key, value in properties.items():
            assert key in received, f"property {key} was lost ({fetch})"
            assert_same(received[key], value, key)
        assert {k for k, v in received.items() if v is not None} == set(properties)
    assert_no_leaks(client)


async def test_non_ascii_and_typed_headers(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    headers: dict[str, Any] = {
        "clé-ключ-鍵": "välue-значение-値-✓",
        "emoji-🐇": "🥕" * 50,
        "int": 42,
        "int64": 2**40 + 3,
        "negative": -(2**62),
        "float": 3.25,
        "true": True,
        "false": False,
        "none": None,
        "bytes": bytes(range(256)),
        "list": [1, "dvě", 3.5, None, True, b"\x00\x01", [4, [5]], {"šest": 6}],
        "dict": {"ä": 1, "b": {"ç": [1, 2, {"d": "deep-ü"}]}},
        "decimal": Decimal("-12345.678"),
        "datetime": datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=UTC),
    }
    message = await round_trip(client, queue, "ü", headers=dict(headers))
    app = {k: v for k, v in message["headers"].items() if k not in PROPERTY_NAMES}
    assert_same(app, headers, "headers")
    assert message["body"] == "ü".encode()


async def test_non_ascii_names_and_routing_keys(
    make_client: ClientFactory, unique_name: Any
) -> None:
    client = await make_client()
    queue = unique_name("ünïcödé-日本語-🐇")
    exchange = unique_name("échange-交換")
    key = "clé.routage.ключ.🔑"
    assert (await within(client.queue_declare(queue=queue, exclusive=True)))["queue"] == queue
    await within(client.exchange_declare(exchange=exchange, auto_delete=True))
    await within(client.queue_bind(queue=queue, exchange=exchange, routing_key=key))
    await within(client.basic_publish(exchange, key, body=b"x"))
    message = await within(client.basic_get(queue=queue, no_ack=True))
    assert (message["exchange"], message["routing_key"]) == (exchange, key)
    await within(client.queue_delete(queue=queue))  # the exchange auto-deletes with its binding


# --- acks, rejects, nacks ---------------------------------------------------------------------


async def test_consume_ack_reject_nack(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue, prefetch_count=10)
    assert isinstance(consume, puka_asyncio.ConsumeHandle)
    for body in (b"ack", b"reject", b"nack", b"drop"):
        await within(client.basic_publish("", queue, body=body))
    received = {}
    for _ in range(4):
        message = await next_message(consume)
        assert message.name == "basic.deliver"
        assert message["redelivered"] is False
        assert message["consumer_tag"]
        received[message["body"]] = message
    client.basic_ack(received[b"ack"])
    client.basic_reject(received[b"reject"], requeue=True)
    client.basic_nack(received[b"nack"], requeue=True)
    client.basic_reject(received[b"drop"], requeue=False)
    redelivered = [await next_message(consume), await next_message(consume)]
    assert sorted(m["body"] for m in redelivered) == [b"nack", b"reject"]
    assert all(m["redelivered"] for m in redelivered)
    # nack multiple settles both at once, without requeueing
    client.basic_nack(
        max(redelivered, key=lambda m: m["delivery_tag"]), multiple=True, requeue=False
    )
    await within(client.basic_cancel(consume))
    assert await counts(client, queue) == (0, 0)
    assert client.engine.stale_acks == 0
    assert_no_leaks(client)


async def test_get_ack_and_reject(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(client.basic_publish("", queue, body=b"one"))
    message = await within(client.basic_get(queue=queue))
    client.basic_reject(message)  # requeued
    again = await within(client.basic_get(queue=queue))
    assert again["body"] == b"one"
    assert again["redelivered"] is True
    client.basic_ack(again)
    assert await counts(client, queue) == (0, 0)
    # a no_ack result cannot be acked
    await within(client.basic_publish("", queue, body=b"two"))
    no_ack = await within(client.basic_get(queue=queue, no_ack=True))
    with pytest.raises(ValueError):
        client.basic_ack(no_ack)
    with pytest.raises(ValueError):
        client.basic_ack(await within(client.queue_declare(queue=queue, passive=True)))
    assert_no_leaks(client)


# --- consumes: cancel, qos, recover, several queues ----------------------------------------------


async def test_cancel_ends_the_iteration(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue, no_ack=True)
    await within(client.basic_publish("", queue, body=b"1"))
    bodies = []

    async def iterate() -> None:
        async for message in consume:
            bodies.append(message["body"])

    iterating = asyncio.ensure_future(iterate())
    await eventually(lambda: _true(bodies), what="the first delivery")
    cancel = await within(client.basic_cancel(consume))
    assert cancel.name == "basic.cancel_ok"
    await within(iterating)  # the async for ended by itself
    assert bodies == [b"1"]
    assert consume.done
    assert await counts(client, queue) == (0, 0)
    with pytest.raises(StopAsyncIteration):
        await within(consume)
    # cancelling again is no error
    assert not (await within(client.basic_cancel(consume))).is_error
    assert_no_leaks(client)


def _held(client: puka_asyncio.AsyncClient, consume: puka_asyncio.ConsumeHandle) -> bool:
    """Whether a consume holds results not handed out yet: in its promise, in the engine,
    while it runs, or in the handle, once it ended."""
    return bool(consume._results) or client.engine.promises.peek(int(consume)) is not None


async def _true(items: list[Any]) -> bool:
    return bool(items)


async def test_qos_limits_unacked_deliveries(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(
        asyncio.gather(*(client.basic_publish("", queue, body=b"%d" % i) for i in range(10)))
    )
    consume = client.basic_consume(queue=queue, prefetch_count=3)
    first = [await next_message(consume) for _ in range(3)]
    await asyncio.sleep(0.2)
    assert not _held(client, consume), "more than prefetch_count delivered"
    # RabbitMQ applies a new per-consumer prefetch to later consumers only; a channel-wide
    # (global) one limits the running consume at once
    qos = await within(client.basic_qos(consume, prefetch_count=1, global_=True))
    assert qos.name == "basic.qos_ok"
    client.basic_ack(first[-1], multiple=True)
    one = await next_message(consume)
    await asyncio.sleep(0.2)
    assert not _held(client, consume), "more than the lowered prefetch_count delivered"
    assert [m["body"] for m in [*first, one]] == [b"%d" % i for i in range(4)]
    client.basic_ack(one)
    rest = []
    for _ in range(6):  # one at a time: each comes once the one before is acked
        rest.append(await next_message(consume))
        client.basic_ack(rest[-1])
    assert [m["body"] for m in rest] == [b"%d" % i for i in range(4, 10)]
    await within(client.basic_cancel(consume))
    assert await counts(client, queue) == (0, 0)
    assert_no_leaks(client)


async def test_acks_in_an_async_for_go_out_with_the_messages_that_came_with_them(
    make_client: ClientFactory,
) -> None:
    """The ack of a message handed out while others that arrived with it wait is written with
    theirs: at the ack of the last one (at once), or when the task suspends first."""
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(
        client.wait_for_all([client.basic_publish("", queue, body=b"%d" % i) for i in range(10)])
    )
    consume = client.basic_consume(queue=queue, prefetch_count=10)

    async def all_ten_arrived() -> bool:
        return len(client.engine.promises.live[int(consume)].results) == 10

    await eventually(all_ten_arrived)
    unwritten = []
    async for message in consume:
        client.basic_ack(message)
        unwritten.append(client.engine.needs_write())
        if len(unwritten) == 7:
            await asyncio.sleep(0)  # the task suspends: what it acked so far is written
            unwritten.append(client.engine.needs_write())
        if len(unwritten) == 11:
            break
    assert unwritten == [True] * 7 + [False] + [True, True, False]

    async def cancelled() -> bool:
        return await counts(client, queue) == (0, 0)

    await eventually(cancelled)
    # the same consumer acking after each message it awaited: every ack is written at once
    await within(
        client.wait_for_all([client.basic_publish("", queue, body=b"x") for _ in range(3)])
    )
    consume = client.basic_consume(queue=queue, prefetch_count=1)
    for _ in range(3):
        client.basic_ack(await next_message(consume))
        assert not client.engine.needs_write()
    await within(client.basic_cancel(consume))
    assert await counts(client, queue) == (0, 0)
    assert_no_leaks(client)


async def test_a_callback_that_raises_is_reported_and_the_client_carries_on(
    make_client: ClientFactory,
) -> None:
    """As asyncio does for its own callbacks: the loop's exception handler gets it."""
    client = await make_client()
    queue = await exclusive_queue(client)
    reported: list[dict[str, Any]] = []
    client.loop.set_exception_handler(lambda _loop, context: reported.append(context))
    seen: list[bytes] = []

    def on_message(_number: int, message: Any) -> None:
        seen.append(message["body"])
        client.basic_ack(message)
        if message["body"] == b"boom":
            raise ValueError("the handler failed")

    consume = client.basic_consume(queue=queue, callback=on_message)
    publish = client.basic_publish("", queue, body=b"ok")
    futures = [client.basic_publish("", queue, body=b) for b in (b"boom", b"after")]
    broken = client.queue_declare(queue=queue, passive=True, callback=lambda n, r: 1 / 0)
    await within(client.wait_for_all([publish, *futures, broken]))

    async def all_three() -> bool:
        return len(seen) == 3

    await eventually(all_three)
    assert seen == [b"ok", b"boom", b"after"]
    # (the declare's reply and the deliveries come in either order)
    assert {type(c["exception"]) for c in reported} == {ValueError, ZeroDivisionError}
    assert len(reported) == 2 and all("callback of promise" in c["message"] for c in reported)
    assert client.engine.state.value == "open"
    await within(client.basic_cancel(consume))
    assert await counts(client, queue) == (0, 0)
    assert_no_leaks(client)


async def test_recover_redelivers_unacked(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue, prefetch_count=10)
    for body in (b"a", b"b"):
        await within(client.basic_publish("", queue, body=body))
    first = [await next_message(consume), await next_message(consume)]
    assert [m["redelivered"] for m in first] == [False, False]
    recovered = await within(client.basic_recover(consume, requeue=True))
    assert recovered.name == "basic.recover_ok"
    again = [await next_message(consume), await next_message(consume)]
    assert sorted(m["body"] for m in again) == [b"a", b"b"]
    assert all(m["redelivered"] for m in again)
    for message in again:
        client.basic_ack(message)
    await within(client.basic_cancel(consume))
    assert await counts(client, queue) == (0, 0)


async def test_ack_from_before_a_recover_is_dropped(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue, prefetch_count=10)
    await within(client.basic_publish("", queue, body=b"a"))
    before = await next_message(consume)
    await within(client.basic_recover(consume, requeue=True))
    again = await next_message(consume)
    client.basic_ack(before)  # stale: the broker requeued it and forgot its tag
    client.basic_ack(again)
    assert client.engine.stale_acks == 1
    assert (await within(client.basic_cancel(consume))).name == "basic.cancel_ok"
    assert await counts(client, queue) == (0, 0)


async def test_side_calls_on_a_finished_consume_are_channel_closed(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue)
    await within(client.basic_cancel(consume))
    with pytest.raises(puka.ChannelClosed):
        await within(client.basic_qos(consume, prefetch_count=1))
    with pytest.raises(puka.ChannelClosed):
        await within(client.basic_recover(consume))
    assert_no_leaks(client)


async def test_consume_multi(make_client: ClientFactory) -> None:
    client = await make_client()
    queues = [await exclusive_queue(client) for _ in range(3)]
    consume = client.basic_consume_multi(queues, no_ack=True)
    for queue in queues:
        await within(client.basic_publish("", queue, body=queue.encode()))
    got = sorted([(await next_message(consume))["body"] for _ in queues])
    assert got == sorted(q.encode() for q in queues)
    await within(client.basic_cancel(consume))
    for queue in queues:
        assert await counts(client, queue) == (0, 0)
    assert_no_leaks(client)


async def test_consumer_cancelled_by_the_broker(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue)
    await within(client.queue_declare(queue=queue, passive=True))  # consume-ok has arrived
    await within(client.queue_delete(queue=queue))
    with pytest.raises(puka.ConsumerCancelled):
        await next_message(consume)
    with pytest.raises(StopAsyncIteration):
        await next_message(consume)
    assert_no_leaks(client)


async def test_consume_callback_sees_every_message(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    seen: list[tuple[int, bytes]] = []
    consume = client.basic_consume(
        queue=queue, no_ack=True, callback=lambda number, result: seen.append((number, result))
    )
    await within(client.basic_publish("", queue, body=b"cb"))
    for _ in range(200):
        if seen:
            break
        await asyncio.sleep(0.01)
    assert [(number, message["body"]) for number, message in seen] == [(int(consume), b"cb")]
    assert isinstance(consume, puka_asyncio.ConsumeHandle) and not _held(client, consume)
    await within(client.basic_cancel(consume))
    with pytest.raises(StopAsyncIteration):  # the handle still says how it ended
        await next_message(consume)


# --- transactions -----------------------------------------------------------------------------


async def test_transaction_commit_and_rollback(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    tx = client.tx_select()
    selected = await within(tx)
    assert selected.name == "tx.select_ok"
    await within(client.basic_publish("", queue, body=b"committed", channel_of=tx))
    await within(client.basic_publish("", queue, body=b"committed too", channel_of=tx))
    assert await counts(client, queue) == (0, 0)  # not before the commit
    commit = await within(client.tx_commit(tx))
    assert commit.name == "tx.commit_ok"
    assert await counts(client, queue) == (2, 0)
    await within(client.basic_publish("", queue, body=b"rolled back", channel_of=tx))
    assert (await within(client.tx_rollback(tx))).name == "tx.rollback_ok"
    await within(client.basic_publish("", queue, body=b"closed uncommitted", channel_of=tx))
    closed = await within(client.tx_close(tx))
    assert closed.name == "channel.close_ok"
    assert await counts(client, queue) == (2, 0)
    bodies = [(await within(client.basic_get(queue=queue, no_ack=True)))["body"] for _ in "12"]
    assert bodies == [b"committed", b"committed too"]
    # the transaction is over: commit fails
    with pytest.raises(puka.ChannelClosed):
        await within(client.tx_commit(tx))
    await eventually(_channels_at_most(client, 3), what="the tx channel to close")
    assert_no_leaks(client)


def _channels_at_most(client: puka_asyncio.AsyncClient, count: int) -> Any:
    async def check() -> bool:
        return len(client.engine.channels) <= count

    return check


async def test_publish_on_a_closed_transaction_is_channel_closed(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    tx = client.tx_select()
    await within(tx)
    await within(client.tx_close(tx))
    with pytest.raises(puka.ChannelClosed):
        await within(client.basic_publish("", queue, body=b"x", channel_of=tx))
    assert await counts(client, queue) == (0, 0)
    await eventually(_channels_at_most(client, 3), what="the tx channel to close")
    assert_no_leaks(client)


async def test_transactions_are_independent(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    first, second = client.tx_select(), client.tx_select()
    await within(asyncio.gather(first, second))
    await within(client.basic_publish("", queue, body=b"first", channel_of=first))
    await within(client.basic_publish("", queue, body=b"second", channel_of=second))
    await within(client.tx_rollback(first))
    await within(client.tx_commit(second))
    assert await counts(client, queue) == (1, 0)
    assert (await within(client.basic_get(queue, no_ack=True)))["body"] == b"second"
    await within(asyncio.gather(client.tx_close(first), client.tx_close(second)))


# --- direct reply-to RPC --------------------------------------------------------------------------


async def test_direct_reply_to_rpc(make_client: ClientFactory) -> None:
    server = await make_client()
    requests = await exclusive_queue(server)

    async def serve(count: int) -> None:
        handle = server.basic_consume(queue=requests, prefetch_count=10)
        served = 0
        async for request in handle:
            reply_headers = {"correlation_id": request["headers"]["correlation_id"]}
            await server.basic_publish(
                "",
                request["headers"]["reply_to"],
                headers=reply_headers,
                body=b"re: " + request["body"],
            )
            server.basic_ack(request)
            served += 1
            if served == count:
                break

    client = await make_client()
    serving = asyncio.ensure_future(serve(5))
    replies = client.basic_consume(queue="amq.rabbitmq.reply-to", no_ack=True)
    for i in range(5):
        sent = await within(
            client.basic_publish(
                "",
                requests,
                headers={"reply_to": "amq.rabbitmq.reply-to", "correlation_id": f"c-{i}"},
                body=f"request {i} ü".encode(),
                channel_of=replies,
            )
        )
        assert sent.name == "ok"  # on the consume's channel: written, not confirmed
        reply = await next_message(replies)
        assert reply["body"] == f"re: request {i} ü".encode()
        assert reply["headers"]["correlation_id"] == f"c-{i}"
        assert reply["routing_key"].startswith("amq.rabbitmq.reply-to.")
    await within(serving)
    await within(client.basic_cancel(replies))
    assert_no_leaks(client)
    await eventually(lambda: _no_parked(server), what="the server's consume to be cancelled")


async def _no_parked(client: puka_asyncio.AsyncClient) -> bool:
    promises = client.engine.promises
    return client.pending_handles == 0 and not promises.live and not promises.bare


async def test_direct_reply_to_needs_the_consume_channel(make_client: ClientFactory) -> None:
    """Without ``channel_of``, a reply_to of amq.rabbitmq.reply-to is refused by the broker."""
    client = await make_client()
    queue = await exclusive_queue(client)
    with pytest.raises(puka.PreconditionFailed):
        await within(
            client.basic_publish(
                "", queue, headers={"reply_to": "amq.rabbitmq.reply-to"}, body=b"x"
            )
        )
    assert await within(client.basic_publish("", queue, body=b"still works")) == {}
