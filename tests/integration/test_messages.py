"""Messages round-trip: bodies of every size and byte, every basic property, every header type."""

from __future__ import annotations

import contextlib
import datetime
import math
import string
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import puka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.helpers import (
    SOON,
    Resources,
    close_quietly,
    drain,
    every_basic_property,
    url_user,
    wait_ok,
)

UTC = datetime.timezone.utc
PROPERTY_NAMES = {
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "headers",
    "cluster_id",
}
#: Header names RabbitMQ interprets (sender-selected distribution strips BCC): not for fuzzing.
BROKER_HEADERS = {"CC", "BCC"}


def assert_same(received: Any, sent: Any, path: str = "value") -> None:
    """Equal values of the same type (``True`` is not ``1``), recursively."""
    if isinstance(sent, datetime.datetime):
        assert isinstance(received, datetime.datetime), f"{path}: {received!r} is no datetime"
        got = received if received.tzinfo else received.replace(tzinfo=UTC)
        want = sent if sent.tzinfo else sent.replace(tzinfo=UTC)
        assert got == want, f"{path}: {received!r} != {sent!r}"
        return
    if isinstance(sent, tuple):
        sent = list(sent)
    assert type(received) is type(sent), f"{path}: {received!r} is not a {type(sent).__name__}"
    if isinstance(sent, dict):
        assert set(received) == set(sent), f"{path}: keys {set(received)} != {set(sent)}"
        for key, value in sent.items():
            assert_same(received[key], value, f"{path}[{key!r}]")
    elif isinstance(sent, list):
        assert len(received) == len(sent), f"{path}: {received!r} != {sent!r}"
        for i, (r, s) in enumerate(zip(received, sent, strict=True)):
            assert_same(r, s, f"{path}[{i}]")
    elif isinstance(sent, float) and math.isnan(sent):
        assert math.isnan(received)
    else:
        assert received == sent, f"{path}: {received!r} != {sent!r}"


def round_trip(client: Any, queue: str, body: bytes | str = b"", **publish: Any) -> Any:
    """Publish to ``queue`` (default exchange, confirmed) and basic_get it back."""
    assert (
        wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=body, **publish))
        == {}
    )
    message = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert not message.get("empty"), "the published message is not in the queue"
    return message


@pytest.fixture
def queue(client: Any, resources: Resources) -> str:
    name = resources.queue()
    wait_ok(client, client.queue_declare(queue=name))
    return name


@pytest.fixture
def fanout_queue(client: Any, resources: Resources, queue: str) -> tuple[str, str]:
    """A fanout exchange of our own, bound to ``queue``."""
    exchange = resources.exchange("fanout")
    wait_ok(client, client.exchange_declare(exchange=exchange, type="fanout"))
    wait_ok(client, client.queue_bind(queue=queue, exchange=exchange))
    return exchange, queue


# --- bodies -------------------------------------------------------------------------------


def test_basic_get_result_fields(client: Any, queue: str) -> None:
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"first"))
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"second"))
    message = wait_ok(client, client.basic_get(queue=queue))
    assert message["body"] == b"first"
    assert isinstance(message["body"], bytes)
    assert isinstance(message["headers"], dict)
    assert isinstance(message["delivery_tag"], int)
    assert message["delivery_tag"] >= 1
    assert message["redelivered"] is False
    assert message["exchange"] == ""
    assert message["routing_key"] == queue
    assert message["message_count"] == 1  # messages left after this one
    assert message.is_error is False
    client.basic_ack(message)
    second = wait_ok(client, client.basic_get(queue=queue))
    assert second["body"] == b"second"
    assert second["message_count"] == 0
    client.basic_ack(second)
    empty = wait_ok(client, client.basic_get(queue=queue))
    assert empty["empty"] is True
    assert empty.is_error is False


def test_basic_get_unacked_is_redelivered_after_reject(client: Any, queue: str) -> None:
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"again"))
    message = wait_ok(client, client.basic_get(queue=queue))
    assert message["redelivered"] is False
    client.basic_reject(message, requeue=True)
    again = wait_ok(client, client.basic_get(queue=queue))
    assert again["body"] == b"again"
    assert again["redelivered"] is True
    client.basic_ack(again)
    assert wait_ok(client, client.basic_get(queue=queue))["empty"] is True


def test_basic_get_missing_queue_is_not_found(client: Any, resources: Resources) -> None:
    with pytest.raises(puka.NotFound):
        client.wait(client.basic_get(queue=resources.queue("missing")))


def test_all_byte_values(client: Any, queue: str) -> None:
    body = bytes(range(256)) * 3
    assert round_trip(client, queue, body)["body"] == body


def test_empty_body(client: Any, queue: str) -> None:
    message = round_trip(client, queue, b"")
    assert message["body"] == b""
    assert isinstance(message["body"], bytes)
    message = round_trip(client, queue)  # body defaults to b""
    assert message["body"] == b""


def test_str_body_is_utf8_encoded(client: Any, queue: str) -> None:
    message = round_trip(client, queue, "Grüße, 世界! 🐇")
    assert message["body"] == "Grüße, 世界! 🐇".encode()


def test_five_mebibyte_body(client: Any, queue: str) -> None:
    size = 5 * 1024 * 1024 + 17  # far above frame_max (128 KiB by default)
    body = bytes(i * 7 % 251 for i in range(65536)) * (size // 65536) + b"end" * 100
    body = body[:size]
    assert len(body) == size
    message = round_trip(client, queue, body)
    assert len(message["body"]) == size
    assert message["body"] == body
    # and through a consume too
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=body))
    consume = client.basic_consume(queue=queue, no_ack=True)
    delivered = wait_ok(client, consume, timeout=SOON * 3)
    assert delivered["body"] == body
    wait_ok(client, client.basic_cancel(consume))


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 131063, 131064, 131065, 131072, 262145])
def test_bodies_around_frame_boundaries(client: Any, queue: str, size: int) -> None:
    body = bytes(i % 256 for i in range(size))
    assert round_trip(client, queue, body)["body"] == body


def test_many_pipelined_publishes_arrive_in_order(client: Any, queue: str) -> None:
    promises = [
        client.basic_publish(exchange="", routing_key=queue, body=b"%05d" % i) for i in range(2000)
    ]
    results = client.wait_for_all(promises)
    assert len(results) == 2000
    assert all(r == {} for r in results)
    assert [m["body"] for m in drain(client, queue)] == [b"%05d" % i for i in range(2000)]


def test_unconfirmed_publish_without_waiting_still_arrives(client: Any, queue: str) -> None:
    for i in range(50):
        client.basic_publish(exchange="", routing_key=queue, body=b"%d" % i)
    # a later wait drives the writes out
    wait_ok(client, client.queue_declare(queue=queue, passive=True))
    got: list[bytes] = []
    for _ in range(100):
        if len(got) == 50:
            break
        got += [m["body"] for m in drain(client, queue)]
    assert got == [b"%d" % i for i in range(50)]


# --- non-ASCII names and headers ------------------------------------------------------------


def test_non_ascii_queue_name_routing_key_and_headers(client: Any, resources: Resources) -> None:
    queue = resources.queue("ünïcödé-日本語-🐇")
    exchange = resources.exchange("échange-交換")
    routing_key = "clé.routage.ключ.🔑"
    result = wait_ok(client, client.queue_declare(queue=queue))
    assert result["queue"] == queue
    wait_ok(client, client.exchange_declare(exchange=exchange, type="direct"))
    wait_ok(client, client.queue_bind(queue=queue, exchange=exchange, routing_key=routing_key))
    headers = {"clé-ключ-鍵": "välue-значение-値-✓", "plain": "ascii", "content_type": "text/plain"}
    wait_ok(
        client,
        client.basic_publish(
            exchange=exchange, routing_key=routing_key, headers=headers, body="ü".encode()
        ),
    )
    message = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert message["body"] == "ü".encode()
    assert message["exchange"] == exchange
    assert message["routing_key"] == routing_key
    for key, value in headers.items():
        assert_same(message["headers"][key], value, key)
    # the default exchange routes by the non-ASCII queue name too
    message = round_trip(client, queue, b"direct")
    assert message["routing_key"] == queue
    assert wait_ok(client, client.queue_delete(queue=queue))["message_count"] == 0


# --- properties and headers -----------------------------------------------------------------


def test_every_basic_property_round_trips(client: Any, queue: str, amqp_url: str) -> None:
    properties = every_basic_property(url_user(amqp_url))  # user_id: the connection's user
    message = round_trip(client, queue, b"{}", headers=dict(properties))
    received = message["headers"]
    for key, value in properties.items():
        assert key in received, f"property {key} was lost"
        assert_same(received[key], value, key)
    # none of them leaked in as an application header under another spelling
    assert {k for k, v in received.items() if v is not None} == set(properties)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("content_type", "text/plain; charset=utf-8"),
        ("content_encoding", "identity"),
        ("delivery_mode", 1),
        ("delivery_mode", 2),
        ("priority", 0),
        ("priority", 9),
        ("correlation_id", ""),
        ("reply_to", "amq.gen-xyz"),
        ("expiration", "1000000"),
        ("message_id", "x" * 255),
        ("timestamp", 0),
        ("timestamp", 4102444800),
        ("type", "t"),
        ("app_id", "app"),
    ],
)
def test_single_property_round_trips(client: Any, queue: str, key: str, value: Any) -> None:
    message = round_trip(client, queue, b"p", headers={key: value})
    assert_same(message["headers"][key], value, key)


def test_user_id_of_another_user_is_refused(client: Any, queue: str) -> None:
    with pytest.raises(puka.PreconditionFailed):
        client.wait(
            client.basic_publish(
                exchange="", routing_key=queue, headers={"user_id": "not-me-at-all"}, body=b"x"
            )
        )
    # a soft error: the client still publishes
    assert round_trip(client, queue, b"fine")["body"] == b"fine"


def test_application_headers_of_every_type(client: Any, queue: str) -> None:
    headers: dict[str, Any] = {
        "int": 42,
        "negative": -7,
        "int32-max": 2**31 - 1,
        "int32-min": -(2**31),
        "int64": 2**40 + 3,
        "int64-negative": -(2**62),
        "str": "hello",
        "str-empty": "",
        "str-unicode": "žluťoučký kůň 🐴",
        "true": True,
        "false": False,
        "float": 3.25,
        "float-negative": -1e-300,
        "float-big": 1.5e300,
        "none": None,
        "bytes": bytes(range(256)),
        "bytes-empty": b"",
        "list": [1, "two", 3.5, None, True, b"\x00\x01", [4, [5]], {"six": 6}],
        "list-empty": [],
        "dict": {"a": 1, "b": {"c": [1, 2, {"d": "deep"}]}, "e": None},
        "dict-empty": {},
        "decimal": Decimal("3.14"),
        "decimal-negative": Decimal("-12345.678"),
        "decimal-integer": Decimal(10),
        "datetime": datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=UTC),
    }
    message = round_trip(client, queue, b"headers", headers=headers)
    received = dict(message["headers"])
    app = {k: v for k, v in received.items() if k not in PROPERTY_NAMES}
    assert_same(app, headers, "headers")


def test_headers_none_and_empty_dict(client: Any, queue: str) -> None:
    for headers in (None, {}):
        message = round_trip(client, queue, b"h", headers=headers)
        assert isinstance(message["headers"], dict)
        assert {k for k in message["headers"] if k not in PROPERTY_NAMES} == set()
        assert message["body"] == b"h"


# --- property-based: any body, any header table ----------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda k: k not in PROPERTY_NAMES and k not in BROKER_HEADERS and len(k.encode()) <= 255
)
_decimals = st.builds(
    lambda unscaled, scale: Decimal(unscaled).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 9),
)
_datetimes = st.datetimes(
    min_value=datetime.datetime(1970, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    # finite only: the broker (Erlang) cannot decode an infinite double and fails the connection
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
    st.binary(max_size=64),
    _decimals,
    _datetimes,
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(_keys, children, max_size=5)
    ),
    max_leaves=20,
)


@contextlib.contextmanager
def fresh_queue(url: str) -> Iterator[tuple[Any, str]]:
    """A new connection and an exclusive queue: a failing example cannot poison the next one."""
    client = puka.Client(url)
    try:
        wait_ok(client, client.connect())
        yield client, wait_ok(client, client.queue_declare(exclusive=True))["queue"]
    finally:
        close_quietly(client)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.binary(max_size=300_000), headers=st.dictionaries(_keys, _values, max_size=8))
def test_any_body_and_header_table_round_trips(
    amqp_url: str, body: bytes, headers: dict[str, Any]
) -> None:
    with fresh_queue(amqp_url) as (client, queue):
        message = round_trip(client, queue, body, headers=headers)
        assert message["body"] == body
        app = {k: v for k, v in message["headers"].items() if k not in PROPERTY_NAMES}
        assert_same(app, headers, "headers")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    routing_key=st.text(
        st.characters(blacklist_categories=("Cs",)) | st.sampled_from(string.printable),
        min_size=1,
        max_size=40,
    )
)
def test_any_utf8_routing_key_round_trips(
    client: Any, fanout_queue: tuple[str, str], routing_key: str
) -> None:
    # fanout ignores the key, so any key reaches the queue and comes back unchanged
    exchange, queue = fanout_queue
    wait_ok(client, client.queue_purge(queue=queue))
    wait_ok(client, client.basic_publish(exchange=exchange, routing_key=routing_key, body=b"rk"))
    message = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert message["routing_key"] == routing_key
    assert message["exchange"] == exchange
