"""puka-opentelemetry with `puka_asyncio.AsyncClient`, on asyncio's loop and on uvloop.

The hook runs inside the protocol's callbacks for deliveries, whose ambient context is the
loop's, not the consuming task's: the delivery span's parent must still be the publish's span,
and `context_of` must give the consuming task the delivery span.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import puka
import puka_asyncio
import pytest
from opentelemetry.trace import SpanKind, StatusCode
from puka_opentelemetry import context_of

from tests.asyncio.helpers import LOOPS, finish_loop
from tests.broker_node import UniqueName
from tests.opentelemetry.conftest import Spans

T = TypeVar("T")


def _run(loop_kind: str, scenario: Coroutine[Any, Any, T]) -> T:
    loop = LOOPS[loop_kind]()
    try:
        return loop.run_until_complete(asyncio.wait_for(scenario, 30))
    finally:
        left = finish_loop(loop)
        assert not left, left


@pytest.mark.parametrize("loop_kind", list(LOOPS))
def test_publish_then_consume_is_one_trace(
    spans: Spans, amqp_url: str, unique_name: UniqueName, loop_kind: str
) -> None:
    tracer = spans.provider.get_tracer("test")
    queue = unique_name("otel-async")

    async def scenario() -> puka.Result:
        client = await puka_asyncio.connect(amqp_url)
        async with client:
            await client.queue_declare(queue, exclusive=True)
            with tracer.start_as_current_span("send order"):
                await client.basic_publish("", queue, body=b"order", headers={"message_id": "a-1"})
            async for message in client.basic_consume(queue, no_ack=True):
                with tracer.start_as_current_span("handle", context=context_of(message)):
                    await asyncio.sleep(0)
                return message
        raise AssertionError("no message")

    message = _run(loop_kind, scenario())
    app, producer = spans.one("send order"), spans.one(f"publish {queue}")
    consumer, handle = spans.one(f"deliver {queue}"), spans.one("handle")
    assert producer.kind is SpanKind.PRODUCER and consumer.kind is SpanKind.CONSUMER
    assert producer.parent is not None and producer.parent.span_id == app.context.span_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert handle.parent is not None and handle.parent.span_id == consumer.context.span_id
    assert len({span.context.trace_id for span in (app, producer, consumer, handle)}) == 1
    attributes = dict(consumer.attributes or {})
    assert attributes["messaging.system"] == "rabbitmq"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["messaging.destination.name"] == queue
    assert attributes["messaging.message.id"] == "a-1"
    assert attributes["messaging.rabbitmq.message.delivery_tag"] == message["delivery_tag"]
    assert dict(producer.attributes or {})["messaging.rabbitmq.destination.routing_key"] == queue


@pytest.mark.parametrize("loop_kind", list(LOOPS))
def test_returned_and_nacked_publishes_end_their_spans_with_errors(
    spans: Spans, amqp_url: str, unique_name: UniqueName, loop_kind: str
) -> None:
    nowhere, full = unique_name("otel-nowhere"), unique_name("otel-full")

    async def scenario() -> None:
        client = await puka_asyncio.connect(amqp_url)
        async with client:
            arguments = {"x-max-length": 0, "x-overflow": "reject-publish"}
            await client.queue_declare(full, exclusive=True, arguments=arguments)
            with pytest.raises(puka.NoRoute):
                await client.basic_publish("", nowhere, mandatory=True, body=b"unroutable")
            with pytest.raises(puka.PublishNacked):
                await client.basic_publish("", full, body=b"refused")

    _run(loop_kind, scenario())
    returned, nacked = spans.one(f"publish {nowhere}"), spans.one(f"publish {full}")
    assert returned.status.status_code is nacked.status.status_code is StatusCode.ERROR
    assert dict(returned.attributes or {})["error.type"] == "Returned"
    assert dict(nacked.attributes or {})["error.type"] == "PublishNacked"
