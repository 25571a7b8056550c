"""`AsyncClient.wait_for_all`: every handle's result in order, errors raised or kept in place."""

from __future__ import annotations

import asyncio

import puka
import puka_asyncio
import pytest

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import assert_no_leaks, counts, exclusive_queue, within
from tests.broker_node import UniqueName


async def test_results_come_in_the_order_of_the_handles(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    names = [unique_name("wfa") for _ in range(20)]
    handles: list[puka_asyncio.PromiseHandle] = []
    for i, name in enumerate(names):
        handles.append(client.queue_declare(queue=name, exclusive=True))
        handles.append(client.basic_publish("", queue, body=b"%d" % i))
    results = await within(client.wait_for_all(handles))
    assert [r.name for r in results] == ["queue.declare_ok", "basic.ack"] * 20
    assert [r["queue"] for r in results[::2]] == names
    assert await counts(client, queue) == (20, 0)
    await within(client.wait_for_all([client.queue_delete(queue=n) for n in names]))
    assert_no_leaks(client, max_channels=len(names) + 1)  # idle ones are trimmed later


async def test_many_confirmed_publishes(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    futures = [client.basic_publish("", queue, body=b"%d" % i) for i in range(5_000)]
    results = await within(client.wait_for_all(futures), 30)
    assert len(results) == 5_000 and all(r.name == "basic.ack" for r in results)
    assert all(f.done() for f in futures)
    assert await counts(client, queue) == (5_000, 0)
    assert_no_leaks(client)


async def test_the_first_error_in_order_raises(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    missing = [unique_name("missing") for _ in range(2)]
    ok = client.queue_declare(queue=unique_name("ok"), exclusive=True)
    first = client.queue_declare(queue=missing[0], passive=True)
    second = client.queue_declare(queue=missing[1], passive=True)
    with pytest.raises(puka.NotFound) as raised:
        await within(client.wait_for_all([ok, first, second]))
    assert missing[0] in str(raised.value)
    with pytest.raises(puka.NotFound):  # its outcome stays on its future
        await within(second)
    # and the client carries on
    assert (await within(client.wait_for_all([ok])))[0]["queue"]
    assert_no_leaks(client)


async def test_errors_kept_in_place_without_raise_errors(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    missing = unique_name("missing")
    handles = [
        client.basic_publish("", queue, body=b"before"),
        client.queue_declare(queue=missing, passive=True),
        client.basic_publish("", queue, body=b"after"),
    ]
    results = await within(client.wait_for_all(handles, raise_errors=False))
    assert [r.is_error for r in results] == [False, True, False]
    error = results[1]
    assert isinstance(error.exception, puka.NotFound)
    assert error["reply_code"] == 404 and missing in error["reply_text"]
    assert await counts(client, queue) == (2, 0)
    assert_no_leaks(client)


async def test_a_consume_handle_gives_its_next_message(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    await within(client.basic_publish("", queue, body=b"one"))
    consume = client.basic_consume(queue=queue, no_ack=True)
    declare = client.queue_declare(queue=queue, passive=True)
    message, declared = await within(client.wait_for_all([consume, declare]))
    assert message["body"] == b"one" and declared["queue"] == queue
    await within(client.basic_cancel(consume))
    assert_no_leaks(client)


async def test_nothing_to_wait_for(make_client: ClientFactory) -> None:
    client = await make_client()
    assert await within(client.wait_for_all([])) == []
    assert await within(client.wait_for_all(iter(()))) == []


async def test_cancelling_the_waiting_task_cancels_no_operation(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    futures = [client.basic_publish("", queue, body=b"%d" % i) for i in range(100)]
    waiting = asyncio.ensure_future(client.wait_for_all(futures))
    await asyncio.sleep(0)  # it is suspended on the last publish now
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    results = await within(asyncio.gather(*futures))
    assert all(r.name == "basic.ack" for r in results)
    assert await counts(client, queue) == (100, 0)
    assert_no_leaks(client)


async def test_a_cancelled_future_raises_even_without_raise_errors(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    first = client.basic_publish("", queue, body=b"1")
    cancelled = client.basic_publish("", queue, body=b"2")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(client.wait_for_all([first, cancelled], raise_errors=False))
    assert (await within(first)).name == "basic.ack"
    assert await counts(client, queue) == (2, 0)  # the publish went out all the same
    assert_no_leaks(client)


# --- promise numbers: publishes without a future ---------------------------------------------


async def test_publish_numbers_are_awaited_like_their_futures(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    numbers = [client.basic_publish_number("", queue, body=b"%d" % i) for i in range(5_000)]
    assert all(type(n) is int for n in numbers) and len(set(numbers)) == 5_000
    assert client.pending_handles == 0  # no future was made for any of them
    results = await within(client.wait_for_all(numbers), 30)
    assert len(results) == 5_000 and all(not r.is_error for r in results)
    # the last ones' confirms, kept until claimed: the engine's
    assert results[-1].name == "basic.ack"
    assert await counts(client, queue) == (5_000, 0)
    # waited again, an ended publish's number is still a success (it is forgotten, not lost)
    assert [r.is_error for r in await within(client.wait_for_all(numbers[:3]))] == [False] * 3
    # numbers and handles mixed, in order
    missing = unique_name("missing")
    mixed = [
        client.basic_publish_number("", queue, body=b"a"),
        client.queue_declare(queue=missing, passive=True),
        client.basic_publish("", queue, body=b"b"),
        client.basic_publish_number("", queue, body=b"c", properties={"message_id": "m"}),
    ]
    results = await within(client.wait_for_all(mixed, raise_errors=False))
    assert [r.is_error for r in results] == [False, True, False, False]
    assert isinstance(results[1].exception, puka.NotFound)
    assert await counts(client, queue) == (5_003, 0)
    assert_no_leaks(client)


async def test_a_failed_publish_number_raises_its_error(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    ok = client.basic_publish_number("", queue, body=b"ok")
    unroutable = client.basic_publish_number("", "puka-no-such-queue", mandatory=True, body=b"x")
    with pytest.raises(puka.NoRoute):
        await within(client.wait_for_all([ok, unroutable]))
    # without raise_errors, a failure is kept in place
    again = client.basic_publish_number("", "puka-no-such-queue", mandatory=True, body=b"y")
    (result,) = await within(client.wait_for_all([again], raise_errors=False))
    assert isinstance(result.exception, puka.NoRoute)
    assert_no_leaks(client)


async def test_wait_for_all_refuses_numbers_it_never_gave(make_client: ClientFactory) -> None:
    client = await make_client()
    number = client.basic_publish_number("", "", body=b"")  # the default exchange, no queue
    with pytest.raises(ValueError, match=r"wait_for_all: handles\[1\] is 99999, not a promise"):
        await client.wait_for_all([number, 99_999])
    with pytest.raises(TypeError, match=r"wait_for_all: handles\[0\]"):
        await client.wait_for_all([True])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^basic_publish_number: exchange must be a str"):
        client.basic_publish_number(3, "q")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^basic_publish_number: properties"):
        client.basic_publish_number("", "q", properties={"colour": "red"})
    assert client.pending_handles == 0
    await within(client.wait_for_all([number]))
    consume = client.basic_consume(queue=await exclusive_queue(client), no_ack=True)
    await within(client.basic_cancel(consume))
    with pytest.raises(puka.ChannelClosed, match="is over"):
        await within(client.wait_for_all([int(consume)]))
    (over,) = await within(client.wait_for_all([int(consume)], raise_errors=False))
    assert isinstance(over.exception, puka.ChannelClosed)
    assert_no_leaks(client)
