"""The core scenarios, written once, run in every style of client (see `tests.integration.styles`).

Each test runs six times: with the blocking client and ``wait``, with callbacks and
``client.loop``, with the asyncio client on asyncio's loop and on uvloop, and with the AnyIO
client on trio and on asyncio.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import puka
import pytest

from tests.broker_node import RabbitmqCtl, UniqueName
from tests.faults.fault_proxy import FaultProxy
from tests.integration import styles
from tests.integration.helpers import (
    SOON,
    Resources,
    close_connection_later,
    every_basic_property,
    message_count,
    url_user,
)
from tests.integration.styles import Driver
from tests.integration.test_messages import PROPERTY_NAMES, assert_same

#: Every byte value, nothing at all, and a body of several frames (frame_max is 128 KiB).
BODIES = [bytes(range(256)), b"", bytes(range(255, -1, -1)) * 1100]


@pytest.fixture(params=styles.STYLES)
def style(request: pytest.FixtureRequest) -> str:
    """One style of client (see `tests.integration.styles`)."""
    return str(request.param)


@pytest.fixture
def driver(style: str, amqp_url: str, unique_name: UniqueName) -> Iterator[Driver]:
    """A connected client of one style, with a connection name of its own."""
    connected = styles.connect(style, amqp_url, unique_name(f"styles-{style}"))
    yield connected
    connected.dispose()


@pytest.fixture
def queue(driver: Driver, resources: Resources) -> str:
    """A fresh queue, declared by ``driver``, deleted at teardown."""
    name = resources.queue()
    assert driver.call("queue_declare", queue=name)["queue"] == name
    return name


def assert_usable(driver: Driver, queue: str) -> None:
    """The client still publishes (confirmed) and fetches."""
    assert driver.publish_many(queue, [b"still fine"]) == [{}]
    assert driver.drain(queue) == [b"still fine"]


# --- messages ---------------------------------------------------------------------------------


def test_binary_bodies_through_a_bound_exchange(
    driver: Driver, resources: Resources, queue: str
) -> None:
    exchange = resources.exchange()
    assert driver.call("exchange_declare", exchange=exchange, type="direct").is_error is False
    driver.call("queue_bind", queue=queue, exchange=exchange, routing_key="bin")
    assert driver.publish_many("bin", BODIES, exchange=exchange) == [{}] * len(BODIES)
    for i, body in enumerate(BODIES):
        message = driver.call("basic_get", queue=queue, no_ack=True)
        assert type(message["body"]) is bytes
        assert message["body"] == body
        assert message["exchange"] == exchange
        assert message["routing_key"] == "bin"
        assert message["message_count"] == len(BODIES) - 1 - i  # messages left after it
    assert driver.call("basic_get", queue=queue)["empty"] is True
    # unbound, the same publish goes nowhere (and is still confirmed)
    driver.call("queue_unbind", queue=queue, exchange=exchange, routing_key="bin")
    assert driver.publish_many("bin", [b"lost"], exchange=exchange) == [{}]
    assert driver.drain(queue) == []


def test_every_basic_property_and_typed_headers(driver: Driver, queue: str, amqp_url: str) -> None:
    properties = every_basic_property(url_user(amqp_url))
    headers: dict[str, Any] = {
        "clé-ключ": "välue-✓",
        "int64": -(2**62),
        "float": 3.25,
        "true": True,
        "none": None,
        "bytes": bytes(range(256)),
        "list": [1, "two", None, [3]],
        "dict": {"a": {"b": [Decimal("-12.5")]}},
        "datetime": datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=datetime.timezone.utc),
    }
    assert driver.publish_many(queue, [b"{}"], headers={**properties, **headers}) == [{}]
    received = driver.call("basic_get", queue=queue, no_ack=True)["headers"]
    for key, value in properties.items():
        assert key in received, f"property {key} was lost"
        assert_same(received[key], value, key)
    assert_same({k: v for k, v in received.items() if k not in PROPERTY_NAMES}, headers)
    assert {k for k in received if k in PROPERTY_NAMES and received[k] is not None} == set(
        properties
    )


# --- concurrency -------------------------------------------------------------------------------


def test_pipelined_parallel_declares(driver: Driver, unique_name: UniqueName) -> None:
    """200 declares in flight at once; each promise gets its own queue's result, and the
    passive declares of missing queues among them fail alone."""
    names = [unique_name("parallel") for _ in range(200)]
    calls = [
        {"queue": name, "passive": True} if i % 10 == 9 else {"queue": name, "exclusive": True}
        for i, name in enumerate(names)
    ]
    outcomes = driver.outcomes(driver.start_many("queue_declare", calls))
    for i, (name, outcome) in enumerate(zip(names, outcomes, strict=True)):
        if i % 10 == 9:
            assert isinstance(outcome, puka.NotFound), outcome
        else:
            assert isinstance(outcome, puka.Result), outcome
            assert outcome["queue"] == name
            assert outcome["message_count"] == outcome["consumer_count"] == 0
    # they exist (exclusive: they go with the connection)
    checks = driver.start_many("queue_declare", [{"queue": n, "passive": True} for n in names[:9]])
    assert [driver.result(check)["queue"] for check in checks] == names[:9]


# --- soft errors -------------------------------------------------------------------------------


def test_soft_errors_fail_only_their_own_operation(
    driver: Driver, resources: Resources, queue: str
) -> None:
    cases: list[tuple[str, dict[str, Any], type[puka.AMQPError], int]] = [
        (
            "queue_declare",
            {"queue": resources.queue("missing"), "passive": True},
            puka.NotFound,
            404,
        ),
        ("queue_declare", {"queue": queue, "durable": True}, puka.PreconditionFailed, 406),
        ("exchange_declare", {"exchange": "amq.puka-" + queue}, puka.AccessRefused, 403),
    ]
    for op, kwargs, expected, code in cases:
        before = driver.start("queue_declare", queue=queue, passive=True)
        bad = driver.start(op, **kwargs)
        after = driver.start("queue_declare", queue=queue, passive=True)
        with pytest.raises(expected) as caught:
            driver.result(bad)
        assert type(caught.value) is expected
        assert caught.value.reply_code == code
        assert isinstance(caught.value, puka.SoftError)
        assert driver.result(before)["queue"] == queue
        assert driver.result(after)["queue"] == queue
        assert_usable(driver, queue)


def test_publish_to_a_missing_exchange_fails_only_that_publish(
    driver: Driver, resources: Resources, queue: str
) -> None:
    after = [b"after %d" % i for i in range(10)]
    calls = [{"exchange": "", "routing_key": queue, "body": b"before"}]
    calls.append({"exchange": resources.exchange("missing"), "routing_key": queue, "body": b"x"})
    calls += [{"exchange": "", "routing_key": queue, "body": body} for body in after]
    outcomes = driver.outcomes(driver.start_many("basic_publish", calls))
    assert isinstance(outcomes[1], puka.NotFound), outcomes[1]
    assert outcomes[:1] + outcomes[2:] == [{}] * 11
    # a publish before the bad one may be sent again on a new channel: at least once
    assert driver.drain(queue) in ([b"before", *after], [b"before", b"before", *after])
    assert_usable(driver, queue)


def test_mandatory_unroutable_publish_is_no_route_with_the_message(
    driver: Driver, resources: Resources, queue: str
) -> None:
    exchange = resources.exchange()
    driver.call("exchange_declare", exchange=exchange)
    driver.call("queue_bind", queue=queue, exchange=exchange, routing_key="home")
    headers = {"content_type": "text/plain", "x-ü": "ü"}
    calls: list[dict[str, Any]] = [
        {"routing_key": "home", "mandatory": True, "body": b"1"},
        {"routing_key": "nobody", "mandatory": True, "headers": headers, "body": BODIES[0]},
        {"routing_key": "home", "mandatory": True, "body": b"3"},
        {"routing_key": "nobody", "body": b"dropped"},  # not mandatory: confirmed, dropped
    ]
    outcomes = driver.outcomes(
        driver.start_many("basic_publish", [{"exchange": exchange, **c} for c in calls])
    )
    routed, returned, routed_too, dropped = outcomes
    assert routed == routed_too == dropped == {}
    assert isinstance(returned, puka.NoRoute), returned
    assert returned.reply_code == 312
    assert isinstance(returned, puka.Returned)
    message = returned.message
    assert message["body"] == BODIES[0]
    assert message["exchange"] == exchange
    assert message["routing_key"] == "nobody"
    assert message["reply_code"] == 312
    assert message["headers"]["content_type"] == "text/plain"
    assert message["headers"]["x-ü"] == "ü"
    assert driver.drain(queue) == [b"1", b"3"]


# --- consumes ----------------------------------------------------------------------------------


def test_consume_with_prefetch_and_acks(
    driver: Driver, queue: str, make_client: Callable[..., Any]
) -> None:
    bodies = [b"m%d" % i for i in range(10)] + BODIES
    assert driver.publish_many(queue, bodies) == [{}] * len(bodies)
    consume = driver.consume(queue, prefetch_count=3)
    held = [driver.result(consume) for _ in range(3)]
    assert [m["body"] for m in held] == bodies[:3]
    assert driver.poll(consume, 0.3) is None, "a 4th message came past prefetch_count=3"
    received = list(held)
    for message in held:
        driver.ack(message)
    while len(received) < len(bodies):
        message = driver.result(consume)
        assert message["redelivered"] is False
        received.append(message)
        driver.ack(message)
    assert [m["body"] for m in received] == bodies
    assert all(type(m["body"]) is bytes for m in received)
    assert driver.poll(consume, 0.1) is None
    declared = driver.call("queue_declare", queue=queue, passive=True)
    assert (declared["message_count"], declared["consumer_count"]) == (0, 1)
    assert driver.call("basic_cancel", consume_promise=consume).is_error is False
    assert driver.call("queue_declare", queue=queue, passive=True)["consumer_count"] == 0
    driver.close()
    # an unacknowledged message would be back in the queue once its connection closed
    assert message_count(make_client(), queue) == 0


def test_consume_cancelled_by_queue_deletion(driver: Driver, queue: str) -> None:
    consume = driver.consume(queue, prefetch_count=10)
    assert driver.publish_many(queue, [b"one"]) == [{}]
    message = driver.result(consume)
    assert message["body"] == b"one"
    driver.ack(message)
    assert driver.call("queue_delete", queue=queue)["message_count"] == 0
    with pytest.raises(puka.ConsumerCancelled):
        driver.result(consume)
    driver.assert_consume_over(consume)
    # the client keeps working, and the queue is really gone
    with pytest.raises(puka.NotFound):
        driver.call("queue_declare", queue=queue, passive=True)
    assert driver.call("queue_declare", queue=queue)["consumer_count"] == 0
    assert_usable(driver, queue)


# --- RPC ---------------------------------------------------------------------------------------


def test_rpc_round_trip_through_a_reply_queue(driver: Driver, resources: Resources) -> None:
    """A server consume answers requests to the reply queue each names; the replies come back
    matched by correlation id, in any order, and the client stays usable."""
    requests = resources.queue("rpc")
    driver.call("queue_declare", queue=requests)
    replies = driver.call("queue_declare", queue="", exclusive=True)["queue"]
    server = driver.consume(requests, prefetch_count=10)
    client_side = driver.consume(replies, no_ack=True)
    ids = [f"call-{i}" for i in range(5)]
    sent = driver.publish_many(
        requests,
        [str(i).encode() for i in range(5)],
        headers={"reply_to": replies},
    )
    assert sent == [{}] * 5
    for correlation_id in reversed(ids):  # answered out of order
        request = driver.result(server)
        assert request["headers"]["reply_to"] == replies
        answer = b"%d squared is %d" % (int(request["body"]), int(request["body"]) ** 2)
        confirm = driver.start(
            "basic_publish",
            exchange="",
            routing_key=replies,
            body=answer,
            headers={"correlation_id": correlation_id},
        )
        assert driver.result(confirm) == {}
        driver.ack(request)
    answers = {}
    for _ in ids:
        reply = driver.result(client_side)
        answers[reply["headers"]["correlation_id"]] = reply["body"]
    assert sorted(answers) == ids
    assert set(answers.values()) == {b"%d squared is %d" % (i, i * i) for i in range(5)}
    assert driver.poll(client_side, 0.1) is None
    assert driver.call("basic_cancel", consume_promise=server).is_error is False
    assert driver.call("queue_declare", queue=requests, passive=True)["message_count"] == 0
    assert_usable(driver, requests)


# --- the end of the connection -----------------------------------------------------------------


def test_connection_closed_by_the_broker_fails_every_pending_operation(
    driver: Driver, resources: Resources, rabbitmqctl: RabbitmqCtl
) -> None:
    """``rabbitmqctl close_connection`` on this client's connection (found by its name: the
    shared broker's other connections are left alone) fails each pending operation with the
    same typed error; calls made afterwards raise ClientClosed."""
    queues = [resources.queue() for _ in range(3)]
    driver.outcomes(driver.start_many("queue_declare", [{"queue": q} for q in queues]))
    pending = [driver.consume(q) for q in queues]
    pending.append(driver.start("basic_consume_multi", queues=queues[:2]))
    tx = driver.start("tx_select")
    assert driver.result(tx).is_error is False  # select-ok; the transaction stays open
    pending.append(tx)
    assert driver.publish_many(queues[2], [b"running"]) == [{}]
    assert driver.result(pending[2])["body"] == b"running"  # the consumes are up
    thread, thread_errors = close_connection_later(rabbitmqctl, driver.connection_name, delay=0)
    errors: list[puka.ConnectionForced] = []
    for handle in pending:
        with pytest.raises(puka.ConnectionForced) as caught:
            driver.result(handle, timeout=3 * SOON)
        errors.append(caught.value)
    thread.join(SOON)
    assert not thread_errors, thread_errors
    assert {(type(e), e.reply_code) for e in errors} == {(puka.ConnectionForced, 320)}
    assert isinstance(errors[0], puka.HardError)
    assert "CONNECTION_FORCED" in str(errors[0])
    with pytest.raises(puka.ClientClosed):
        driver.start("queue_declare", queue=queues[0], passive=True)
    with pytest.raises(puka.ClientClosed):
        driver.start("basic_publish", exchange="", routing_key=queues[0], body=b"too late")


def test_closed_client_raises_client_closed(
    driver: Driver, resources: Resources, make_client: Callable[..., Any]
) -> None:
    queue = resources.queue()
    driver.call("queue_declare", queue=queue)
    # not waited for before close(): the publish (on its own channel) and a declare
    publish = driver.start("basic_publish", exchange="", routing_key=queue, body=b"sent")
    declare = driver.start("queue_declare", queue=queue, passive=True)
    assert driver.close().is_error is False
    # close() waited for what was sent before it
    assert driver.result(publish) == {}
    assert driver.result(declare)["queue"] == queue
    assert message_count(make_client(), queue) == 1
    with pytest.raises(puka.ClientClosed):
        driver.start("queue_declare", queue=queue, passive=True)
    with pytest.raises(puka.ClientClosed):
        driver.start("basic_publish", exchange="", routing_key=queue, body=b"too late")


def test_cut_connection_fails_what_is_in_flight(
    style: str, amqp_url: str, fault_proxy: FaultProxy, unique_name: UniqueName
) -> None:
    """The link is cut (RST) under a running consume and a publish in flight: both fail with
    ConnectionLost (the publish's outcome is unknown), and later calls raise ClientClosed."""
    proxied = styles.connect(style, fault_proxy.url(amqp_url), unique_name(f"cut-{style}"))
    try:
        queue = proxied.call("queue_declare", queue="", exclusive=True)["queue"]
        consume = proxied.consume(queue)
        assert proxied.poll(consume, 0.2) is None
        fault_proxy.stall()
        publish = proxied.start("basic_publish", exchange="", routing_key=queue, body=b"limbo")
        assert proxied.poll(publish, 0.3) is None
        fault_proxy.rst()
        with pytest.raises(puka.ConnectionLost):
            proxied.result(publish)
        with pytest.raises((puka.ConnectionLost, puka.ClientClosed)):
            proxied.result(consume)
        with pytest.raises(puka.ClientClosed):
            proxied.start("queue_declare", queue="", exclusive=True)
    finally:
        proxied.dispose()
