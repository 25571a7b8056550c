"""Queues, exchanges and bindings: every declare/delete/bind call, with its result fields."""

from __future__ import annotations

from typing import Any

import puka
import pytest

from tests.integration.helpers import Resources, drain, message_count, wait_ok


def publish_all(client: Any, exchange: str, routing_key: str, bodies: list[bytes]) -> None:
    client.wait_for_all(
        [client.basic_publish(exchange=exchange, routing_key=routing_key, body=b) for b in bodies]
    )


def test_queue_declare_result_fields(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    result = wait_ok(client, client.queue_declare(queue=queue))
    assert result["queue"] == queue
    assert result["message_count"] == 0
    assert result["consumer_count"] == 0
    assert result.name == "queue.declare_ok"
    assert result.is_error is False

    publish_all(client, "", queue, [b"one", b"two"])
    again = wait_ok(client, client.queue_declare(queue=queue))
    assert again["queue"] == queue
    assert again["message_count"] == 2
    assert again["consumer_count"] == 0


def test_queue_declare_server_named(client: Any, resources: Resources) -> None:
    result = wait_ok(client, client.queue_declare(exclusive=True))
    name = resources.add_queue(result["queue"])
    assert name.startswith("amq.gen-")
    # the broker's name is usable at once
    wait_ok(client, client.basic_publish(exchange="", routing_key=name, body=b"x"))
    assert message_count(client, name) == 1


def test_queue_declare_passive_existing(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue, durable=True))
    publish_all(client, "", queue, [b"a"])
    # passive: the flags do not matter, only existence
    result = wait_ok(client, client.queue_declare(queue=queue, passive=True))
    assert result["queue"] == queue
    assert result["message_count"] == 1


def test_queue_declare_arguments(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(
        client,
        client.queue_declare(queue=queue, arguments={"x-max-length": 2, "x-queue-type": "classic"}),
    )
    publish_all(client, "", queue, [b"1", b"2", b"3", b"4"])
    # x-max-length drops from the head: the arguments reached the broker
    assert [m["body"] for m in drain(client, queue)] == [b"3", b"4"]
    # the same arguments again are equivalent; different ones are not
    wait_ok(
        client,
        client.queue_declare(queue=queue, arguments={"x-max-length": 2, "x-queue-type": "classic"}),
    )
    with pytest.raises(puka.PreconditionFailed):
        client.wait(client.queue_declare(queue=queue, arguments={"x-max-length": 3}))


def test_queue_declare_auto_delete(client: Any, make_client: Any, resources: Resources) -> None:
    queue = resources.queue()
    other = make_client()
    wait_ok(other, other.queue_declare(queue=queue, auto_delete=True))
    consume = other.basic_consume(queue=queue)
    wait_ok(other, other.basic_publish(exchange="", routing_key=queue, body=b"x"))
    wait_ok(other, consume)
    wait_ok(other, other.basic_cancel(consume))
    # the last consumer went away: the queue is gone
    with pytest.raises(puka.NotFound):
        client.wait(client.queue_declare(queue=queue, passive=True))


def test_queue_delete_result(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    publish_all(client, "", queue, [b"a", b"b", b"c"])
    result = wait_ok(client, client.queue_delete(queue=queue))
    assert result["message_count"] == 3
    assert result.name == "queue.delete_ok"
    with pytest.raises(puka.NotFound):
        client.wait(client.queue_declare(queue=queue, passive=True))


def test_queue_delete_if_empty_and_if_unused(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    publish_all(client, "", queue, [b"a"])
    with pytest.raises(puka.PreconditionFailed):
        client.wait(client.queue_delete(queue=queue, if_empty=True))
    consume = client.basic_consume(queue=queue)
    wait_ok(client, consume)  # the message: the consumer is registered
    with pytest.raises(puka.PreconditionFailed):
        client.wait(client.queue_delete(queue=queue, if_unused=True))
    wait_ok(client, client.basic_cancel(consume))
    # the same client still works, and the queue is still there
    assert wait_ok(client, client.queue_declare(queue=queue, passive=True))["queue"] == queue


def test_queue_purge_result(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    publish_all(client, "", queue, [b"%d" % i for i in range(7)])
    result = wait_ok(client, client.queue_purge(queue=queue))
    assert result["message_count"] == 7
    assert result.name == "queue.purge_ok"
    assert message_count(client, queue) == 0
    assert wait_ok(client, client.queue_purge(queue=queue))["message_count"] == 0


def test_queue_bind_and_unbind(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=exchange, type="direct"))
    wait_ok(client, client.queue_declare(queue=queue))
    result = wait_ok(client, client.queue_bind(queue=queue, exchange=exchange, routing_key="rk"))
    assert result.name == "queue.bind_ok"
    publish_all(client, exchange, "rk", [b"bound"])
    publish_all(client, exchange, "other", [b"not bound"])
    assert [m["body"] for m in drain(client, queue)] == [b"bound"]

    result = wait_ok(client, client.queue_unbind(queue=queue, exchange=exchange, routing_key="rk"))
    assert result.name == "queue.unbind_ok"
    publish_all(client, exchange, "rk", [b"after unbind"])
    assert drain(client, queue) == []


def test_queue_bind_headers_exchange_arguments(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=exchange, type="headers"))
    wait_ok(client, client.queue_declare(queue=queue))
    arguments = {"x-match": "all", "colour": "red"}
    wait_ok(client, client.queue_bind(queue=queue, exchange=exchange, arguments=arguments))
    promises = [
        client.basic_publish(exchange=exchange, headers={"colour": "red"}, body=b"red"),
        client.basic_publish(exchange=exchange, headers={"colour": "blue"}, body=b"blue"),
    ]
    client.wait_for_all(promises)
    assert [m["body"] for m in drain(client, queue)] == [b"red"]
    wait_ok(client, client.queue_unbind(queue=queue, exchange=exchange, arguments=arguments))
    wait_ok(client, client.basic_publish(exchange=exchange, headers={"colour": "red"}, body=b"r"))
    assert drain(client, queue) == []


def test_queue_bind_missing_exchange_is_not_found(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    with pytest.raises(puka.NotFound):
        client.wait(client.queue_bind(queue=queue, exchange=resources.exchange("missing")))
    assert wait_ok(client, client.queue_declare(queue=queue, passive=True))["queue"] == queue


@pytest.mark.parametrize("kind", ["direct", "fanout", "topic", "headers"])
def test_exchange_declare_each_type(client: Any, resources: Resources, kind: str) -> None:
    exchange = resources.exchange(kind)
    result = wait_ok(client, client.exchange_declare(exchange=exchange, type=kind))
    assert result.name == "exchange.declare_ok"
    assert result.is_error is False
    # passive: it exists
    wait_ok(client, client.exchange_declare(exchange=exchange, type=kind, passive=True))
    # a different type is not equivalent
    other = "fanout" if kind != "fanout" else "direct"
    with pytest.raises(puka.PreconditionFailed):
        client.wait(client.exchange_declare(exchange=exchange, type=other))


def test_exchange_declare_topic_routes(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=exchange, type="topic", durable=False))
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.queue_bind(queue=queue, exchange=exchange, routing_key="a.*.c"))
    for key in ["a.b.c", "a.b.d", "a.x.c", "a.b.c.d"]:
        publish_all(client, exchange, key, [key.encode()])
    assert [m["body"] for m in drain(client, queue)] == [b"a.b.c", b"a.x.c"]


def test_exchange_declare_passive_missing_is_not_found(client: Any, resources: Resources) -> None:
    with pytest.raises(puka.NotFound):
        client.wait(client.exchange_declare(exchange=resources.exchange("missing"), passive=True))
    wait_ok(client, client.exchange_declare(exchange=resources.exchange()))


def test_exchange_declare_internal_and_auto_delete(client: Any, resources: Resources) -> None:
    internal = resources.exchange("internal")
    wait_ok(client, client.exchange_declare(exchange=internal, type="fanout", internal=True))
    # publishing straight to an internal exchange is refused (403) -- on that publish only
    with pytest.raises(puka.AccessRefused):
        client.wait(client.basic_publish(exchange=internal, body=b"x"))
    auto = resources.exchange("auto")
    wait_ok(client, client.exchange_declare(exchange=auto, auto_delete=True))
    wait_ok(client, client.exchange_declare(exchange=auto, auto_delete=True, passive=True))


def test_exchange_declare_arguments(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    alternate = resources.exchange("alternate")
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=alternate, type="fanout"))
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.queue_bind(queue=queue, exchange=alternate))
    wait_ok(
        client,
        client.exchange_declare(exchange=exchange, arguments={"alternate-exchange": alternate}),
    )
    # unroutable on the exchange: goes to the alternate exchange
    publish_all(client, exchange, "nobody", [b"via alternate"])
    assert [m["body"] for m in drain(client, queue)] == [b"via alternate"]


def test_exchange_delete(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    wait_ok(client, client.exchange_declare(exchange=exchange, type="fanout", durable=True))
    result = wait_ok(client, client.exchange_delete(exchange=exchange))
    assert result.name == "exchange.delete_ok"
    with pytest.raises(puka.NotFound):
        client.wait(client.exchange_declare(exchange=exchange, passive=True))


def test_exchange_delete_if_unused(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=exchange))
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.queue_bind(queue=queue, exchange=exchange, routing_key="k"))
    with pytest.raises(puka.PreconditionFailed):
        client.wait(client.exchange_delete(exchange=exchange, if_unused=True))
    wait_ok(client, client.queue_unbind(queue=queue, exchange=exchange, routing_key="k"))
    wait_ok(client, client.exchange_delete(exchange=exchange, if_unused=True))


def test_exchange_bind_and_unbind(client: Any, resources: Resources) -> None:
    source = resources.exchange("source")
    destination = resources.exchange("destination")
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=source, type="topic"))
    wait_ok(client, client.exchange_declare(exchange=destination, type="fanout"))
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.queue_bind(queue=queue, exchange=destination))
    result = wait_ok(
        client,
        client.exchange_bind(destination=destination, source=source, routing_key="news.#"),
    )
    assert result.name == "exchange.bind_ok"
    publish_all(client, source, "news.today", [b"routed"])
    publish_all(client, source, "sport.today", [b"not routed"])
    assert [m["body"] for m in drain(client, queue)] == [b"routed"]

    result = wait_ok(
        client,
        client.exchange_unbind(destination=destination, source=source, routing_key="news.#"),
    )
    assert result.name == "exchange.unbind_ok"
    publish_all(client, source, "news.today", [b"after unbind"])
    assert drain(client, queue) == []


def test_exchange_bind_arguments(client: Any, resources: Resources) -> None:
    source = resources.exchange("source")
    destination = resources.exchange("destination")
    queue = resources.queue()
    wait_ok(client, client.exchange_declare(exchange=source, type="headers"))
    wait_ok(client, client.exchange_declare(exchange=destination, type="fanout"))
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.queue_bind(queue=queue, exchange=destination))
    arguments = {"x-match": "any", "kind": "a"}
    wait_ok(
        client, client.exchange_bind(destination=destination, source=source, arguments=arguments)
    )
    client.wait_for_all(
        [
            client.basic_publish(exchange=source, headers={"kind": "a"}, body=b"a"),
            client.basic_publish(exchange=source, headers={"kind": "b"}, body=b"b"),
        ]
    )
    assert [m["body"] for m in drain(client, queue)] == [b"a"]
    wait_ok(
        client,
        client.exchange_unbind(destination=destination, source=source, arguments=arguments),
    )
