"""Every public call of `puka.Client` refuses wrong arguments at once and stays usable.

A hypothesis test drives each call with wrong types and values (see `argument_cases`) on one
connection to the real broker: each must raise `TypeError` or `ValueError` (nothing else), at
once, naming the argument, and leave nothing counted, queued or written; afterwards the
client still works (a declare/publish/get round trip) and `close()` returns at once.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import puka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.broker_node import UniqueName
from tests.integration.argument_cases import BLOCKING_CASES, Case, Context, state
from tests.integration.helpers import wait_ok

#: Examples per run: enough to reach every argument of every call several times.
EXAMPLES = 400


def make_context(client: Any, url: str, unique_name: UniqueName) -> Context:
    """An exclusive queue holding one unacked message, a consume, a transaction, a promise."""
    queue = wait_ok(client, client.queue_declare(queue=unique_name("args"), exclusive=True))
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue["queue"], body=b"m"))
    message = wait_ok(client, client.basic_get(queue=queue["queue"]))
    assert message["body"] == b"m"
    consumed = wait_ok(client, client.queue_declare(queue=unique_name("args-c"), exclusive=True))
    consume = client.basic_consume(queue=consumed["queue"])
    tx = client.tx_select()
    assert wait_ok(client, tx).name == "tx.select_ok"
    done = client.queue_declare(queue=queue["queue"], passive=True)
    wait_ok(client, done)
    return Context(
        client=client,
        url=url,
        queue=queue["queue"],
        missing=unique_name("args-missing"),
        consume=consume,
        tx=tx,
        message=message,
        done=done,
    )


def call(context: Context, case: Case, arguments: dict[str, Any]) -> Any:
    """Make the call of `case` with `arguments` on the context's client."""
    client = context.client
    if case.call.startswith("="):
        setattr(client, case.call[1:], arguments["fn"])
        return None
    if case.call == "puka.Client":
        return puka.Client(**arguments)
    if case.call == "puka.loop":
        return puka.loop(**arguments)
    return getattr(client, case.call)(**arguments)


def refuse(context: Context, case: Case, argument: str, value: Any) -> None:
    """`case`'s call with `argument=value` raises TypeError/ValueError at once, leaving the
    client as it was."""
    arguments = {**case.valid(context), argument: value}
    before = state(context.client)
    started = time.monotonic()
    with pytest.raises((TypeError, ValueError)) as caught:
        call(context, case, arguments)
    took = time.monotonic() - started
    message = str(caught.value)
    assert any(word in message for word in case.words(argument)), (
        f"{case.call}({argument}={value!r}): the message does not name it: {message!r}"
    )
    assert took < 1.0, f"{case.call}({argument}={value!r}) took {took:.2f} s to refuse"
    assert state(context.client) == before, f"{case.call}({argument}={value!r}) left a trace"


def round_trip(client: Any, queue: str) -> None:
    """The client still works: a publish to the queue and a get of it."""
    wait_ok(client, client.queue_declare(queue=queue, passive=True))
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"after"))
    got = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert got["body"] == b"after"


@pytest.mark.timeout(300)
def test_every_call_refuses_wrong_arguments_at_once(
    client: Any, amqp_url: str, unique_name: UniqueName
) -> None:
    context = make_context(client, amqp_url, unique_name)
    arguments = [(case, name) for case in BLOCKING_CASES for name in case.bad]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case, argument = data.draw(st.sampled_from(arguments), label="call, argument")
        value = data.draw(case.bad[argument], label=f"{case.call}({argument}=...)")
        refuse(context, case, argument, value)

    run()
    round_trip(client, context.queue)
    started = time.monotonic()
    assert client.wait(client.close(), timeout=5) is not None
    assert time.monotonic() - started < 1.0


def test_refused_publishes_leave_close_immediate(client: Any, unique_name: UniqueName) -> None:
    """The calls of issue 19: each refused with a clear message, and close() returns at once."""
    queue = wait_ok(client, client.queue_declare(queue=unique_name("args"), exclusive=True))[
        "queue"
    ]
    expected = [
        ({"body": 42}, TypeError, "body must be bytes or str, not int (42)"),
        ({"body": None}, TypeError, "body must be bytes or str, not None"),
        ({"body": {"a": 1}}, TypeError, "body must be bytes or str, not dict"),
        ({"headers": {"delivery_mode": "persistent"}}, TypeError, "property delivery_mode"),
        ({"headers": {"priority": "high"}}, TypeError, "property priority must be an int"),
        ({"headers": {"timestamp": 1.5}}, TypeError, "property timestamp must be an int"),
        ({"headers": {"expiration": 60000}}, TypeError, "write '60000'"),
        ({"headers": {"delivery_mode": 256}}, ValueError, "from 0 to 255"),
        ({"headers": {"x-set": {1}}}, ValueError, "headers['x-set']"),
        ({"properties": {"x-custom": 1}}, ValueError, "'x-custom' is not a basic property"),
    ]
    for arguments, error, text in expected:
        with pytest.raises(error) as caught:
            client.basic_publish(exchange="", routing_key=queue, **arguments)
        assert text in str(caught.value)
        assert str(caught.value).startswith("basic_publish: ")
    with pytest.raises(TypeError, match="amqp_url must be a str"):
        puka.Client(None)  # type: ignore[arg-type]
    assert client.engine.promises.pending() == 0
    round_trip(client, queue)
    started = time.monotonic()
    assert client.wait(client.close(), timeout=5) is not None
    assert time.monotonic() - started < 1.0


# --- properties apart from application headers ------------------------------------------------

MOMENT = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def publish_get(client: Any, queue: str, **publish: Any) -> Any:
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"p", **publish))
    return wait_ok(client, client.basic_get(queue=queue, no_ack=True))


def test_an_application_header_named_like_a_property_stays_one(
    client: Any, unique_name: UniqueName
) -> None:
    queue = wait_ok(client, client.queue_declare(queue=unique_name("props"), exclusive=True))[
        "queue"
    ]
    # with properties= (even empty), every key of headers is an application header
    message = publish_get(client, queue, headers={"type": "app", "priority": "high"}, properties={})
    assert message.application_headers == {"type": "app", "priority": "high"}
    assert message.properties == {}
    assert message["headers"] == {"type": "app", "priority": "high"}
    # both: the property and the application header of the same name arrive apart
    message = publish_get(
        client,
        queue,
        headers={"type": "app", "x-trace": 7},
        properties={"type": "order.created", "delivery_mode": 2, "timestamp": MOMENT},
    )
    assert message.properties == {
        "type": "order.created",
        "delivery_mode": 2,
        "timestamp": int(MOMENT.timestamp()),
    }
    assert message.application_headers == {"type": "app", "x-trace": 7}
    assert message["headers"]["type"] == "order.created"  # the merged view: the property wins
    assert message["headers"]["x-trace"] == 7
    # republished from its two parts, the message arrives the same
    again = publish_get(
        client, queue, headers=message.application_headers, properties=message.properties
    )
    assert again.properties == message.properties
    assert again.application_headers == message.application_headers
    # without properties=, Puka's one dict: `type` is the property, as before
    legacy = publish_get(client, queue, headers={"type": "t", "x-a": "b"})
    assert legacy.properties == {"type": "t"}
    assert legacy.application_headers == {"x-a": "b"}
    assert legacy["headers"] == {"type": "t", "x-a": "b"}


def test_a_returned_message_shows_its_parts_apart(client: Any, unique_name: UniqueName) -> None:
    promise = client.basic_publish(
        exchange="",
        routing_key=unique_name("nowhere"),
        mandatory=True,
        headers={"type": "app"},
        properties={"type": "prop"},
        body=b"r",
    )
    result = client.wait(promise, raise_errors=False)
    assert isinstance(result.exception, puka.NoRoute)
    assert result.properties == {"type": "prop"}
    assert result.application_headers == {"type": "app"}
