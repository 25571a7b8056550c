"""Acks queued between two writes go out as one `multiple` ack (issue 19 item 1), and never
settle a tag the user did not settle.

A model broker reads what the engine writes and keeps the set of tags still outstanding; after
any sequence of acks, nacks and rejects (with writes at random points in between), it must hold
exactly the tags the user has not settled, and every frame must name a tag outstanding then
(else RabbitMQ closes the channel with 406 PRECONDITION_FAILED).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from puka import Engine, Result
from puka_spec import FrameReader, MethodFrame, encode_content, encode_method_frame, methods

from tests.faults.test_hostile_properties import open_engine

COUNT = 12


def _consuming(engine: Engine, count: int = COUNT) -> list[Result]:
    consume = engine.consume([methods.BasicConsume(queue="q")], 0)
    engine.receive_data(encode_method_frame(1, methods.ChannelOpenOk()))
    engine.receive_data(encode_method_frame(1, methods.BasicConsumeOk("ctag")))
    for tag in range(1, count + 1):
        deliver = methods.BasicDeliver("ctag", tag, False, "", "q")
        engine.receive_data(encode_content(1, deliver, b"\0\0", b"m%d" % tag, 8192))
    engine.data_to_send()
    messages = []
    while (message := engine.promises.take(consume.number)) is not None:
        messages.append(message)
    assert len(messages) == count
    return messages


class ModelBroker:
    """The broker's side of the acks: outstanding tags, and what settles them."""

    def __init__(self, count: int) -> None:
        self.outstanding = set(range(1, count + 1))
        self.frames: list[tuple[str, int, bool]] = []
        self._reader = FrameReader(1 << 20)

    def receive(self, data: bytes) -> None:
        self._reader.feed(data)
        while (frame := self._reader.read_frame()) is not None:
            assert isinstance(frame, MethodFrame)
            method: Any = frame.method
            name = method.NAME
            multiple = bool(getattr(method, "multiple", False))
            tag = method.delivery_tag
            self.frames.append((name, tag, multiple))
            assert tag in self.outstanding, f"{name} of tag {tag}, not outstanding: 406"
            if multiple:
                self.outstanding -= {t for t in self.outstanding if t <= tag}
            else:
                self.outstanding.remove(tag)


def test_acks_in_order_between_two_writes_are_one_frame() -> None:
    engine = open_engine()
    messages = _consuming(engine)
    broker = ModelBroker(COUNT)
    for message in messages[:5]:
        engine.ack(message)
    assert engine.outgoing_bytes == 21  # one frame
    broker.receive(engine.data_to_send())
    assert broker.frames == [("basic.ack", 5, True)]
    for message in messages[5:]:
        engine.ack(message)
    broker.receive(engine.data_to_send())
    assert broker.frames[1:] == [("basic.ack", COUNT, True)]
    assert broker.outstanding == set()
    assert engine.coalesced_acks == COUNT - 2


def test_a_gap_keeps_acks_apart_until_it_is_settled() -> None:
    engine = open_engine()
    messages = _consuming(engine)
    broker = ModelBroker(COUNT)
    engine.ack(messages[1])  # tag 2 before tag 1: no multiple may cover 1
    engine.ack(messages[2])
    broker.receive(engine.data_to_send())
    assert broker.frames == [("basic.ack", 2, False), ("basic.ack", 3, False)]
    engine.ack(messages[0])  # 1 settles the prefix: 1, 2, 3 all acked
    engine.ack(messages[3])
    broker.receive(engine.data_to_send())
    assert broker.frames[2:] == [("basic.ack", 4, True)]
    assert broker.outstanding == set(range(5, COUNT + 1))


def test_a_reject_between_acks_is_never_covered_by_a_multiple() -> None:
    engine = open_engine()
    messages = _consuming(engine)
    broker = ModelBroker(COUNT)
    engine.ack(messages[0])
    engine.settle(messages[1], methods.BasicReject(delivery_tag=2, requeue=True))
    engine.ack(messages[2])
    broker.receive(engine.data_to_send())
    assert [name for name, _tag, _multiple in broker.frames] == [
        "basic.ack",
        "basic.reject",
        "basic.ack",
    ]
    assert broker.outstanding == set(range(4, COUNT + 1))


_STEP = st.tuples(
    st.sampled_from(["ack", "ack", "ack", "ack-multiple", "nack", "reject", "write"]),
    st.integers(0, COUNT - 1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=40))
def test_the_broker_settles_exactly_what_the_user_settled(steps: list[tuple[str, int]]) -> None:
    engine = open_engine()
    messages = _consuming(engine)
    broker = ModelBroker(COUNT)
    settled: set[int] = set()
    for action, index in steps:
        if action == "write":
            broker.receive(engine.data_to_send())
            continue
        message = messages[index]
        tag = index + 1
        if action == "ack":
            engine.ack(message)
            settled.add(tag)
        elif action == "ack-multiple":
            engine.ack(message, multiple=True)
            settled.update(range(1, tag + 1))
        elif action == "nack":
            engine.settle(message, methods.BasicNack(delivery_tag=tag, requeue=True))
            settled.add(tag)
        else:
            engine.settle(message, methods.BasicReject(delivery_tag=tag, requeue=True))
            settled.add(tag)
    broker.receive(engine.data_to_send())
    assert broker.outstanding == set(range(1, COUNT + 1)) - settled
