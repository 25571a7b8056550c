"""A consume of many queues (`basic_consume_multi`) costs the same per consumer whatever their
number (issue 22: consumers 1 -> 10,000 on one connection).

The engine used to keep the consumer tags the broker confirmed in a list, which each consume-ok
(a repeat is dropped), each cancel-ok and each broker cancel scanned: a consume of 10,000
queues spent about a second in those scans on its consume-oks alone, some of it after the
first messages arrived. What a tag costs is counted here as the comparisons made with it: the
frames carry consumer tags of a `str` subclass that counts its `__eq__` calls, fed to the
engine's channels as its frame reader hands them over.
"""

from __future__ import annotations

from typing import Any

import pytest
from puka import Engine, Result
from puka_spec import BasicProperties, ContentFrame, MethodFrame, methods

from tests.faults.test_hostile_properties import open_engine

CONSUMERS = 2000


class Tag(str):
    """A consumer tag that counts the comparisons made with it."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        Tag.compared += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        Tag.compared += 1
        return str.__ne__(self, other)

    __hash__ = str.__hash__


def _tag(index: int) -> Tag:
    return Tag(f"amq.ctag-{index:08d}")


def _receive(engine: Engine, method: methods.Method) -> None:
    """A method on channel 1, as the frame reader hands it to the channels (its consumer tag
    a `Tag`, which decoding bytes could not give)."""
    engine.channels.receive(1, MethodFrame(1, method), engine.state)


def _consuming(count: int) -> tuple[Engine, Any, int]:
    """An open engine consuming `count` queues on channel 1, every consume-ok in; the
    comparisons the consume-oks cost."""
    engine = open_engine()
    consume = engine.consume([methods.BasicConsume(queue=f"q{i}") for i in range(count)], 10)
    _receive(engine, methods.ChannelOpenOk())
    _receive(engine, methods.BasicQosOk())
    Tag.compared = 0
    for index in range(count):
        _receive(engine, methods.BasicConsumeOk(_tag(index)))
    engine.data_to_send()
    return engine, consume, Tag.compared


@pytest.mark.parametrize("count", [1, CONSUMERS])
def test_consume_oks_and_cancel_oks_cost_no_scan_of_the_consumers(count: int) -> None:
    engine, consume, compared = _consuming(count)
    assert compared <= count  # (a list scanned by each: ~count² / 2)
    assert not engine.promises.take(consume.number)  # no result: consume-oks are not messages
    # a repeated consume-ok (RabbitMQ 3.10, quorum queue leader election) is still dropped
    _receive(engine, methods.BasicConsumeOk(_tag(count - 1)))
    assert engine.duplicate_consume_oks == 1
    cancel = engine.on_holder(consume.number, "cancel", methods.BasicCancel(consumer_tag=""))
    Tag.compared = 0
    for index in range(count):
        _receive(engine, methods.BasicCancelOk(_tag(index)))
    assert Tag.compared <= 2 * count
    result = engine.promises.take(cancel.number)
    assert result is not None and result.name == "basic.cancel_ok"
    assert engine.promises.live.get(consume.number) is None or consume.done


def test_broker_cancels_cost_no_scan_and_the_last_ends_the_consume() -> None:
    engine, consume, _ = _consuming(CONSUMERS)
    Tag.compared = 0
    for index in reversed(range(CONSUMERS)):  # the worst order for a list's scan
        _receive(engine, methods.BasicCancel(consumer_tag=_tag(index)))
    assert Tag.compared <= 2 * CONSUMERS
    results = []
    while (result := engine.promises.take(consume.number)) is not None:
        results.append(result)
    assert [r.name for r in results] == ["basic.cancel"] * CONSUMERS
    assert results[0]["consumer_tag"] == _tag(CONSUMERS - 1)
    assert consume.done


def test_a_delivery_and_its_ack_compare_no_consumer_tag() -> None:
    engine, consume, _ = _consuming(CONSUMERS)
    Tag.compared = 0
    for tag in range(1, 101):
        deliver = methods.BasicDeliver(_tag(tag * 7 % CONSUMERS), tag, False, "", "q")
        frame = ContentFrame(1, deliver, BasicProperties(), b"m")
        engine.channels.receive(1, frame, engine.state)
    messages: list[Result] = []
    while (message := engine.promises.take(consume.number)) is not None:
        messages.append(message)
        engine.ack(message)
    assert Tag.compared == 0
    assert len(messages) == 100
    assert [m["consumer_tag"] for m in messages[:2]] == [_tag(7), _tag(14)]
    assert engine.data_to_send()  # the acks (one `multiple` frame)
