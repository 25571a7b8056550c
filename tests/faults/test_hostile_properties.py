"""Issue 7, F20: codec and parser properties, and state machines for channels and confirms.

What tests/spec already covers is not repeated here (properties and tables round trips, one
message split anywhere, random bytes into a fresh `FrameReader`, table totality). Added:

* every method, with Hypothesis-drawn arguments, round-trips through a frame;
* a stream of many methods and messages at any negotiated frame_max reads the same for every
  chunking of it;
* totality: method payloads behind every real (class, method) id, content headers, a reader at
  any frame_max after valid frames, and the engine itself fed arbitrary server bytes raise
  nothing but puka_spec's typed errors (never IndexError, struct.error, KeyError,
  UnicodeDecodeError, OverflowError or OSError);
* `hypothesis.stateful` machines for publisher-confirm bookkeeping (acks and nacks, single and
  multiple, in any order, stray ones, returns) and for the channel pool (opens, replies, broker
  closes, number reuse, channel_max) against a model.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from puka import Engine, NoRoute, NotFound, PublishNacked, parse_url
from puka.errors import PukaError
from puka_spec import (
    HEARTBEAT_FRAME,
    AMQPError,
    BasicProperties,
    FrameReader,
    MethodFrame,
    decode_header,
    decode_method,
    encode_content,
    encode_header_frame,
    encode_method_frame,
    methods,
)

from tests.spec.strategies import field_tables, properties, short_strings

pytestmark = pytest.mark.timeout(120)

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_FIELD = {
    "bit": st.booleans(),
    "octet": st.integers(0, 0xFF),
    "short": st.integers(0, 0xFFFF),
    "long": st.integers(0, 0xFFFFFFFF),
    "longlong": st.integers(0, 2**64 - 1),
    "timestamp": st.integers(0, 2**64 - 1),
    "shortstr": short_strings,
    "longstr": st.binary(max_size=64),
    "table": field_tables,
}
ALL_METHODS = list(methods.METHODS.values())


@st.composite
def any_method(draw: st.DrawFn) -> methods.Method:
    """Any method class, with arguments drawn for each field's AMQP type."""
    cls = draw(st.sampled_from(ALL_METHODS))
    return cls(**{name: draw(_FIELD[kind]) for name, kind in cls.FIELDS})


@EXAMPLES
@given(any_method(), st.integers(0, 0xFFFF))
def test_every_method_round_trips_through_a_frame(method: methods.Method, channel: int) -> None:
    payload = method.encode()
    assert decode_method(payload) == method
    reader = FrameReader(len(payload) + 8)  # the smallest frame_max it fits in
    reader.feed(encode_method_frame(channel, method))
    frame = reader.read_frame()
    assert isinstance(frame, MethodFrame)
    assert (frame.channel, frame.method) == (channel, method)
    assert reader.read_frame() is None and reader.buffered == 0


_ITEM = st.one_of(
    any_method().map(lambda m: ("method", m)),
    st.tuples(properties, st.binary(max_size=3000)).map(lambda pb: ("message", pb)),
    st.just(("heartbeat", None)),
)


def _stream(items: list[tuple[str, Any]], frame_max: int) -> bytes:
    parts = []
    for n, (kind, value) in enumerate(items):
        if kind == "method":
            parts.append(encode_method_frame(n % 7, value))
        elif kind == "message":
            props, body = value
            deliver = methods.BasicDeliver("c", n, False, "e", "r")
            parts.append(encode_content(1 + n % 5, deliver, props, body, frame_max))
        else:
            parts.append(HEARTBEAT_FRAME)
    return b"".join(parts)


def _read_all(reader: FrameReader) -> list[str]:
    out = []
    while (frame := reader.read_frame()) is not None:
        out.append(repr(frame))
    return out


@EXAMPLES
@given(
    st.lists(_ITEM, min_size=1, max_size=8),
    st.integers(4096, 70000),
    st.lists(st.integers(1, 700), max_size=60),
)
def test_every_chunking_of_a_stream_reads_the_same(
    items: list[tuple[str, Any]], frame_max: int, cuts: list[int]
) -> None:
    # frames never exceed the negotiated frame_max: properties and tables may be large, so the
    # stream's own largest frame raises it when needed
    stream = _stream(items, frame_max)
    biggest = frame_max
    probe = FrameReader(2**32)
    probe.feed(stream)
    while probe.read_frame() is not None:
        pass
    pos = 0
    while pos < len(stream):
        (size,) = struct.unpack_from(">I", stream, pos + 3)
        biggest = max(biggest, size + 8)
        pos += size + 8
    whole = FrameReader(biggest)
    whole.feed(stream)
    expected = _read_all(whole)
    assert len(expected) >= len(items)
    reader = FrameReader(biggest)
    got: list[str] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[pos : pos + cut])
        pos += cut
        got.extend(_read_all(reader))
        if pos >= len(stream):
            break
    assert got == expected
    assert reader.buffered == 0


# --- totality ----------------------------------------------------------------------------------


@EXAMPLES
@given(st.sampled_from(ALL_METHODS), st.binary(max_size=120))
def test_any_arguments_behind_a_real_method_id_decode_or_raise_typed(
    cls: type[methods.Method], tail: bytes
) -> None:
    payload = struct.pack(">HH", cls.CLASS_ID, cls.METHOD_ID) + tail
    try:
        method = decode_method(payload)
    except AMQPError:
        return
    assert type(method) is cls


@EXAMPLES
@given(st.integers(0, 0xFFFF), st.integers(0, 2**64 - 1), st.binary(max_size=120))
def test_any_content_header_decodes_or_raises_typed(
    flags: int, body_size: int, tail: bytes
) -> None:
    payload = struct.pack(">HHQH", 60, 0, body_size, flags) + tail
    try:
        class_id, size, props = decode_header(payload)
    except AMQPError:
        return
    assert (class_id, size) == (60, body_size)
    assert isinstance(props, BasicProperties)


@EXAMPLES
@given(
    st.lists(any_method(), max_size=3),
    st.binary(max_size=300),
    st.integers(4096, 2**32 - 1),
    st.integers(1, 64),
)
def test_garbage_after_valid_frames_raises_only_typed_errors(
    valid: list[methods.Method], garbage: bytes, frame_max: int, chunk: int
) -> None:
    prefix = b"".join(encode_method_frame(1, m) for m in valid)
    stream = prefix + garbage
    reader = FrameReader(frame_max)
    frames: list[str] = []
    try:
        for start in range(0, len(stream), chunk):
            reader.feed(stream[start : start + chunk])
            while (frame := reader.read_frame()) is not None:
                frames.append(repr(frame))
    except AMQPError:
        pass
    assert frames[: len(valid)] == [repr(MethodFrame(1, m)) for m in valid]


START = methods.ConnectionStart(0, 9, {"capabilities": {"publisher_confirms": True}}, b"PLAIN", b"")


def open_engine(channel_max: int = 2047, **kwargs: Any) -> Engine:
    """An engine through a scripted handshake, open, its output drained."""
    engine = Engine(parse_url("amqp://guest:guest@localhost/"), **kwargs)
    engine.handle_timer(0.0)
    engine.connect()
    engine.receive_data(encode_method_frame(0, START))
    engine.receive_data(encode_method_frame(0, methods.ConnectionTune(channel_max, 8192, 0)))
    engine.receive_data(encode_method_frame(0, methods.ConnectionOpenOk()))
    assert engine.state.value == "open"
    engine.data_to_send()
    return engine


_SERVER_FRAME = st.one_of(
    any_method().map(lambda m: encode_method_frame(1, m)),
    st.tuples(st.integers(0, 4), st.binary(max_size=40)).map(
        lambda cb: struct.pack(">BHI", 3, cb[0], len(cb[1])) + cb[1] + b"\xce"
    ),
    properties.map(lambda p: encode_header_frame(1, 60, 3, p)),
    st.binary(max_size=24),
)


@EXAMPLES
@given(st.lists(_SERVER_FRAME, max_size=8), st.integers(1, 64))
def test_engine_fed_any_server_bytes_never_raises(frames: list[bytes], chunk: int) -> None:
    engine = open_engine(max_message_size=1 << 16)
    pending = [
        engine.rpc(methods.QueueDeclare(queue="q")),
        engine.consume([methods.BasicConsume(queue="q")], 0),
        engine.publish("", "q", False, None, b"x"),
    ]
    engine.receive_data(encode_method_frame(1, methods.ChannelOpenOk()))
    stream = b"".join(frames)
    for start in range(0, len(stream), chunk):
        engine.receive_data(stream[start : start + chunk])  # must never raise
        engine.data_to_send()
    for promise in pending:
        for result in promise.results:
            if result.is_error:
                assert isinstance(result.exception, (AMQPError, PukaError)), result.exception
    if engine.closed:
        assert isinstance(engine.error, (AMQPError, PukaError)), engine.error
        assert all(p.done for p in pending)


# --- state machines ------------------------------------------------------------------------


def _sent(engine: Engine) -> list[tuple[int, methods.Method]]:
    reader = FrameReader(1 << 20)
    reader.feed(engine.data_to_send())
    out = []
    while (frame := reader.read_frame()) is not None:
        if isinstance(frame, MethodFrame):
            out.append((frame.channel, frame.method))
    return out


def _number(promise: Any) -> int:
    """A promise's number, whether it is an object or a bare number."""
    return promise if isinstance(promise, int) else int(promise.number)


class ConfirmMachine(RuleBasedStateMachine):
    """Publishes and the broker's acks, nacks and returns, in any order, against a model.

    Model: each tag is pending, acked, nacked or returned; stray confirms (tags never published
    or already settled, multiple ranges with nothing pending) are ignored and counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.engine = open_engine()
        self.promises: dict[int, Any] = {}
        self.status: dict[int, str] = {}
        self.keys: dict[int, str | None] = {}  # routing key of each mandatory publish
        self.returned: set[int] = set()
        self.last_returned = 0
        self.unknown = 0
        self.next_tag = 1
        self.channel = 0

    def _feed(self, method: methods.Method) -> None:
        self.engine.receive_data(encode_method_frame(self.channel, method))

    @rule(mandatory=st.booleans(), key=st.sampled_from(["a", "b"]), bare=st.booleans())
    def publish(self, mandatory: bool, key: str, bare: bool) -> None:
        promise: Any
        if bare:  # a number and no object (but the first publish, which opens the channel)
            promise = self.engine.publish("", key, mandatory, None, b"m", bare=True)
        else:
            promise = self.engine.publish("", key, mandatory, None, b"m")
        if not self.channel:
            sent = _sent(self.engine)
            assert isinstance(sent[1][1], methods.ConfirmSelect)
            self.channel = sent[0][0]
            self._feed(methods.ChannelOpenOk())
            self._feed(methods.ConfirmSelectOk())
        self.engine.data_to_send()
        tag = self.next_tag
        self.next_tag += 1
        self.promises[tag] = promise
        self.status[tag] = "pending"
        self.keys[tag] = key if mandatory else None

    def _pending(self) -> list[int]:
        return [t for t, s in self.status.items() if s == "pending"]

    def _settle(self, tag: int, multiple: bool, outcome: str) -> None:
        pending = self._pending()
        if multiple:
            hit = [t for t in pending if t <= tag]
            if not hit or tag >= self.next_tag:  # settled nothing, or names unpublished tags
                self.unknown += 1
        else:
            hit = [tag] if tag in pending else []
            if not hit:
                self.unknown += 1
        for t in hit:
            self.status[t] = "returned" if t in self.returned and outcome == "acked" else outcome

    @precondition(lambda self: self.channel)
    @rule(data=st.data(), multiple=st.booleans(), nack=st.booleans())
    def confirm(self, data: st.DataObject, multiple: bool, nack: bool) -> None:
        tag = data.draw(st.integers(0, self.next_tag + 2), label="tag")
        if nack:
            self._feed(methods.BasicNack(tag, multiple, False))
        else:
            self._feed(methods.BasicAck(tag, multiple))
        self._settle(tag, multiple, "nacked" if nack else "acked")

    def _returnable(self) -> list[int]:
        """Tags the broker may return next: after the last returned one, in publish order, and
        (the pairing contract: same exchange and routing key go by wire order) the oldest
        unsettled one of its routing key."""
        candidates = [t for t in self._pending() if self.keys[t] and t > self.last_returned]
        return [
            t for t in candidates if min(c for c in candidates if self.keys[c] == self.keys[t]) == t
        ]

    @precondition(lambda self: self._returnable())
    @rule(data=st.data())
    def return_then_ack(self, data: st.DataObject) -> None:
        """As RabbitMQ does: basic.return of an unroutable mandatory message, then its ack.

        The broker routes publishes in order, so returns come in publish order: once a message
        is returned, the mandatory ones published before it were routed (their acks may still
        come in any order).
        """
        tag = data.draw(st.sampled_from(self._returnable()), label="returned tag")
        key = self.keys[tag]
        self.last_returned = tag
        content = encode_content(
            self.channel,
            methods.BasicReturn(312, "NO_ROUTE", "", str(key)),
            BasicProperties(),
            b"m",
            8192,
        )
        self.engine.receive_data(content)
        self.returned.add(tag)
        self._feed(methods.BasicAck(tag, False))
        self._settle(tag, False, "acked")

    @invariant()
    def matches_the_model(self) -> None:
        engine = self.engine
        assert not engine.closed, engine.error
        assert engine.promises.pending() == len(self._pending())
        for tag, status in self.status.items():
            promise = self.promises[tag]
            result = engine.promises.peek(_number(promise))
            if status == "pending":
                assert result is None, tag
                assert isinstance(promise, int) or not promise.done, tag
                continue
            assert isinstance(promise, int) or promise.done, tag
            assert result is not None, tag
            if status == "acked":
                assert not result.is_error, (tag, result)
            elif status == "nacked":
                assert isinstance(result.exception, PublishNacked), (tag, result)
            else:
                assert isinstance(result.exception, NoRoute), (tag, result)
                assert result["body"] == b"m"
        publisher = engine.publisher
        if publisher is not None:
            assert publisher.unknown_confirms == self.unknown
            unconfirmed = publisher.unconfirmed()
            assert set(unconfirmed) == set(self._pending())
            assert publisher.in_flight == len(unconfirmed)
            for tag in self._pending():
                assert _number(unconfirmed[tag][0]) == _number(self.promises[tag])


class ChannelMachine(RuleBasedStateMachine):
    """queue.declares on pooled channels, the broker answering or closing channels in any order.

    Model: which channel each operation was given; a channel is opening, open (then its
    operation's reply or a channel.close may come) or free. Every reply must reach the operation
    that owns the channel it came on, no channel number above channel_max is ever used, and a
    broker-closed channel's number is reused.
    """

    CHANNEL_MAX = 4

    def __init__(self) -> None:
        super().__init__()
        self.engine = open_engine(channel_max=self.CHANNEL_MAX)
        self.count = 0
        self.promises: dict[str, Any] = {}
        self.channel_of: dict[str, int] = {}
        self.opening: set[int] = set()
        self.outcome: dict[str, str] = {}

    def _absorb(self) -> None:
        for channel, method in _sent(self.engine):
            assert 1 <= channel <= self.CHANNEL_MAX, channel
            if isinstance(method, methods.ChannelOpen):
                assert channel not in self.channel_of.values(), f"channel {channel} reopened"
                self.opening.add(channel)
            elif isinstance(method, methods.QueueDeclare):
                assert method.queue not in self.channel_of
                self.channel_of[method.queue] = channel

    @rule()
    def declare(self) -> None:
        self.count += 1
        name = f"q{self.count}"
        self.promises[name] = self.engine.rpc(methods.QueueDeclare(queue=name))
        self.outcome[name] = "pending"
        self._absorb()

    @precondition(lambda self: self.opening)
    @rule(data=st.data())
    def open_ok(self, data: st.DataObject) -> None:
        channel = data.draw(st.sampled_from(sorted(self.opening)))
        self.opening.discard(channel)
        self.engine.receive_data(encode_method_frame(channel, methods.ChannelOpenOk()))
        self._absorb()

    def _ready(self) -> list[str]:
        """The declares whose channel is open: the broker may answer them, in any order."""
        return sorted(n for n, c in self.channel_of.items() if c not in self.opening)

    @precondition(lambda self: self._ready())
    @rule(data=st.data(), close=st.booleans())
    def answer(self, data: st.DataObject, close: bool) -> None:
        name = data.draw(st.sampled_from(self._ready()), label="answered")
        channel = self.channel_of[name]
        if close:
            reply: methods.Method = methods.ChannelClose(
                404, f"NOT_FOUND - no queue '{name}'", 50, 10
            )
        else:
            reply = methods.QueueDeclareOk(name, 0, 0)
        self.engine.receive_data(encode_method_frame(channel, reply))
        sent = _sent(self.engine)
        del self.channel_of[name]
        if close:
            assert (channel, methods.ChannelCloseOk()) in sent
            self.outcome[name] = "closed"
        else:
            self.outcome[name] = "ok"
        for ch, method in sent:  # the freed channel may go to a waiting declare at once
            if isinstance(method, methods.ChannelOpen):
                self.opening.add(ch)
            elif isinstance(method, methods.QueueDeclare):
                self.channel_of[method.queue] = ch

    @invariant()
    def matches_the_model(self) -> None:
        engine = self.engine
        assert not engine.closed, engine.error
        assert len(engine.channels.by_number) <= self.CHANNEL_MAX
        assert max(engine.channels.by_number, default=1) <= self.CHANNEL_MAX
        busy = [c for n, c in self.channel_of.items() if self.outcome[n] == "pending"]
        assert len(busy) == len(set(busy)), "two operations on one channel"
        for name, outcome in self.outcome.items():
            promise = self.promises[name]
            if outcome == "pending":
                assert not promise.done, name
            elif outcome == "ok":
                result = engine.promises.peek(promise.number)
                assert result is not None and result["queue"] == name
            else:
                result = engine.promises.peek(promise.number)
                assert result is not None and isinstance(result.exception, NotFound)
                assert name in str(result.exception)


TestConfirmMachine = ConfirmMachine.TestCase
TestConfirmMachine.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
TestChannelMachine = ChannelMachine.TestCase
TestChannelMachine.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)


def _confirming_engine() -> tuple[Engine, int]:
    engine = open_engine()
    engine.publish("", "warmup", False, None, b"w")
    channel = _sent(engine)[0][0]
    for method in (methods.ChannelOpenOk(), methods.ConfirmSelectOk(), methods.BasicAck(1, False)):
        engine.receive_data(encode_method_frame(channel, method))
    return engine, channel


def test_a_return_is_not_paired_with_a_publish_acked_already() -> None:
    """Found by ConfirmMachine: acks come in any order, returns in publish order."""
    engine, channel = _confirming_engine()
    first = engine.publish("", "a", True, None, b"1")  # tag 2: routed, its ack comes late
    second = engine.publish("", "b", True, None, b"2")  # tag 3: routed, acked at once
    engine.receive_data(encode_method_frame(channel, methods.BasicAck(3, False)))
    third = engine.publish("", "b", True, None, b"3")  # tag 4: unroutable
    engine.receive_data(
        encode_content(channel, methods.BasicReturn(312, "NO_ROUTE", "", "b"), b"\0\0", b"3", 8192)
        + encode_method_frame(channel, methods.BasicAck(4, False))
        + encode_method_frame(channel, methods.BasicAck(2, False))
    )
    for promise in (first, second):
        result = engine.promises.peek(promise.number)
        assert promise.done and result is not None and not result.is_error
    returned = engine.promises.peek(third.number)
    assert returned is not None and isinstance(returned.exception, NoRoute)
    assert returned["body"] == b"3"


def test_a_multiple_ack_over_settled_tags_is_counted() -> None:
    """Found by ConfirmMachine: a multiple ack that settles nothing is a stray confirm."""
    engine, channel = _confirming_engine()
    promises = [engine.publish("", "q", False, None, b"x") for _ in range(3)]  # tags 2..4
    engine.receive_data(encode_method_frame(channel, methods.BasicAck(4, False)))
    engine.receive_data(encode_method_frame(channel, methods.BasicAck(3, True)))
    assert engine.publisher is not None
    assert engine.publisher.unknown_confirms == 0
    engine.receive_data(encode_method_frame(channel, methods.BasicAck(4, True)))
    assert engine.publisher.unknown_confirms == 1
    results = [engine.promises.peek(p.number) for p in promises]
    assert all(p.done for p in promises)
    assert all(r is not None and not r.is_error for r in results), results
