"""puka-opentelemetry with the blocking `puka.Client`, against the real broker (issue 21 item 3).

Publish then consume is one trace: a PRODUCER span per publish (a child of the publishing code's
span, ended when the broker confirmed), a CONSUMER span per delivery (a child of the publish's
span, through the `traceparent` header), a CLIENT span per `basic_get` message, with the
messaging semantic conventions' attributes for RabbitMQ. Nacked, returned and lost publishes end
their span with an error. `uninstrument` removes the hook. No span carries the password.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import puka
import puka.hooks
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from puka_opentelemetry import PukaInstrumentor, context_of

from tests.broker_node import UniqueName
from tests.faults.fault_proxy import FaultProxy
from tests.opentelemetry.conftest import Spans

SOON = 5.0


@pytest.fixture
def client(amqp_url: str) -> Iterator[puka.Client]:
    client = puka.Client(amqp_url)
    client.wait(client.connect(), timeout=SOON)
    try:
        yield client
    finally:
        client.wait(client.close(), timeout=SOON, raise_errors=False)


@pytest.fixture
def queue(client: puka.Client, unique_name: UniqueName) -> str:
    """A queue of the test's own (exclusive: gone with the client)."""
    name = unique_name("otel")
    client.wait(client.queue_declare(name, exclusive=True), timeout=SOON)
    return name


def _wait(client: puka.Client, promise: Any) -> puka.Result:
    result = client.wait(promise, timeout=SOON)
    assert result is not None, "no result in time"
    return result


def _attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _broker(amqp_url: str) -> tuple[str, int]:
    parts = urlsplit(amqp_url)
    return parts.hostname or "localhost", parts.port or 5672


def test_publish_then_consume_is_one_trace(
    spans: Spans, client: puka.Client, queue: str, amqp_url: str
) -> None:
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("send order") as app:
        _wait(
            client,
            client.basic_publish(
                "", queue, body=b"order 1", headers={"message_id": "m-1", "correlation_id": "c-1"}
            ),
        )
    message = _wait(client, client.basic_consume(queue, no_ack=True))
    assert message["body"] == b"order 1"
    assert "traceparent" in message.application_headers  # the publish's context went along

    producer = spans.one(f"publish {queue}")
    consumer = spans.one(f"deliver {queue}")
    host, port = _broker(amqp_url)
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None and producer.parent.span_id == app.get_span_context().span_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.context.trace_id == producer.context.trace_id == app.get_span_context().trace_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    assert producer.status.status_code is StatusCode.UNSET
    assert _attributes(producer) == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": queue,  # the default exchange: the routing key alone
        "messaging.rabbitmq.destination.routing_key": queue,
        "messaging.message.id": "m-1",
        "messaging.message.conversation_id": "c-1",
        "server.address": host,
        "server.port": port,
    }
    assert _attributes(consumer) == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "deliver",
        "messaging.destination.name": queue,  # exchange, routing key, queue: only one of each
        "messaging.rabbitmq.destination.routing_key": queue,
        "messaging.rabbitmq.message.delivery_tag": message["delivery_tag"],
        "messaging.message.id": "m-1",
        "messaging.message.conversation_id": "c-1",
        "server.address": host,
        "server.port": port,
    }


def test_an_exchange_and_routing_key_name_the_destination(
    spans: Spans, client: puka.Client, queue: str, unique_name: UniqueName
) -> None:
    exchange = unique_name("otel-x")
    _wait(client, client.exchange_declare(exchange, type="topic", auto_delete=True))
    try:
        _wait(client, client.queue_bind(queue, exchange, "order.*"))
        _wait(client, client.basic_publish(exchange, "order.created", body=b"x"))
        message = _wait(client, client.basic_consume(queue))
        client.basic_ack(message)
    finally:
        client.wait(client.exchange_delete(exchange), timeout=SOON, raise_errors=False)
    producer = spans.one(f"publish {exchange}:order.created")
    consumer = spans.one(f"deliver {exchange}:order.created:{queue}")
    assert _attributes(producer)["messaging.destination.name"] == f"{exchange}:order.created"
    assert _attributes(consumer)["messaging.rabbitmq.destination.routing_key"] == "order.created"
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id


def test_a_fetched_message_gets_a_client_span_in_the_trace(
    spans: Spans, client: puka.Client, queue: str
) -> None:
    _wait(client, client.basic_publish("", queue, body=b"fetch me"))
    message = _wait(client, client.basic_get(queue, no_ack=True))
    assert message["body"] == b"fetch me"
    producer = spans.one(f"publish {queue}")
    fetched = spans.one(f"get {queue}")
    assert fetched.kind is SpanKind.CLIENT
    assert fetched.parent is not None and fetched.parent.span_id == producer.context.span_id
    attributes = _attributes(fetched)
    assert attributes["messaging.operation.type"] == "receive"
    assert attributes["messaging.operation.name"] == "get"
    assert attributes["messaging.rabbitmq.message.delivery_tag"] == message["delivery_tag"]


def test_context_of_parents_the_processing_on_the_delivery_span(
    spans: Spans, client: puka.Client, queue: str
) -> None:
    _wait(client, client.basic_publish("", queue, body=b"work"))
    message = _wait(client, client.basic_consume(queue, no_ack=True))
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("handle", context=context_of(message)):
        pass
    consumer = spans.one(f"deliver {queue}")
    handle = spans.one("handle")
    assert handle.parent is not None and handle.parent.span_id == consumer.context.span_id
    assert handle.context.trace_id == spans.one(f"publish {queue}").context.trace_id


def test_a_message_without_trace_context_starts_its_own_trace(
    spans: Spans, client: puka.Client, queue: str
) -> None:
    with suppress_instrumentation():  # published as an uninstrumented client would
        _wait(client, client.basic_publish("", queue, body=b"untraced"))
    assert spans.finished() == []
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("waiting"):  # the delivery's span is not its child
        message = _wait(client, client.basic_consume(queue, no_ack=True))
    assert "traceparent" not in message.application_headers
    consumer = spans.one(f"deliver {queue}")
    assert consumer.parent is None and not consumer.links
    assert trace.get_current_span(context_of(message)).get_span_context() == consumer.context


def test_a_nacked_publish_ends_its_span_with_an_error(
    spans: Spans, client: puka.Client, unique_name: UniqueName
) -> None:
    full = unique_name("otel-full")  # a queue that refuses every message: the broker nacks
    arguments = {"x-max-length": 0, "x-overflow": "reject-publish"}
    _wait(client, client.queue_declare(full, exclusive=True, arguments=arguments))
    result = client.wait(
        client.basic_publish("", full, body=b"refused"), timeout=SOON, raise_errors=False
    )
    assert result is not None and isinstance(result.exception, puka.PublishNacked)
    producer = spans.one(f"publish {full}")
    assert producer.status.status_code is StatusCode.ERROR
    assert _attributes(producer)["error.type"] == "PublishNacked"
    assert [event.name for event in producer.events] == ["exception"]


def test_an_at_least_once_publish_is_one_span_ended_by_its_last_outcome(
    spans: Spans, client: puka.Client, unique_name: UniqueName
) -> None:
    """Issue 23: a publish sent three times (`retry=`) is one span, ended when the policy gave
    up; the message keeps its trace context and gets its message_id."""
    full = unique_name("otel-full")
    arguments = {"x-max-length": 0, "x-overflow": "reject-publish"}
    _wait(client, client.queue_declare(full, exclusive=True, arguments=arguments))
    policy = puka.RetryPolicy(attempts=3, initial_delay=0.01)
    result = client.wait(
        client.basic_publish("", full, body=b"refused", retry=policy),
        timeout=SOON,
        raise_errors=False,
    )
    assert result is not None and isinstance(result.exception, puka.PublishFailed)
    producer = spans.one(f"publish {full}")
    assert producer.status.status_code is StatusCode.ERROR
    assert _attributes(producer)["error.type"] == "PublishFailed"
    queue = unique_name("otel-alo")
    _wait(client, client.queue_declare(queue, exclusive=True))
    _wait(client, client.basic_publish("", queue, body=b"kept", retry=True))
    message = _wait(client, client.basic_get(queue, no_ack=True))
    assert "traceparent" in message.application_headers
    assert message.properties["message_id"]


def test_a_returned_publish_ends_its_span_with_an_error(
    spans: Spans, client: puka.Client, unique_name: UniqueName
) -> None:
    nowhere = unique_name("otel-nowhere")
    result = client.wait(
        client.basic_publish("", nowhere, mandatory=True, body=b"unroutable"),
        timeout=SOON,
        raise_errors=False,
    )
    assert result is not None and isinstance(result.exception, puka.NoRoute)
    producer = spans.one(f"publish {nowhere}")
    assert producer.status.status_code is StatusCode.ERROR
    assert producer.status.description == "Returned: 312 NO_ROUTE (method 60.40)"
    assert _attributes(producer)["error.type"] == "Returned"  # (the NoRoute of one publish)


def test_a_publish_lost_with_the_connection_ends_its_span_with_an_error(
    spans: Spans, amqp_url: str, fault_proxy: FaultProxy, unique_name: UniqueName
) -> None:
    client = puka.Client(fault_proxy.url(amqp_url))
    try:
        _wait(client, client.connect())
        queue = unique_name("otel-lost")
        _wait(client, client.queue_declare(queue, exclusive=True))
        _wait(client, client.basic_publish("", queue, body=b"first"))  # the publish channel
        fault_proxy.stall()  # the confirm of the next publish never comes
        promise = client.basic_publish("", queue, body=b"in flight")
        assert client.wait(promise, timeout=0.3) is None
        fault_proxy.rst()
        result = client.wait(promise, timeout=SOON, raise_errors=False)
        assert result is not None and isinstance(result.exception, puka.ConnectionLost)
    finally:
        client.wait(client.close(), timeout=1, raise_errors=False)
    first, lost = spans.named(f"publish {queue}")
    assert first.status.status_code is StatusCode.UNSET
    assert lost.status.status_code is StatusCode.ERROR
    assert _attributes(lost)["error.type"] == "ConnectionLost"


def test_a_refused_publish_ends_its_span_with_an_error(
    spans: Spans, client: puka.Client, queue: str
) -> None:
    with pytest.raises(TypeError, match="priority"):
        client.basic_publish("", queue, body=b"bad", headers={"priority": "high"})
    refused = spans.one(f"publish {queue}")
    assert refused.status.status_code is StatusCode.ERROR
    assert _attributes(refused)["error.type"] == "TypeError"


def test_uninstrument_removes_the_hook(spans: Spans, client: puka.Client, queue: str) -> None:
    PukaInstrumentor().uninstrument()
    assert puka.hooks.installed() == ()
    _wait(client, client.basic_publish("", queue, body=b"plain"))
    message = _wait(client, client.basic_consume(queue, no_ack=True))
    assert message.application_headers == {}  # no trace headers added
    assert spans.finished() == []
    PukaInstrumentor().instrument(tracer_provider=spans.provider)  # and back
    _wait(client, client.basic_publish("", queue, body=b"traced"))
    assert len(spans.named(f"publish {queue}")) == 1


def test_body_size_is_recorded_when_asked(spans: Spans, client: puka.Client, queue: str) -> None:
    _wait(client, client.basic_publish("", queue, body=b"12345"))
    assert "messaging.message.body.size" not in _attributes(spans.one(f"publish {queue}"))
    PukaInstrumentor().uninstrument()
    PukaInstrumentor().instrument(tracer_provider=spans.provider, body_size=True)
    spans.exporter.clear()
    _wait(client, client.basic_publish("", queue, body=b"1234567"))
    _wait(client, client.basic_get(queue, no_ack=True))  # the first message: 5 bytes
    assert _attributes(spans.one(f"publish {queue}"))["messaging.message.body.size"] == 7
    assert _attributes(spans.one(f"get {queue}"))["messaging.message.body.size"] == 5


def test_instrument_refuses_a_body_size_that_is_not_a_bool() -> None:
    with pytest.raises(TypeError, match="body_size must be a bool"):
        PukaInstrumentor().instrument(body_size="yes")
    assert puka.hooks.installed() == ()
    assert not PukaInstrumentor().is_instrumented_by_opentelemetry


def test_context_of_refuses_what_is_not_a_message_in_its_own_name() -> None:
    bad: Any = "hello"
    with pytest.raises(TypeError, match=r"^context_of: message must be a message Puka deliv"):
        context_of(bad)


def test_anonymous_destinations_stay_out_of_span_names(spans: Spans, client: puka.Client) -> None:
    declared = _wait(client, client.queue_declare(exclusive=True))  # a server-named queue
    name = declared["queue"]
    assert name.startswith("amq.gen-")
    _wait(client, client.basic_publish("", name, body=b"to a generated name"))
    _wait(client, client.basic_get(name, no_ack=True))
    producer, fetched = spans.one("publish"), spans.one("get")
    for span in (producer, fetched):
        assert _attributes(span)["messaging.destination.anonymous"] is True
        assert _attributes(span)["messaging.destination.name"] == name


def test_no_span_holds_the_password(
    spans: Spans, client: puka.Client, queue: str, amqp_url: str
) -> None:
    password = urlsplit(amqp_url).password
    assert password
    _wait(client, client.basic_publish("", queue, body=b"x", headers={"message_id": "1"}))
    _wait(client, client.basic_get(queue, no_ack=True))
    assert len(spans.finished()) == 2
    for span in spans.finished():
        for value in _attributes(span).values():
            assert password not in str(value), (span.name, value)


def test_a_trace_context_sent_as_bytes_is_read_too(
    spans: Spans, client: puka.Client, queue: str
) -> None:
    trace_id, span_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    traceparent = f"00-{trace_id}-{span_id}-01".encode()  # as a client sending byte strings
    with suppress_instrumentation():
        _wait(
            client, client.basic_publish("", queue, body=b"x", headers={"traceparent": traceparent})
        )
    message = _wait(client, client.basic_consume(queue, no_ack=True))
    assert message.application_headers["traceparent"] == traceparent
    consumer = spans.one(f"deliver {queue}")
    assert consumer.parent is not None
    assert (consumer.parent.trace_id, consumer.parent.span_id) == (
        int(trace_id, 16),
        int(span_id, 16),
    )


def test_a_message_published_again_continues_the_trace_from_the_new_publish(
    spans: Spans, client: puka.Client, queue: str, unique_name: UniqueName
) -> None:
    second = unique_name("otel-second")
    _wait(client, client.queue_declare(second, exclusive=True))
    _wait(client, client.basic_publish("", queue, body=b"hop"))
    message = _wait(client, client.basic_consume(queue, no_ack=True))
    tracer = spans.provider.get_tracer("test")
    with tracer.start_as_current_span("forward", context=context_of(message)):
        # its headers, trace context included, as they came: replaced by the new publish's
        _wait(client, client.basic_publish("", second, body=b"hop", headers=message["headers"]))
    _wait(client, client.basic_get(second, no_ack=True))
    chain = [
        f"publish {queue}",
        f"deliver {queue}",
        "forward",
        f"publish {second}",
        f"get {second}",
    ]
    found = [spans.one(name) for name in chain]
    for parent, child in itertools.pairwise(found):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id, (
            child.name
        )
