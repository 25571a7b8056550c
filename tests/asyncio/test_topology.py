"""Queues, exchanges and bindings through the asyncio client."""

from __future__ import annotations

import contextlib

import puka
import puka_asyncio
import pytest

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import assert_no_leaks, counts, exclusive_queue, within
from tests.broker_node import UniqueName


async def delete_exchanges(client: puka_asyncio.AsyncClient, *names: str) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            await within(client.exchange_delete(exchange=name))


async def test_queue_declare_publish_get_purge_delete(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    name = unique_name("queue")
    result = await within(client.queue_declare(queue=name, auto_delete=False))
    assert result.name == "queue.declare_ok"
    assert result == {"queue": name, "message_count": 0, "consumer_count": 0}
    try:
        # redeclaring with the same settings is fine
        assert (await within(client.queue_declare(queue=name)))["queue"] == name
        for i in range(3):
            assert await within(client.basic_publish("", name, body=b"%d" % i)) == {}
        assert await counts(client, name) == (3, 0)
        message = await within(client.basic_get(queue=name))
        assert message.name == "basic.get_ok"
        assert message["body"] == b"0"
        assert message["message_count"] == 2
        client.basic_ack(message)
        purged = await within(client.queue_purge(queue=name))
        assert purged.name == "queue.purge_ok"
        assert purged["message_count"] == 2
        empty = await within(client.basic_get(queue=name))
        assert empty.name == "basic.get_empty"
        assert empty["empty"] is True
        await within(client.basic_publish("", name, body=b"left"))
    finally:
        deleted = await within(client.queue_delete(queue=name))
    assert deleted["message_count"] == 1
    with pytest.raises(puka.NotFound):
        await within(client.queue_declare(queue=name, passive=True))
    assert_no_leaks(client)


async def test_server_named_exclusive_queue(make_client: ClientFactory) -> None:
    client = await make_client()
    result = await within(client.queue_declare(exclusive=True))
    assert result["queue"].startswith("amq.gen-")
    assert await counts(client, result["queue"]) == (0, 0)


async def test_queue_delete_if_unused_and_if_empty(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue)
    await within(client.basic_publish("", queue, body=b"x"))
    assert (await within(consume))["body"] == b"x"
    with pytest.raises(puka.PreconditionFailed):
        await within(client.queue_delete(queue=queue, if_unused=True))
    await within(client.basic_cancel(consume))
    await within(client.basic_publish("", queue, body=b"y"))
    with pytest.raises(puka.PreconditionFailed):
        await within(client.queue_delete(queue=queue, if_empty=True))
    await within(client.queue_purge(queue=queue))
    assert (await within(client.queue_delete(queue=queue, if_unused=True, if_empty=True))) == {
        "message_count": 0
    }


async def test_bind_route_unbind(make_client: ClientFactory, unique_name: UniqueName) -> None:
    client = await make_client()
    exchange = unique_name("direct")
    await within(client.exchange_declare(exchange=exchange, type="direct", auto_delete=False))
    try:
        queue = await exclusive_queue(client)
        bound = await within(client.queue_bind(queue=queue, exchange=exchange, routing_key="k"))
        assert bound.name == "queue.bind_ok"
        await within(client.basic_publish(exchange, "k", body=b"routed"))
        await within(client.basic_publish(exchange, "other", body=b"dropped"))
        message = await within(client.basic_get(queue=queue, no_ack=True))
        assert (message["body"], message["exchange"], message["routing_key"]) == (
            b"routed",
            exchange,
            "k",
        )
        assert (await within(client.basic_get(queue=queue)))["empty"] is True
        unbound = await within(client.queue_unbind(queue=queue, exchange=exchange, routing_key="k"))
        assert unbound.name == "queue.unbind_ok"
        await within(client.basic_publish(exchange, "k", body=b"after unbind"))
        assert await counts(client, queue) == (0, 0)
    finally:
        await delete_exchanges(client, exchange)


async def test_exchange_types_passive_and_delete(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    names = {kind: unique_name(kind) for kind in ("direct", "fanout", "topic", "headers")}
    try:
        for kind, name in names.items():
            result = await within(client.exchange_declare(exchange=name, type=kind))
            assert result.name == "exchange.declare_ok"
            await within(client.exchange_declare(exchange=name, type=kind, passive=True))
        # topic and headers routing through the asyncio client
        topic_q, headers_q = await exclusive_queue(client), await exclusive_queue(client)
        await within(client.queue_bind(topic_q, names["topic"], routing_key="a.*.c"))
        await within(
            client.queue_bind(
                headers_q, names["headers"], arguments={"x-match": "all", "kind": "ünï"}
            )
        )
        await within(client.basic_publish(names["topic"], "a.b.c", body=b"topic"))
        await within(client.basic_publish(names["topic"], "a.b.d", body=b"no"))
        await within(client.basic_publish(names["headers"], headers={"kind": "ünï"}, body=b"hd"))
        await within(client.basic_publish(names["headers"], headers={"kind": "x"}, body=b"no"))
        assert (await within(client.basic_get(topic_q, no_ack=True)))["body"] == b"topic"
        assert (await within(client.basic_get(headers_q, no_ack=True)))["body"] == b"hd"
        assert await counts(client, topic_q) == (0, 0)
        assert await counts(client, headers_q) == (0, 0)
        # if_unused refuses an exchange with bindings
        with pytest.raises(puka.PreconditionFailed):
            await within(client.exchange_delete(exchange=names["topic"], if_unused=True))
        for name in names.values():
            assert (await within(client.exchange_delete(exchange=name))).name == (
                "exchange.delete_ok"
            )
        with pytest.raises(puka.NotFound):
            await within(client.exchange_declare(exchange=names["direct"], passive=True))
    finally:
        await delete_exchanges(client, *names.values())
    assert_no_leaks(client)


async def test_exchange_to_exchange_bindings(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    source, destination = unique_name("source"), unique_name("destination")
    try:
        await within(client.exchange_declare(exchange=source, type="topic"))
        await within(client.exchange_declare(exchange=destination, type="fanout"))
        queue = await exclusive_queue(client)
        await within(client.queue_bind(queue=queue, exchange=destination))
        bound = await within(
            client.exchange_bind(destination=destination, source=source, routing_key="#")
        )
        assert bound.name == "exchange.bind_ok"
        await within(client.basic_publish(source, "any.key", body=b"through two"))
        message = await within(client.basic_get(queue=queue, no_ack=True))
        assert message["body"] == b"through two"
        assert message["exchange"] == source
        unbound = await within(
            client.exchange_unbind(destination=destination, source=source, routing_key="#")
        )
        assert unbound.name == "exchange.unbind_ok"
        await within(client.basic_publish(source, "any.key", body=b"nowhere"))
        assert await counts(client, queue) == (0, 0)
    finally:
        await delete_exchanges(client, source, destination)


async def test_internal_exchange_refuses_publishes(
    make_client: ClientFactory, unique_name: UniqueName
) -> None:
    client = await make_client()
    name = unique_name("internal")
    await within(client.exchange_declare(exchange=name, type="fanout", internal=True))
    try:
        with pytest.raises(puka.AccessRefused):
            await within(client.basic_publish(name, body=b"x"))
        # the publish channel was replaced: publishing goes on
        queue = await exclusive_queue(client)
        assert await within(client.basic_publish("", queue, body=b"ok")) == {}
    finally:
        await delete_exchanges(client, name)
