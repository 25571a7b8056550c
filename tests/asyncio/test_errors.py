"""Errors: the blocking client's exception classes, and a client that stays usable after them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import puka
import puka_asyncio
import puka_spec.exceptions
import pytest

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import assert_no_leaks, counts, exclusive_queue, next_message, within
from tests.broker_node import UniqueName

Call = Callable[[Any], Any]


async def assert_usable(client: puka_asyncio.AsyncClient) -> None:
    """The client still declares, publishes (confirmed) and fetches."""
    queue = await exclusive_queue(client)
    assert await within(client.basic_publish("", queue, body=b"still fine")) == {}
    assert (await within(client.basic_get(queue=queue, no_ack=True)))["body"] == b"still fine"


def test_the_exceptions_are_the_blocking_clients() -> None:
    assert puka.PreconditionFailed is puka_spec.exceptions.PreconditionFailed
    assert issubclass(puka.NotFound, puka.SoftError)
    assert issubclass(puka.ConnectionForced, puka.HardError)
    assert issubclass(puka.HeartbeatTimeout, puka.ConnectionLost)
    assert issubclass(puka.ConnectTimeout, puka.ConnectFailed)


def _soft_errors(names: dict[str, str]) -> list[tuple[str, Call, type[Exception], int]]:
    """(what, call(client) -> promise or handle, expected class, reply code)."""
    queue, other = names["queue"], names["missing"]
    return [
        (
            "redeclare with other settings",
            lambda c: c.queue_declare(queue=queue, durable=True),
            puka.PreconditionFailed,
            406,
        ),
        (
            "passive declare",
            lambda c: c.queue_declare(queue=other, passive=True),
            puka.NotFound,
            404,
        ),
        ("get", lambda c: c.basic_get(queue=other), puka.NotFound, 404),
        ("bind", lambda c: c.queue_bind(queue=queue, exchange=other), puka.NotFound, 404),
        ("purge", lambda c: c.queue_purge(queue=other), puka.NotFound, 404),
        (
            "publish to a missing exchange",
            lambda c: c.basic_publish(other, "k", body=b"x"),
            puka.NotFound,
            404,
        ),
        (
            "declare an amq. exchange",
            lambda c: c.exchange_declare(exchange="amq.puka-" + other),
            puka.AccessRefused,
            403,
        ),
        (
            "declare an amq. queue",
            lambda c: c.queue_declare(queue="amq.puka-" + other),
            puka.AccessRefused,
            403,
        ),
        (
            "exchange of another type",
            lambda c: c.exchange_declare(exchange=names["exchange"], type="fanout"),
            puka.PreconditionFailed,
            406,
        ),
        (
            "unroutable mandatory publish",
            lambda c: c.basic_publish("", other, mandatory=True, body=b"x"),
            puka.Returned,  # a NoRoute that carries the returned message
            312,
        ),
    ]


async def test_soft_errors_raise_the_blocking_clients_classes_and_leave_the_client_usable(
    make_client: ClientFactory, amqp_url: str, unique_name: UniqueName
) -> None:
    client = await make_client()
    names = {
        "queue": unique_name("errors"),
        "missing": unique_name("missing"),
        "exchange": unique_name("direct"),
    }
    await within(client.queue_declare(queue=names["queue"]))
    await within(client.exchange_declare(exchange=names["exchange"], type="direct"))
    blocking = puka.Client(amqp_url)
    blocking.wait(blocking.connect(), timeout=10)
    try:
        for what, call, expected, code in _soft_errors(names):
            with pytest.raises(expected) as caught:
                await within(call(client))
            assert type(caught.value) is expected, what
            assert caught.value.reply_code == code, what
            # the blocking client raises the very same class for the same call
            with pytest.raises(expected) as blocking_caught:
                blocking.wait(call(blocking), timeout=10)
            assert type(blocking_caught.value) is type(caught.value), what
            await assert_usable(client)
    finally:
        with contextlib.suppress(Exception):
            blocking.wait(blocking.exchange_delete(exchange=names["exchange"]), timeout=10)
        with contextlib.suppress(Exception):  # also when the test failed half-way
            blocking.wait(blocking.queue_delete(queue=names["queue"]), timeout=10)
        with contextlib.suppress(Exception):
            blocking.wait(blocking.close(), timeout=10)
    assert client.engine.is_open
    assert_no_leaks(client)


async def test_concurrent_errors_fail_only_their_own_calls(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    missing = unique_name("missing")
    calls = []
    for i in range(50):
        calls.append(client.queue_declare(queue=missing, passive=True))
        calls.append(client.basic_publish("", queue, body=b"%d" % i))
        calls.append(client.queue_declare(queue=queue, passive=True))
    results = await within(asyncio.gather(*calls, return_exceptions=True))
    assert all(isinstance(r, puka.NotFound) for r in results[0::3])
    assert results[1::3] == [{}] * 50
    assert all(r["queue"] == queue for r in results[2::3])
    assert await counts(client, queue) == (50, 0)
    assert_no_leaks(client, max_channels=64)


async def test_publish_to_a_missing_exchange_fails_only_its_own_publish(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    """The broker closes the publish channel for the missing exchange: that publish fails; the
    others in flight are sent again on a new channel (those before it may arrive twice)."""
    client = await make_client()
    queue = await exclusive_queue(client)
    calls = [client.basic_publish("", queue, body=b"before")]
    calls.append(client.basic_publish(unique_name("missing"), "x", body=b"lost"))
    calls += [client.basic_publish("", queue, body=b"after %d" % i) for i in range(20)]
    results = await within(asyncio.gather(*calls, return_exceptions=True))
    assert isinstance(results[1], puka.NotFound)
    assert results[:1] + results[2:] == [{}] * 21
    bodies = []
    while not (message := await within(client.basic_get(queue=queue, no_ack=True))).get("empty"):
        bodies.append(message["body"])
    after = [b"after %d" % i for i in range(20)]
    assert bodies in ([b"before", *after], [b"before", b"before", *after])  # at least once
    await assert_usable(client)
    assert_no_leaks(client)


async def test_mandatory_return_reaches_the_callback(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    """The NoRoute error result (with the returned message) goes to a publish's callback."""
    client = await make_client()
    missing = unique_name("missing")
    returned: list[Any] = []
    publish = client.basic_publish(
        "",
        missing,
        mandatory=True,
        headers={"content_type": "text/plain", "x-ü": "ü"},
        body=b"come back",
        callback=lambda _number, result: returned.append(result),
    )
    with pytest.raises(puka.NoRoute):
        await within(publish)
    [result] = returned
    assert result.is_error
    assert result["body"] == b"come back"
    assert result["routing_key"] == missing
    assert result["headers"]["x-ü"] == "ü"


async def test_consume_of_a_missing_queue_raises_in_the_loop(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    consume = client.basic_consume(queue=unique_name("missing"))

    async def iterate() -> None:
        async for _message in consume:
            pytest.fail("a message from a missing queue")

    with pytest.raises(puka.NotFound):
        await within(iterate())
    assert consume.done
    await assert_usable(client)
    assert_no_leaks(client)


async def test_exclusive_consume_conflict_is_access_refused(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    first = client.basic_consume(queue=queue, exclusive=True)
    second = client.basic_consume(queue=queue)
    with pytest.raises(puka.AccessRefused):
        await next_message(second)
    await within(client.basic_publish("", queue, body=b"to the first"))
    assert (await next_message(first))["body"] == b"to the first"
    await within(client.basic_cancel(first))


async def test_soft_error_on_a_transaction_channel(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    tx = client.tx_select()
    await within(tx)
    # written, not confirmed: the broker's answer is to close the transaction's channel
    written = await within(
        client.basic_publish(unique_name("missing"), "x", body=b"x", channel_of=tx)
    )
    assert written.name == "ok"
    # the commit fails with that error, or (if the close came first) as over already
    with pytest.raises((puka.NotFound, puka.ChannelClosed)):
        await within(client.tx_commit(tx))
    with pytest.raises(puka.NotFound):
        await within(tx)  # the transaction itself ended with the broker's error
    await assert_usable(client)
