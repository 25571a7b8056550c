"""Every (state, input) pair of the connection and channel tables: allowed ones move the
machine as the table says, every other pair closes the connection with a typed error naming
both (and the matching reply code on the wire)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from puka import Engine, parse_url
from puka.engine.channel_states import TRANSITIONS as CHANNEL_TABLE
from puka.engine.channel_states import ChannelState
from puka.engine.connection_states import TRANSITIONS as CONNECTION_TABLE
from puka.engine.connection_states import ConnectionState
from puka_spec import (
    HEARTBEAT_FRAME,
    BasicProperties,
    FrameReader,
    MethodFrame,
    encode_content,
    encode_header_frame,
    encode_method_frame,
    methods,
)
from puka_spec.exceptions import AMQPError

START = methods.ConnectionStart(
    version_major=0,
    version_minor=9,
    server_properties={"capabilities": {"publisher_confirms": True}},
    mechanisms=b"PLAIN AMQPLAIN",
    locales=b"en_US",
)
CONNECTION_INPUTS: dict[str, bytes] = {
    "start": encode_method_frame(0, START),
    "secure": encode_method_frame(0, methods.ConnectionSecure(challenge=b"x")),
    "tune": encode_method_frame(0, methods.ConnectionTune(2047, 131072, 0)),
    "open-ok": encode_method_frame(0, methods.ConnectionOpenOk()),
    "close": encode_method_frame(0, methods.ConnectionClose(320, "CONNECTION_FORCED", 0, 0)),
    "close-ok": encode_method_frame(0, methods.ConnectionCloseOk()),
    "blocked": encode_method_frame(0, methods.ConnectionBlocked(reason="low on memory")),
    "unblocked": encode_method_frame(0, methods.ConnectionUnblocked()),
    "update-secret-ok": encode_method_frame(0, methods.ConnectionUpdateSecretOk()),
    "heartbeat": HEARTBEAT_FRAME,
    "channel": encode_method_frame(7, methods.ChannelOpenOk()),
}


def sent_methods(engine: Engine) -> list[tuple[int, methods.Method]]:
    """Decode what the engine wrote (after the protocol header)."""
    data = engine.data_to_send()
    if data.startswith(b"AMQP"):
        data = data[8:]
    reader = FrameReader(1 << 20)
    reader.feed(data)
    out = []
    while (frame := reader.read_frame()) is not None:
        if isinstance(frame, MethodFrame):
            out.append((frame.channel, frame.method))
    return out


def engine_in(state: ConnectionState) -> Engine:
    """An engine driven by a scripted broker into `state`."""
    engine = Engine(parse_url("amqp://guest:guest@localhost/"))
    engine.handle_timer(0.0)
    steps: list[Callable[[], object]] = [
        engine.connect,
        lambda: engine.receive_data(CONNECTION_INPUTS["start"]),
        lambda: engine.receive_data(CONNECTION_INPUTS["tune"]),
        lambda: engine.receive_data(CONNECTION_INPUTS["open-ok"]),
        engine.close,
    ]
    order = [
        ConnectionState.AWAIT_START,
        ConnectionState.AWAIT_TUNE,
        ConnectionState.AWAIT_OPEN_OK,
        ConnectionState.OPEN,
        ConnectionState.CLOSING,
    ]
    for step, reached in zip(steps, order, strict=True):
        step()
        assert engine.state is reached
        if reached is state:
            break
    engine.data_to_send()
    return engine


CONNECTION_STATES = [
    ConnectionState.AWAIT_START,
    ConnectionState.AWAIT_TUNE,
    ConnectionState.AWAIT_OPEN_OK,
    ConnectionState.OPEN,
    ConnectionState.CLOSING,
]


@pytest.mark.parametrize("state", CONNECTION_STATES, ids=lambda s: s.value)
@pytest.mark.parametrize("kind", list(CONNECTION_INPUTS))
def test_connection_table(state: ConnectionState, kind: str) -> None:
    engine = engine_in(state)
    pending = (
        engine.rpc(methods.QueueDeclare(queue="q"))
        if state is not ConnectionState.CLOSING
        else None
    )
    engine.data_to_send()
    engine.receive_data(CONNECTION_INPUTS[kind])
    step = CONNECTION_TABLE.get((state, kind))
    if step is not None:
        action, next_state = step
        if kind == "channel" and state is ConnectionState.OPEN:
            # a frame for channel 7, which this engine never opened: 504 CHANNEL_ERROR
            assert engine.closed
            assert engine.error is not None and engine.error.reply_code == 504  # type: ignore[attr-defined]
            return
        assert engine.state is next_state, action
        return
    assert engine.closed, f"{state.value} × {kind} was accepted"
    error = engine.error
    assert isinstance(error, AMQPError)
    assert error.reply_code in (503, 504, 505)
    if kind != "channel":
        assert state.value in str(error) or "channel 0" in str(error)
    sent = sent_methods(engine)
    assert sent and isinstance(sent[-1][1], methods.ConnectionClose)
    assert sent[-1][1].reply_code == error.reply_code
    if pending is not None:
        result = engine.promises.take(pending.number)
        assert result is not None and result.exception is error


def test_every_connection_state_is_covered() -> None:
    states_in_table = {state for state, _ in CONNECTION_TABLE}
    assert states_in_table == set(CONNECTION_STATES)
    assert {kind for _, kind in CONNECTION_TABLE} == set(CONNECTION_INPUTS)


# --- channels ----------------------------------------------------------------------------

DELIVER = methods.BasicDeliver(consumer_tag="c", delivery_tag=1, exchange="", routing_key="q")
CHANNEL_INPUTS: dict[str, bytes] = {
    "open-ok": encode_method_frame(1, methods.ChannelOpenOk()),
    "close": encode_method_frame(1, methods.ChannelClose(404, "NOT_FOUND - no queue 'q'", 50, 10)),
    "close-ok": encode_method_frame(1, methods.ChannelCloseOk()),
    "flow": encode_method_frame(1, methods.ChannelFlow(active=True)),
    "method": encode_method_frame(1, methods.QueueDeclareOk(queue="q")),
    "header": encode_header_frame(1, 60, 5, BasicProperties()),
    "body": struct.pack(">BHI", 3, 1, 5) + b"hello\xce",
    # a content method, its header and its body in one read: the reader hands them over as one
    "content": encode_content(1, DELIVER, BasicProperties(), b"hello", 4096),
}


def channel_in(state: ChannelState) -> tuple[Engine, int]:
    """An open engine whose channel 1 is in `state`, owned by a pending queue.declare."""
    engine = engine_in(ConnectionState.OPEN)
    promise = engine.rpc(methods.QueueDeclare(queue="q"))
    channel = engine.channels.by_number[1]
    assert channel.state is ChannelState.OPENING
    if state is not ChannelState.OPENING:
        engine.receive_data(CHANNEL_INPUTS["open-ok"])
    if state is ChannelState.CLOSING:
        channel.close()
    engine.data_to_send()
    assert channel.state is state
    return engine, promise.number


@pytest.mark.parametrize(
    "state", [ChannelState.OPENING, ChannelState.OPEN, ChannelState.CLOSING], ids=lambda s: s.value
)
@pytest.mark.parametrize("kind", list(CHANNEL_INPUTS))
def test_channel_table(state: ChannelState, kind: str) -> None:
    engine, promise = channel_in(state)
    channel = engine.channels.by_number[1]
    engine.receive_data(CHANNEL_INPUTS[kind])
    step = CHANNEL_TABLE.get((state, kind))
    if step is None:
        assert engine.closed, f"channel {state.value} × {kind} was accepted"
        error = engine.error
        assert isinstance(error, AMQPError)
        assert error.reply_code == 505
        assert state.value in str(error)
        assert kind in str(error)
        return
    if (state, kind) in {(ChannelState.OPEN, "header"), (ChannelState.OPEN, "body")}:
        # allowed by the table, but content without its method is refused by the channel
        assert engine.closed
        assert engine.error.reply_code == 505  # type: ignore[union-attr]
        return
    if (state, kind) == (ChannelState.OPEN, "content"):
        # allowed by the table and handed to the channel's owner: a queue.declare does not
        # expect a delivery, as it would not as three frames either
        assert engine.closed
        assert "basic.deliver on channel 1 was not expected" in str(engine.error)
        return
    assert not engine.closed, engine.error
    assert channel.state is step[1]
    if kind == "close" and state is not ChannelState.CLOSING:
        result = engine.promises.take(promise)
        assert result is not None and result.is_error and result["reply_code"] == 404
        assert sent_methods(engine)[-1][1] == methods.ChannelCloseOk()
    if (state, kind) == (ChannelState.OPEN, "method"):
        result = engine.promises.take(promise)
        assert result is not None and result["queue"] == "q"
    if kind == "flow" and state is ChannelState.OPEN:
        assert sent_methods(engine)[-1][1] == methods.ChannelFlowOk(active=True)


def test_channel_numbers_are_recycled_after_a_close() -> None:
    engine, _promise = channel_in(ChannelState.OPEN)
    engine.receive_data(CHANNEL_INPUTS["close"])
    assert 1 not in engine.channels.by_number
    again = engine.rpc(methods.QueueDeclare(queue="q2"))
    assert engine.channels.by_number[1].owner is again.op


def test_content_is_assembled_and_limited() -> None:
    engine = engine_in(ConnectionState.OPEN)
    consume = engine.consume([methods.BasicConsume(queue="q")], 0)
    engine.receive_data(CHANNEL_INPUTS["open-ok"])
    engine.receive_data(encode_method_frame(1, methods.BasicConsumeOk(consumer_tag="c")))
    body = b"x" * 10
    stream = (
        encode_method_frame(1, DELIVER)
        + encode_header_frame(1, 60, len(body), BasicProperties(message_id="m"))
        + struct.pack(">BHI", 3, 1, 4)
        + body[:4]
        + b"\xce"
        + struct.pack(">BHI", 3, 1, 6)
        + body[4:]
        + b"\xce"
    )
    for i in range(len(stream)):
        engine.receive_data(stream[i : i + 1])
    result = engine.promises.take(consume.number)
    assert result is not None
    assert result["body"] == body
    assert result["headers"] == {"message_id": "m"}
    # a body larger than its header says is a frame error (501)
    engine.receive_data(
        encode_method_frame(1, DELIVER)
        + encode_header_frame(1, 60, 3, BasicProperties())
        + struct.pack(">BHI", 3, 1, 4)
        + b"abcd\xce"
    )
    assert engine.closed and engine.error.reply_code == 501  # type: ignore[union-attr]


def consuming_engine(**kwargs: Any) -> tuple[Engine, int]:
    """An open engine with a consume on channel 1 (consume-ok received): (engine, promise)."""
    engine = Engine(parse_url("amqp:///"), **kwargs)
    engine.handle_timer(0.0)
    engine.connect()
    for kind in ("start", "tune", "open-ok"):
        engine.receive_data(CONNECTION_INPUTS[kind])
    consume = engine.consume([methods.BasicConsume(queue="q")], 0)
    engine.receive_data(CHANNEL_INPUTS["open-ok"])
    engine.receive_data(encode_method_frame(1, methods.BasicConsumeOk(consumer_tag="c")))
    return engine, consume.number


def test_content_read_in_one_piece_is_delivered_as_in_three() -> None:
    engine, consume = consuming_engine()
    props = BasicProperties(message_id="m", headers={"k": 1})
    one = encode_content(1, DELIVER, props, b"abc", 4096)
    empty = encode_content(1, DELIVER, props, b"", 4096)  # no body frame at all
    engine.receive_data(one + empty + one)  # all whole in one read: the assembled path
    engine.receive_data(one[:20])  # split: frame by frame
    engine.receive_data(one[20:])
    bodies = []
    while (result := engine.promises.take(consume)) is not None:
        assert result["headers"] == {"message_id": "m", "k": 1}
        bodies.append(result["body"])
    assert bodies == [b"abc", b"", b"abc", b"abc"]
    assert not engine.closed


def test_the_engine_fast_path_for_whole_content_is_the_tables_step() -> None:
    # Engine._channel_frame calls Channel.on_content directly for an open channel
    assert CHANNEL_TABLE[(ChannelState.OPEN, "content")] == ("on_content", ChannelState.OPEN)


def test_a_body_split_inside_its_one_frame_is_delivered_as_bytes() -> None:
    engine, consume = consuming_engine()
    one = encode_content(1, DELIVER, BasicProperties(), b"abcdef", 4096)
    engine.receive_data(one[:-4])  # the body frame's header and two bytes of its payload
    engine.receive_data(one[-4:])
    result = engine.promises.take(consume)
    assert result is not None and type(result["body"]) is bytes and result["body"] == b"abcdef"


def test_assembled_content_larger_than_the_limit_is_refused() -> None:
    engine, _consume = consuming_engine(max_message_size=2)
    engine.receive_data(encode_content(1, DELIVER, BasicProperties(), b"abc", 4096))
    assert engine.closed
    assert engine.error.reply_code == 501  # type: ignore[union-attr]
    assert "exceeds the limit" in str(engine.error)


def test_content_method_while_content_is_pending_is_refused() -> None:
    engine, _consume = consuming_engine()
    header_only = encode_method_frame(1, DELIVER) + encode_header_frame(1, 60, 5, BasicProperties())
    engine.receive_data(header_only + encode_content(1, DELIVER, BasicProperties(), b"x", 4096))
    assert engine.closed
    assert engine.error.reply_code == 505  # type: ignore[union-attr]
    assert "incomplete" in str(engine.error)


def test_message_larger_than_the_limit_is_refused_before_its_body() -> None:
    engine = Engine(parse_url("amqp:///"), max_message_size=1000)
    engine.handle_timer(0.0)
    engine.connect()
    for kind in ("start", "tune", "open-ok"):
        engine.receive_data(CONNECTION_INPUTS[kind])
    engine.consume([methods.BasicConsume(queue="q")], 0)
    engine.receive_data(CHANNEL_INPUTS["open-ok"])
    engine.receive_data(encode_method_frame(1, methods.BasicConsumeOk(consumer_tag="c")))
    engine.receive_data(
        encode_method_frame(1, DELIVER) + encode_header_frame(1, 60, 2**40, BasicProperties())
    )
    assert engine.closed
    assert engine.error.reply_code == 501  # type: ignore[union-attr]
    assert "exceeds the limit" in str(engine.error)
