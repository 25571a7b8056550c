"""Every (state, input) pair of the connection and channel tables: allowed ones move the
machine as the table says, every other remote pair closes the connection with a typed error
naming both (and the matching reply code on the wire); local inputs (ours) are rows too, and
the tables are the only thing that changes a state."""

from __future__ import annotations

import ast
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from puka import Engine, Recovery, parse_url
from puka.engine import channel_states, connection_states
from puka.engine.channel_states import TRANSITIONS as CHANNEL_TABLE
from puka.engine.channel_states import ChannelState
from puka.engine.connection_states import RECOVERY_TRANSITIONS as RECOVERY_TABLE
from puka.engine.connection_states import TRANSITIONS as CONNECTION_TABLE
from puka.engine.connection_states import ConnectionState
from puka.errors import ConnectFailed, ConnectionLost
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
}
CHANNEL_7 = encode_method_frame(7, methods.ChannelOpenOk())  # a channel never opened


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
        assert engine.state is next_state, action
        return
    assert engine.closed, f"{state.value} × {kind} was accepted"
    error = engine.error
    assert isinstance(error, AMQPError)
    assert error.reply_code in (503, 504, 505)
    assert state.value in str(error) or "channel 0" in str(error)
    sent = sent_methods(engine)
    assert sent and isinstance(sent[-1][1], methods.ConnectionClose)
    assert sent[-1][1].reply_code == error.reply_code
    if pending is not None:
        result = engine.promises.take(pending.number)
        assert result is not None and result.exception is error


def test_every_connection_state_is_covered() -> None:
    remote = {(state, kind) for state, kind in CONNECTION_TABLE if kind in CONNECTION_INPUTS}
    assert {state for state, _ in remote} == set(CONNECTION_STATES)
    assert {kind for _, kind in remote} == set(CONNECTION_INPUTS)
    # the other inputs of the tables are ours (forced-close: a close recovery reconnects after)
    assert {*CONNECTION_INPUTS, "forced-close"} == connection_states.REMOTE_INPUTS
    for table in (CONNECTION_TABLE, RECOVERY_TABLE):
        assert {kind for _, kind in table} <= (
            connection_states.REMOTE_INPUTS | connection_states.LOCAL_INPUTS
        )
    assert {kind for _, kind in RECOVERY_TABLE} == (
        connection_states.REMOTE_INPUTS | connection_states.LOCAL_INPUTS
    )


@pytest.mark.parametrize("state", CONNECTION_STATES, ids=lambda s: s.value)
def test_a_frame_on_another_channel(state: ConnectionState) -> None:
    """Channel frames are the channels' own, not a connection input: before the connection
    is open they are refused (504), once open a frame for a channel that is not open is
    refused (504), and while closing it is dropped (a channel we let go of, answering late)."""
    engine = engine_in(state)
    engine.receive_data(CHANNEL_7)
    if state is ConnectionState.CLOSING:
        assert engine.state is ConnectionState.CLOSING
        return
    assert engine.closed
    error = engine.error
    assert isinstance(error, AMQPError) and error.reply_code == 504
    if state is ConnectionState.OPEN:
        assert "channel 7, which is not open" in str(error)
    else:
        assert "before the connection is open" in str(error)
    sent = sent_methods(engine)
    assert isinstance(sent[-1][1], methods.ConnectionClose) and sent[-1][1].reply_code == 504


# --- recovery and the local inputs ----------------------------------------------------------

FORCED = encode_method_frame(0, methods.ConnectionClose(320, "CONNECTION_FORCED", 0, 0))
REFUSED = encode_method_frame(0, methods.ConnectionClose(403, "ACCESS_REFUSED", 0, 0))


def recovering_engine_in(state: ConnectionState) -> Engine:
    """An engine with recovery, driven into `state` (the recovery states included)."""
    if state not in (
        ConnectionState.RECOVERING,
        ConnectionState.RECOVERY_AWAIT_START,
        ConnectionState.RECOVERY_AWAIT_TUNE,
        ConnectionState.RECOVERY_AWAIT_OPEN_OK,
    ):
        engine = engine_in(state)
        engine.recovery = Recovery(initial_delay=1.0, jitter=0.0)
        return engine
    engine = engine_in(ConnectionState.OPEN)
    engine.recovery = Recovery(initial_delay=1.0, jitter=0.0)
    engine.connection_lost(None, 10.0)
    assert engine.state is ConnectionState.RECOVERING
    steps: list[Callable[[], object]] = [
        lambda: engine.transport_ready(11.0),
        lambda: engine.receive_data(CONNECTION_INPUTS["start"], 11.0),
        lambda: engine.receive_data(CONNECTION_INPUTS["tune"], 11.0),
    ]
    order = [
        ConnectionState.RECOVERY_AWAIT_START,
        ConnectionState.RECOVERY_AWAIT_TUNE,
        ConnectionState.RECOVERY_AWAIT_OPEN_OK,
    ]
    engine.handle_timer(11.0)
    assert engine.transport_wanted
    for step, reached in zip(steps, order, strict=True):
        if engine.state is state:
            break
        step()
        assert engine.state is reached
    engine.data_to_send()
    return engine


def test_recovery_goes_through_its_states_and_back_to_open() -> None:
    engine = recovering_engine_in(ConnectionState.RECOVERY_AWAIT_OPEN_OK)
    engine.receive_data(CONNECTION_INPUTS["open-ok"], 11.0)
    assert engine.state is ConnectionState.OPEN  # the topology replay runs from here
    assert engine.is_open and not engine.recovering and engine.started


@pytest.mark.parametrize(
    ("state", "frame", "after"),
    [
        (ConnectionState.AWAIT_TUNE, FORCED, ConnectionState.CLOSED),  # never open: no recovery
        (ConnectionState.AWAIT_OPEN_OK, FORCED, ConnectionState.CLOSED),
        (ConnectionState.OPEN, FORCED, ConnectionState.RECOVERING),
        (ConnectionState.OPEN, REFUSED, ConnectionState.CLOSED),  # not a close to recover from
        (ConnectionState.CLOSING, FORCED, ConnectionState.CLOSED),  # we asked to close
        (ConnectionState.RECOVERY_AWAIT_TUNE, FORCED, ConnectionState.RECOVERING),
        (ConnectionState.RECOVERY_AWAIT_OPEN_OK, FORCED, ConnectionState.RECOVERING),
        (ConnectionState.RECOVERY_AWAIT_OPEN_OK, REFUSED, ConnectionState.CLOSED),
    ],
    ids=lambda value: getattr(value, "value", None) or ("forced" if value is FORCED else "403"),
)
def test_a_close_by_the_broker_with_recovery(
    state: ConnectionState, frame: bytes, after: ConnectionState
) -> None:
    engine = recovering_engine_in(state)
    engine.receive_data(frame, 11.5)
    kind = "forced-close" if frame is FORCED else "close"
    assert RECOVERY_TABLE[(state, kind)][1] is after
    assert engine.state is after


@pytest.mark.parametrize(
    "state",
    [
        ConnectionState.RECOVERY_AWAIT_START,
        ConnectionState.RECOVERY_AWAIT_TUNE,
        ConnectionState.RECOVERY_AWAIT_OPEN_OK,
    ],
    ids=lambda s: s.value,
)
def test_a_failed_recovering_handshake_is_a_failed_attempt(state: ConnectionState) -> None:
    for lose in (
        lambda engine: engine.connection_lost(None, 12.0),
        lambda engine: engine.handle_timer(11.0 + engine.params.connection_timeout),
    ):
        engine = recovering_engine_in(state)
        lose(engine)
        assert engine.state is ConnectionState.RECOVERING
        assert engine.next_timer() is not None and not engine.closed


def test_giving_up_ends_the_connection() -> None:
    engine = recovering_engine_in(ConnectionState.RECOVERING)
    engine.recovery = Recovery(initial_delay=1.0, jitter=0.0, max_attempts=1)
    engine.transport_failed(ConnectFailed("refused"), 11.0)
    assert engine.state is ConnectionState.CLOSED
    assert isinstance(engine.error, ConnectFailed)


@pytest.mark.parametrize(
    "table", [CONNECTION_TABLE, RECOVERY_TABLE], ids=["without recovery", "with recovery"]
)
def test_a_local_input_without_a_row_changes_nothing(
    table: dict[tuple[ConnectionState, str], tuple[str, ConnectionState]],
) -> None:
    assert (ConnectionState.CLOSED, "transport-lost") not in table
    assert (ConnectionState.OPEN, "transport-failed") not in table
    engine = engine_in(ConnectionState.OPEN)
    if table is RECOVERY_TABLE:
        engine.recovery = Recovery()
    engine.transport_wanted = True
    engine.transport_failed(ConnectFailed("a driver that reports a failure twice"), 1.0)
    assert engine.is_open
    engine.connection_lost(None, 1.0)
    if table is RECOVERY_TABLE:
        assert engine.recovering
        engine.connection_lost(ConnectionLost("late news of the old transport"), 2.0)
        assert engine.recovering
    else:
        assert engine.closed
        error = engine.error
        engine.connection_lost(ConnectionLost("late news of the old transport"), 2.0)
        assert engine.closed and engine.error is error


ENGINE = Path(connection_states.__file__).parent
STATE_MOVERS = {
    ("connection.py", "Engine.__init__"),  # the first state
    ("connection.py", "Engine._step"),
    ("channels.py", "Channel.__init__"),
    ("channels.py", "Channel.dispatch"),
}


def _state_assignments(path: Path) -> set[tuple[str, str]]:
    """Where `path` assigns an attribute named `state`: (file name, Class.function)."""
    found: set[tuple[str, str]] = set()

    def targets(node: ast.AST) -> list[ast.expr]:
        if isinstance(node, ast.Assign):
            return [leaf for target in node.targets for leaf in _leaves(target)]
        if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            return _leaves(node.target)
        return []

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [*where, child.name]
            for target in targets(child):
                if isinstance(target, ast.Attribute) and target.attr == "state":
                    found.add((path.name, ".".join(where)))
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id == "setattr"
                and len(child.args) > 1
                and isinstance(child.args[1], ast.Constant)
                and child.args[1].value == "state"
            ):
                found.add((path.name, ".".join(where)))
            visit(child, inner)

    visit(ast.parse(path.read_text()), [])
    return found


def _leaves(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [leaf for element in target.elts for leaf in _leaves(element)]
    return [target]


def test_only_the_step_functions_change_a_state() -> None:
    """h11's rule: everything that changes a state goes through its table, in one function
    (the connection's `Engine._step`, a channel's `Channel.dispatch`)."""
    found = set().union(*(_state_assignments(path) for path in ENGINE.rglob("*.py")))
    assert found == STATE_MOVERS


def test_every_channel_input_is_remote_or_local() -> None:
    local = {kind for _, kind in CHANNEL_TABLE} - set(CHANNEL_INPUTS)
    assert local == channel_states.LOCAL_INPUTS


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


def test_a_sasl_challenge_is_answered_with_a_close() -> None:
    engine = engine_in(ConnectionState.AWAIT_TUNE)
    engine.receive_data(CONNECTION_INPUTS["secure"])
    assert engine.closed and isinstance(engine.error, AMQPError)
    assert engine.error.reply_code == 403
    sent = sent_methods(engine)
    assert isinstance(sent[-1][1], methods.ConnectionClose) and sent[-1][1].reply_code == 403
