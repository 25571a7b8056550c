"""The sans-I/O engine: all of Puka's protocol logic, with no sockets, clocks or threads.

Bytes in (`receive_data`), bytes out (`data_to_send`), operations in (each returns a
`Promise`), results out (`promises`; `promises.on_ready` is called as they arrive), and time
passed in: with every input that may set a deadline (`receive_data(data, now)`,
`connection_lost(exc, now)`, `transport_ready(now)`, `transport_failed(error, now)`), and by
`handle_timer(now)`, which `next_timer()` says when to run (heartbeats, the handshake timeout,
reconnection delays). The engine keeps no clock. A driver owns the transport: `puka.Client`
over a blocking socket, or the asyncio protocol of puka-asyncio. The driver calls
`connection_lost(exc, now)` when the transport dies and closes the transport once `closed` is
true and nothing is left to send.
"""

from __future__ import annotations

import logging
import platform
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, overload

from puka_spec import (
    HEARTBEAT_FRAME,
    BodyFrame,
    ContentFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    encode_content,
    encode_method_frame,
    methods,
)
from puka_spec.constants import FRAME_MIN_SIZE, PROTOCOL_HEADER
from puka_spec.exceptions import (
    AccessRefused,
    AMQPError,
    ChannelError,
    CommandInvalid,
    HardError,
    NotAllowed,
    UnexpectedFrame,
    error_for,
)

from puka import urls
from puka.__about__ import __version__
from puka.engine import connection_states, frame_log
from puka.engine.channel_states import ChannelState
from puka.engine.channels import Channel, ChannelPool
from puka.engine.connection_states import ConnectionState
from puka.engine.operations import ChannelHolder, Consume, Get, Operation, Rpc, SideRpc, Transaction
from puka.engine.publisher import Publisher
from puka.engine.recovery import RECOVERABLE_REPLY_CODES, Recovery
from puka.engine.replay import Replay
from puka.engine.topology import Topology
from puka.errors import (
    BlockedTimeout,
    ChannelClosed,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    ConnectTimeout,
    HeartbeatTimeout,
)
from puka.messages import EMPTY_PROPERTIES, headers_to_properties
from puka.promises import Callback, Promise, Promises
from puka.results import Result
from puka.urls import ConnectionParameters

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "READ_SIZE", "Engine"]

log = logging.getLogger("puka")

DEFAULT_MAX_MESSAGE_SIZE = urls.DEFAULT_MAX_MESSAGE_SIZE
"""Largest message body accepted from the broker (as the Java and .NET clients do)."""

READ_SIZE = 65536
"""How many bytes a transport should read at once. Body pieces go from each read straight into
the message they belong to, so reads need not be large. Both clients read into one buffer of
this size per connection, lent to `receive_data`: a new buffer per read (256 KiB, then 64 KiB)
left the allocator fragmented between a large body's growth steps, and a consumer of 4 MiB
messages with one more message's worth of memory."""

_CHANNEL_INPUTS = {
    methods.ChannelOpenOk.KEY: "open-ok",
    methods.ChannelClose.KEY: "close",
    methods.ChannelCloseOk.KEY: "close-ok",
    methods.ChannelFlow.KEY: "flow",
}
_CONNECTION_INPUTS = {
    methods.ConnectionStart.KEY: "start",
    methods.ConnectionSecure.KEY: "secure",
    methods.ConnectionTune.KEY: "tune",
    methods.ConnectionOpenOk.KEY: "open-ok",
    methods.ConnectionClose.KEY: "close",
    methods.ConnectionCloseOk.KEY: "close-ok",
    methods.ConnectionBlocked.KEY: "blocked",
    methods.ConnectionUnblocked.KEY: "unblocked",
    methods.ConnectionUpdateSecretOk.KEY: "update-secret-ok",
}
_CLIENT_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}
_ACK_FRAME = struct.Struct(">BHIHHQBB")  # a whole basic.ack frame
# Members read from module globals: on Python 3.11 `ConnectionState.OPEN` goes through
# EnumType.__getattr__'s slot, about 1,000 instructions, several times per message.
_OPEN = ConnectionState.OPEN
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_RECOVERING = ConnectionState.RECOVERING
_RECONNECTING = frozenset(  # recovering: calls fail at once until the connection is back
    {
        _RECOVERING,
        ConnectionState.RECOVERY_AWAIT_START,
        ConnectionState.RECOVERY_AWAIT_TUNE,
        ConnectionState.RECOVERY_AWAIT_OPEN_OK,
    }
)
_CHANNEL_OPEN = ChannelState.OPEN
_DUE = float("-inf")
"""The time of a deadline set by an input that came without its time: due at once, it is
timed from the `now` of the next `handle_timer` (the engine keeps no clock of its own)."""


class _Waiting(Operation):
    """A call made before the connection is open, replayed once it is."""

    def __init__(self, engine: Engine, promise: Promise, replay: Callable[[], None]) -> None:
        super().__init__(engine, promise)
        self.replay = replay


_WRITTEN = Result("ok")
"""The result of a publish without confirms once it is written (one, shared, like a confirm's)."""


def _coalesce(buffers: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """`buffers` with each run of `bytes` joined into one; the views stay as they are."""
    out: list[bytes | memoryview] = []
    run: list[bytes | memoryview] = []
    for buffer in buffers:
        if type(buffer) is memoryview:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(buffer)
        else:
            run.append(buffer)
    if run:
        out.append(b"".join(run))
    return out


class Engine:
    """One AMQP connection's protocol state. See the module docstring."""

    def __init__(
        self,
        params: ConnectionParameters | list[ConnectionParameters],
        *,
        pubacks: bool | None = None,
        client_properties: dict[str, Any] | None = None,
        max_message_size: int | None = None,
        recovery: Recovery | None = None,
        blocked_timeout: float | None = None,
        handshake_timeout: float | None = None,
    ) -> None:
        """`max_message_size` (bytes) defaults to the first address's `max_message_size`.

        `handshake_timeout` (seconds; `None`: the address's `connection_timeout`): the AMQP
        handshake (from the first `handle_timer` after the transport is up to
        `connection.open-ok`) fails with `ConnectTimeout` if it takes longer.

        `blocked_timeout` (seconds, `None` for no limit): a connection the broker keeps blocked
        (`connection.blocked`, a resource alarm) that long is dropped with `BlockedTimeout`.
        """
        self.addresses = list(params) if isinstance(params, list) else [params]
        if not self.addresses:
            raise ValueError("no broker address to connect to")
        self.params = self.addresses[0]
        """The broker this engine talks (or last talked) to."""
        self.recovery = recovery
        if handshake_timeout is not None and not (
            isinstance(handshake_timeout, (int, float))
            and not isinstance(handshake_timeout, bool)
            and 0 < handshake_timeout < float("inf")
        ):
            raise ValueError("handshake_timeout must be a positive, finite number of seconds")
        self.handshake_timeout = handshake_timeout
        self.topology = Topology()
        self.consumes: set[Consume] = set()
        self.recovery_errors: list[AMQPError] = []
        self.recoveries = 0
        self.transport_wanted = False
        """Set while recovering: the driver should open a transport to `params` now."""
        self.on_connection_lost: Callable[[BaseException], Any] | None = None
        self.on_recovered: Callable[[], Any] | None = None
        self._attempt = 0
        self._address = 0
        self._round_left = 0  # nodes still to try, without back-off, in this round of attempts
        self._reconnect_at: float | None = None
        self._reconnect_delay: float | None = None  # a back-off waiting for the time it starts
        self.pubacks = pubacks
        self.max_message_size = (
            self.addresses[0].max_message_size if max_message_size is None else max_message_size
        )
        """Largest body a content header may announce: larger ones close with 501 at once."""
        self.state = ConnectionState.INITIAL
        self.promises = Promises()
        self.channels = ChannelPool(self)
        self.publisher: Publisher | None = None
        self.server_properties: dict[str, Any] = {}
        self.channel_max = 0
        self.frame_max = FRAME_MIN_SIZE
        self.heartbeat = 0
        self.blocked = False
        self.blocked_reason = ""
        self.on_blocked: Callable[[str], Any] | None = None
        self.on_unblocked: Callable[[], Any] | None = None
        if blocked_timeout is not None and blocked_timeout <= 0:
            raise ValueError(f"blocked_timeout must be positive, not {blocked_timeout!r}")
        self.blocked_timeout = blocked_timeout
        self._blocked_deadline: float | None = None  # set when blocked, with blocked_timeout
        self._blocked_armed = False  # False: due at once, counts from the next `handle_timer`
        self.error: BaseException | None = None  # why the connection ended, if it did
        self.written: list[Promise | int] = []  # publishes without confirms, done once written
        self.unpaired_returns = 0
        self.stale_acks = 0  # acks of deliveries from a channel that is gone, dropped
        self.duplicate_consume_oks = 0  # repeated consume-oks for a tag we hold, dropped
        self.coalesced_acks = 0  # acks merged into the `multiple` ack queued before them
        self._last_ack: bytes | None = None  # the last ack frame queued (see `ack`)
        self._last_ack_channel: Channel | None = None
        self._last_ack_tag = 0
        self._client_properties = self._build_client_properties(client_properties)
        self._out: list[bytes | memoryview] = []
        self._out_views = False  # whether _out holds views of message bodies
        self.outgoing_bytes = 0
        """Bytes queued for the transport: drivers apply backpressure on this (an attribute,
        not a property: it is read once per call; only the engine changes it)."""
        self._reader = FrameReader(FRAME_MIN_SIZE, assemble_content=True, stream_bodies=True)
        self._waiting: deque[Operation] = deque()  # ops waiting for the connection or a channel
        self._connect_promise: Promise | None = None
        self._close_promise: Promise | None = None
        self._close_requested = False
        self._secret_promises: deque[Promise] = deque()
        # time
        self._connect_deadline: float | None = None
        self._next_tick: float | None = None
        self._sent_since_tick = False
        self._received_since_tick = False  # bytes came without a `now`: timed at the next tick
        self._last_received: float | None = None  # when the last bytes came (heartbeats)
        self._unwritten_since: float | None = None  # the transport has taken nothing since

    def __repr__(self) -> str:
        return f"<puka.Engine {self.params.redacted_url()} {self.state.value}>"

    # ------------------------------------------------------------------------------------
    # The driver's side: bytes, time, transport loss
    # ------------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """The connection is over (the driver may close the transport once flushed)."""
        return self.state is _CLOSED

    @property
    def is_open(self) -> bool:
        """The handshake is done and the connection is neither closing nor lost."""
        return self.state is _OPEN

    @property
    def started(self) -> bool:
        """`connect()` was called (the connection may since have opened, or ended)."""
        return self.state is not ConnectionState.INITIAL

    @property
    def recovering(self) -> bool:
        """The connection was lost and recovery waits for a new transport: the driver drops
        the old one and keeps going without one (runs the timers, opens a transport when
        `transport_wanted`). Once the new transport is up, its handshake is not open yet."""
        return self.state is _RECOVERING

    def unwritten_since(self, since: float | None) -> None:
        """The transport has taken none of the bytes handed to it since `since` (the driver's
        clock), or took them all (`None`).

        The write-stall rule: with heartbeats on, a broker that takes nothing we send for two
        heartbeat intervals is taken for dead (`HeartbeatTimeout`, or recovery), at the
        `handle_timer` that `next_timer` asks for. Not while the broker blocks the connection
        (a blocked connection is not read, on purpose): the clock starts again once it
        unblocks. A driver reports each change: when a write leaves bytes behind and when one
        makes progress.
        """
        self._unwritten_since = since

    def needs_write(self) -> bool:
        """Whether `data_to_send` has anything."""
        return bool(self._out)

    def data_to_send(self) -> bytes:
        """Everything queued for the transport, in one buffer (the driver must write all of it)."""
        buffers = self.buffers_to_send()
        if len(buffers) == 1 and type(buffers[0]) is bytes:
            return buffers[0]
        return b"".join(buffers)

    def buffers_to_send(self) -> list[bytes | memoryview]:
        """Everything queued for the transport, as buffers to write in order.

        The bodies of large messages come as views of the caller's `bytes`, not copies
        (`encode_content_buffers`): a driver that writes the list with `socket.sendmsg`, or
        slice by slice, never copies them. `data_to_send` joins the list.
        """
        out = self._out
        if not out:
            return []
        self._out = []
        self.outgoing_bytes = 0
        if self._out_views:  # join the runs of small buffers between the views
            self._out_views = False
            out = _coalesce(out)
        elif len(out) > 1:
            out = [b"".join(out)]
        if len(out) > 1 or out[0] is not HEARTBEAT_FRAME:  # our heartbeat proves nothing
            self._sent_since_tick = True
        if self.written:
            written, self.written = self.written, []
            self.promises.resolve_all(written, _WRITTEN)
            if self._close_requested:
                self._close_if_idle()
                if self._out:
                    out += self._out
                    self._out = []
                    self.outgoing_bytes = 0
                    self._out_views = False
        if frame_log.enabled():
            frame_log.log_sent(out)
        return out

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Bytes from the transport (the engine copies what it keeps of a `bytearray` or
        `memoryview`, so the caller may read into the same buffer again once this returns).

        `now` (the driver's clock, as given to `handle_timer`) is when they arrived: a peer is
        then taken for dead exactly two heartbeat intervals after its last byte. Without it,
        bytes count as arrived at the next `handle_timer`, which may report a dead peer up to
        half an interval later.
        """
        state = self.state
        if state is _CLOSED or state is _RECOVERING or not data:
            return  # (recovering: late bytes of the transport that was dropped)
        if now is None:
            self._received_since_tick = True
        else:
            self._last_received = now
        reader = self._reader
        reader.feed(data)
        logged = frame_log.enabled()
        try:
            while (frame := reader.read_frame()) is not None:
                if logged:
                    frame_log.log_received(frame)
                channel = frame.channel
                if channel:
                    self._channel_frame(channel, frame)
                else:
                    self._connection_frame(frame, now)
                if self.state is _CLOSED:
                    return
        except AMQPError as error:
            self.protocol_violation(error)
            return
        if self._close_requested:
            self._close_if_idle()

    def connection_lost(self, exc: BaseException | None = None, now: float | None = None) -> None:
        """The transport is gone: every promise in flight fails (or, with recovery, most).

        `now` (the driver's clock) is when: recovery's back-off counts from it (without it,
        from the next `handle_timer`).
        """
        self._step("transport-lost", exc, now)

    def _loss_error(self, exc: BaseException | None, *, handshake: bool) -> BaseException:
        """What the promises in flight fail with when the transport went with `exc`."""
        if exc is None or not isinstance(exc, (AMQPError, ConnectionLost, ConnectFailed)):
            return self._transport_error(exc, handshake=handshake)
        return exc

    def _transport_error(
        self, exc: BaseException | None, *, handshake: bool = False
    ) -> ConnectionLost | ConnectFailed:
        """The error for a transport that failed with `exc` (an `OSError`, or `None` for a
        clean EOF): `ConnectFailed` during the handshake, else `ConnectionLost`; named by
        address, with `exc` as its `__cause__`."""
        where = f"connection to {self.params.host}:{self.params.port}"
        why = f": {exc}" if exc else ""
        error = (
            ConnectFailed(f"{where} closed during the handshake{why}")
            if handshake
            else ConnectionLost(f"{where} lost{why}")
        )
        error.__cause__ = exc
        return error

    def next_timer(self) -> float | None:
        """When `handle_timer` should next run (in the driver's clock), or `None`."""
        if self.state is _CLOSED:
            return None
        if self.state is _RECOVERING:
            return self._reconnect_at
        deadline = self._connect_deadline if self.state is not _OPEN else None
        blocked = self._blocked_deadline
        if blocked is not None and (deadline is None or blocked < deadline):
            deadline = blocked
        tick = self._next_tick
        if tick is not None:
            last = self._last_received
            if last is not None and last + 2 * self.heartbeat < tick:
                tick = last + 2 * self.heartbeat  # the peer's deadline, not the next tick's
            stalled = self._unwritten_since
            if stalled is not None and stalled + 2 * self.heartbeat < tick:
                tick = stalled + 2 * self.heartbeat  # the transport took nothing: its deadline
            if deadline is None or tick < deadline:
                return tick
        return deadline

    def handle_timer(self, now: float) -> None:
        """Run what is due at `now`; a driver calls it at start and whenever `next_timer` passes.

        A deadline set by an input that came without its time is timed from this `now`.
        """
        state = self.state
        if state is _CLOSED:
            return
        if state is _RECOVERING:
            if self._reconnect_delay is not None:  # the loss came without its time: from now
                self._reconnect_at = now + self._reconnect_delay
                self._reconnect_delay = None
            if self._reconnect_at is not None and now >= self._reconnect_at:
                self._step("reconnect", None, now)
            return
        if state is not _OPEN and state is not _CLOSING:
            if self._connect_deadline is None:
                self._connect_deadline = now + self._handshake_timeout()
            elif now >= self._connect_deadline:
                error = ConnectTimeout(
                    f"no AMQP connection to {self.params.host}:{self.params.port} within "
                    f"{self._handshake_timeout():g} s"
                )
                self._step("handshake-timeout", error, now)
                return
        if self._blocked_deadline is not None and state is _OPEN and self.blocked_timeout:
            if not self._blocked_armed:
                self._blocked_armed = True
                self._blocked_deadline = now + self.blocked_timeout
            elif now >= self._blocked_deadline:
                self._blocked_deadline = None
                self._step(
                    "dead",
                    BlockedTimeout(
                        f"the broker kept the connection blocked ({self.blocked_reason}) for "
                        f"over {self.blocked_timeout:g} s (blocked_timeout)"
                    ),
                    now,
                )
                return
        if not self.heartbeat or self._next_tick is None:
            return
        stalled = self._unwritten_since
        if stalled is not None:
            if self.blocked:  # not read while blocked, on purpose: the clock starts again
                self._unwritten_since = now
            elif now - stalled >= 2 * self.heartbeat:
                self._step(
                    "dead",
                    HeartbeatTimeout(
                        f"{self.params.host}:{self.params.port} took nothing we sent for "
                        f"{2 * self.heartbeat} s (heartbeat {self.heartbeat} s)"
                    ),
                    now,
                )
                return
        if self._received_since_tick or self._last_received is None:
            self._received_since_tick = False  # bytes without a time (or the first tick): now
            self._last_received = now
        if now - self._last_received >= 2 * self.heartbeat:  # two intervals without a byte
            self._step(
                "dead",
                HeartbeatTimeout(
                    f"nothing from {self.params.host}:{self.params.port} for "
                    f"{now - self._last_received:.1f} s (heartbeat {self.heartbeat} s: dead "
                    f"after {2 * self.heartbeat} s)"
                ),
                now,
            )
            return
        if now < self._next_tick:
            return
        self._next_tick = now + self.heartbeat / 2  # ours: at least one frame per half interval
        if not self._sent_since_tick and not self._out:
            self.send_raw(HEARTBEAT_FRAME)
        self._sent_since_tick = False

    def _handshake_timeout(self) -> float:
        if self.handshake_timeout is not None:
            return float(self.handshake_timeout)
        return self.params.connection_timeout

    # ------------------------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """Queue encoded frames."""
        self._out.append(data)
        self.outgoing_bytes += len(data)

    def send_buffers(self, buffers: list[bytes | memoryview]) -> None:
        """Queue encoded frames given as several buffers (`encode_content_buffers`)."""
        self._out += buffers
        self.outgoing_bytes += sum(map(len, buffers))
        self._out_views = True

    def send_method(self, channel: int, method: methods.Method) -> None:
        """Queue one method frame."""
        data = encode_method_frame(channel, method)
        self._out.append(data)
        self.outgoing_bytes += len(data)

    # ------------------------------------------------------------------------------------
    # Frames in
    # ------------------------------------------------------------------------------------

    def _connection_frame(self, frame: Any, now: float | None) -> None:
        if type(frame) is MethodFrame or type(frame) is ContentFrame:
            method = frame.method
            kind = _CONNECTION_INPUTS.get(method.KEY)
            if kind is None:
                raise CommandInvalid(
                    f"{method.NAME} on channel 0, which carries only connection methods",
                    method.CLASS_ID,
                    method.METHOD_ID,
                )
            if (
                kind == "close"
                and self.recovery is not None
                and method.reply_code in RECOVERABLE_REPLY_CODES  # type: ignore[attr-defined]
            ):
                kind = "forced-close"
        elif type(frame) is HeartbeatFrame:
            kind, method = "heartbeat", None
        else:
            raise UnexpectedFrame("content frame on channel 0")
        self._step(kind, method, now)

    def _step(self, kind: str, payload: Any = None, now: float | None = None) -> None:
        """Take one input: the only place the connection's state changes.

        The state moves as `connection_states` says, then the row's action runs with
        `payload` (a method the broker sent, an error) and `now` (the input's time, if the
        driver passed it). A remote input the state does not take is a protocol violation; a
        local one changes nothing.
        """
        table = _RECOVERY_STEPS if self.recovery is not None else _STEPS
        step = table.get((self.state, kind))
        if step is None:
            if kind in connection_states.REMOTE_INPUTS:
                raise UnexpectedFrame(f"connection in state {self.state.value} cannot take {kind}")
            return
        action, self.state = step
        action(self, payload, now)

    def _channel_frame(self, number: int, frame: Any) -> None:
        if self.state is not _OPEN and self.state is not _CLOSING:
            raise ChannelError(f"frame on channel {number} before the connection is open")
        channel = self.channels.by_number.get(number)
        if channel is None:
            if type(frame) is HeartbeatFrame:  # 505 on any channel but 0, as RabbitMQ replies
                raise UnexpectedFrame(f"heartbeat frame on channel {number}")
            if self.state is _CLOSING:
                return  # a channel we already forgot, answering after our close
            raise ChannelError(f"frame on channel {number}, which is not open")
        kind = type(frame)
        if kind is ContentFrame:
            if channel.state is _CHANNEL_OPEN:  # the table's (OPEN, content) step, without a lookup
                channel.on_content(frame)
            else:
                channel.dispatch("content", frame)
        elif kind is MethodFrame:
            method = frame.method
            channel.dispatch(_CHANNEL_INPUTS.get(method.KEY, "method"), method)
        elif kind is BodyFrame:
            channel.dispatch("body", frame.payload)
        elif kind is HeaderFrame:
            channel.dispatch("header", frame)
        else:
            raise UnexpectedFrame(f"heartbeat frame on channel {number}")

    # --- actions: named in connection_states' tables, run by _step ---------------------------
    # Each takes the input's payload (a method the broker sent, an error, an exception of the
    # transport) and its time; none changes the state (the row did), but some fire a further
    # input when the outcome depends on more than the row.

    def _ignore(self, payload: Any, now: float | None) -> None:
        pass

    def _on_start(self, method: methods.ConnectionStart, now: float | None) -> None:
        self.transport_wanted = False  # a driver that never said `transport_ready` has one
        self.server_properties = dict(method.server_properties)
        offered = method.mechanisms.decode("utf-8", "replace").split()
        mechanism = self.params.auth_mechanism
        if mechanism not in offered:
            error = AccessRefused(
                f"the broker does not offer the {mechanism} mechanism (it offers "
                f"{', '.join(offered) or 'none'})"
            )
            self._step("abort", error, now)
            return
        if mechanism == "PLAIN":
            response = b"\0" + self.params.username.encode() + b"\0" + self.params.password.encode()
        else:  # EXTERNAL: the TLS client certificate is the identity
            response = b""
        self.send_method(
            0,
            methods.ConnectionStartOk(
                client_properties=self._client_properties,
                mechanism=mechanism,
                response=response,
                locale="en_US",
            ),
        )

    def _on_secure(self, method: methods.ConnectionSecure, now: float | None) -> None:
        error = AccessRefused(
            "the broker sent a SASL challenge, which PLAIN and EXTERNAL never need"
        )
        self._abort(error, now)

    def _on_tune(self, method: methods.ConnectionTune, now: float | None) -> None:
        params = self.params
        if 0 < method.frame_max < FRAME_MIN_SIZE:
            raise UnexpectedFrame(
                f"the broker proposed frame_max {method.frame_max}, below the minimum 4096"
            )
        self.channel_max = _negotiate(params.channel_max, method.channel_max) or 65535
        self.channel_max = min(self.channel_max, 65535)
        self.frame_max = _negotiate(params.frame_max, method.frame_max) or 131072
        # No frame needs to be larger than the largest message: this bounds the read buffer
        # (one partial frame) whatever frame_max a hostile broker proposes.
        self.frame_max = min(self.frame_max, max(FRAME_MIN_SIZE, self.max_message_size + 8))
        if params.heartbeat is None:
            self.heartbeat = method.heartbeat
        elif params.heartbeat == 0 or method.heartbeat == 0:
            self.heartbeat = params.heartbeat
        else:
            self.heartbeat = min(params.heartbeat, method.heartbeat)
        self.channels.channel_max = self.channel_max
        self._reader.frame_max = self.frame_max
        if self.heartbeat:
            self._next_tick = _DUE if now is None else now  # the first tick: at once
        self.send_method(
            0,
            methods.ConnectionTuneOk(
                channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat
            ),
        )
        self.send_method(0, methods.ConnectionOpen(virtual_host=params.virtual_host))

    def _on_open_ok(self, method: methods.ConnectionOpenOk, now: float | None) -> None:
        self._connect_deadline = None
        if self._connect_promise is not None:
            result = Result("connection.open_ok", {"server_properties": self.server_properties})
            self.promises.resolve(self._connect_promise, result)
        self.channel_freed()
        self._close_if_idle()

    def _on_reopen_ok(self, method: methods.ConnectionOpenOk, now: float | None) -> None:
        """Recovered: declare the topology again, then restart the consumes."""
        self._connect_deadline = None
        self._attempt = 0
        self._start(Replay(self, self.promises.new(), self._restart_consumes))

    def _on_close(self, method: methods.ConnectionClose, now: float | None) -> None:
        self.send_method(0, methods.ConnectionCloseOk())
        self._fail(self.error_from_close(method), now)

    def _on_forced_close(self, method: methods.ConnectionClose, now: float | None) -> None:
        """Closed by the broker (a node shutting down): recover."""
        self.send_method(0, methods.ConnectionCloseOk())
        self._recover(self.error_from_close(method), now)

    def _on_close_ok(self, method: methods.ConnectionCloseOk, now: float | None) -> None:
        if self._close_promise is not None:
            self.promises.resolve(self._close_promise, Result("connection.close_ok"))
        self._fail(self.error or ClientClosed("the client was closed"), now)

    def _on_blocked(self, method: methods.ConnectionBlocked, now: float | None) -> None:
        self.blocked = True
        self.blocked_reason = method.reason
        if self.blocked_timeout is not None and self._blocked_deadline is None:
            self._blocked_armed = now is not None  # else handle_timer arms it from its `now`
            self._blocked_deadline = _DUE if now is None else now + self.blocked_timeout
        if self.on_blocked is not None:
            self.on_blocked(method.reason)

    def _on_unblocked(self, method: methods.ConnectionUnblocked, now: float | None) -> None:
        self.blocked = False
        self.blocked_reason = ""
        self._blocked_deadline = None
        if self.on_unblocked is not None:
            self.on_unblocked()

    def _on_update_secret_ok(
        self, method: methods.ConnectionUpdateSecretOk, now: float | None
    ) -> None:
        if self._secret_promises:
            promise = self._secret_promises.popleft()
            self.promises.resolve(promise, Result("connection.update_secret_ok"))

    def _connect(self, payload: None, now: float | None) -> None:
        self.send_raw(PROTOCOL_HEADER)
        self._round_left = len(self.addresses) - 1
        self.transport_wanted = True

    def _send_close(self, payload: None, now: float | None) -> None:
        for op in self._waiting:
            op.fail(ClientClosed("the client was closed before this operation started"))
        self._waiting.clear()
        self.send_method(0, methods.ConnectionClose(200, "Goodbye", 0, 0))

    def _fail_connecting(self, exc: BaseException | None, now: float | None) -> None:
        self._fail(self._loss_error(exc, handshake=True), now)

    def _fail_lost(self, exc: BaseException | None, now: float | None) -> None:
        self._fail(self._loss_error(exc, handshake=False), now)

    def _closed_by_loss(self, exc: BaseException | None, now: float | None) -> None:
        if self._close_promise is not None:
            # we were closing anyway: the close succeeded as far as the user is concerned
            self.promises.resolve(self._close_promise, Result("connection.close_ok"))
        self._fail(self._loss_error(exc, handshake=False), now)

    def _try_next_node(self, error: BaseException, now: float | None) -> None:
        """The first connect's transport could not be opened: the next node, or the end.

        `connect()` tries every address once, in turn, with no back-off (recovery's rounds
        start only once a connection was open); when all failed, the connect fails with the
        last node's error.
        """
        if self._round_left > 0:
            self._round_left -= 1
            self._address += 1
            self.params = self.addresses[self._address % len(self.addresses)]
            self.transport_wanted = True
            return
        self._step("give-up", error, now)

    # ------------------------------------------------------------------------------------
    # Errors and the end of the connection
    # ------------------------------------------------------------------------------------

    def error_from_close(self, method: methods.ConnectionClose | methods.ChannelClose) -> AMQPError:
        """The exception for a close the broker sent."""
        return error_for(method.reply_code, method.reply_text, method.class_id, method.method_id)

    def protocol_violation(self, error: AMQPError) -> None:
        """We received something malformed or out of order: close with its reply code."""
        log.warning("closing the connection: %s", error)
        if not isinstance(error, HardError):
            error = UnexpectedFrame(str(error))
        self._step("abort", error)

    def _abort(self, error: BaseException, now: float | None) -> None:
        """Tell the broker why we end the connection (connection.close), then end it."""
        code = getattr(error, "reply_code", 0) or 541
        text = getattr(error, "reply_text", "") or str(error)
        self.send_method(
            0,
            methods.ConnectionClose(
                reply_code=code,
                reply_text=text.encode()[:255].decode("utf-8", "ignore"),
                class_id=getattr(error, "class_id", 0),
                method_id=getattr(error, "method_id", 0),
            ),
        )
        self._fail(error, now)

    def _fail(self, error: BaseException, now: float | None) -> None:
        """The end: fail everything in flight with `error`."""
        self.transport_wanted = False
        if self.error is None:
            self.error = error
        self._next_tick = self._connect_deadline = self._unwritten_since = None
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.fail_all(error)
        self._waiting.clear()
        self.channels.clear()
        self.promises.fail_all(error)

    # --- recovery -----------------------------------------------------------------------

    def _recover_lost(self, exc: BaseException | None, now: float | None) -> None:
        self._recover(self._transport_error(exc), now)

    def _recover(self, cause: BaseException, now: float | None) -> None:
        """The open connection was lost: fail what was in flight, keep the consumes, and
        schedule the first round of reconnection attempts."""
        log.warning("connection to %s lost (%s): recovering", self.params.redacted_url(), cause)
        # what is in flight fails with the cause's own class (a HeartbeatTimeout, a
        # BlockedTimeout), as without recovery: `except puka.BlockedTimeout` catches it both ways
        kind = type(cause) if isinstance(cause, ConnectionLost) else ConnectionLost
        lost = kind(f"the connection was lost ({cause}); the outcome is unknown")
        lost.__cause__ = cause
        survivors = {op for op in self.consumes if not op.promise.done}
        survivors.update(
            op for op in self._waiting if isinstance(op, Consume) and not op.promise.done
        )
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            publisher.fail_all(lost)
        for op in survivors:
            op.detach(lost)
        for promise in list(self.promises.live.values()):
            if not promise.done and promise.op not in survivors:
                self.promises.resolve(promise, Result.error(lost))
        self.promises.fail_bare(lost)  # unwritten publishes without confirms
        self._waiting.clear()
        self.channels.clear()
        self.consumes = survivors
        self._out.clear()
        self.outgoing_bytes = 0
        self.written.clear()
        self._secret_promises.clear()
        self._next_tick = self._connect_deadline = self._blocked_deadline = None
        self._unwritten_since = None
        self.blocked = False
        self._attempt = 0
        self._schedule_reconnect(now)
        if self.on_connection_lost is not None:
            self.on_connection_lost(cause)

    def _fail_recovering(self, promise: Promise) -> None:
        """Calls made while reconnecting fail at once: nothing is buffered in secret."""
        error = ConnectionLost("the connection is being recovered: call again once it is back")
        self.promises.resolve(promise, Result.error(error))

    def _schedule_reconnect(self, now: float | None) -> None:
        """Start a round of attempts, after the back-off: one node, then the others at once.

        The back-off counts from `now`, the time of the input that failed the last round (or
        lost the connection); without it, from the next `handle_timer`.
        """
        recovery = self.recovery
        if recovery is None:  # callers recover only with a Recovery: a bug, not bad input
            raise RuntimeError("a reconnection was scheduled without automatic recovery")
        delay = recovery.delay(self._attempt)
        if now is None:
            self._reconnect_at, self._reconnect_delay = _DUE, delay
        else:
            self._reconnect_at, self._reconnect_delay = now + delay, None
        self._attempt += 1
        self._round_left = len(self.addresses) - 1
        if recovery.shuffle and len(self.addresses) > 1:
            import random  # noqa: PLC0415 - only for shuffled clusters

            self._address = random.randrange(len(self.addresses))  # noqa: S311
        self.params = self.addresses[self._address % len(self.addresses)]

    def _want_transport(self, payload: None, now: float | None) -> None:
        self._reconnect_at = None
        self.transport_wanted = True

    def _reopen(self, payload: None, now: float | None) -> None:
        """A new transport: the handshake again, on a clean slate."""
        self._reader = FrameReader(FRAME_MIN_SIZE, assemble_content=True, stream_bodies=True)
        self.channels = ChannelPool(self)
        self.frame_max = FRAME_MIN_SIZE
        self._out.clear()
        self.outgoing_bytes = 0
        self._received_since_tick = self._sent_since_tick = False
        self._last_received = None
        self._next_tick = None
        self._connect_deadline = None if now is None else now + self._handshake_timeout()
        self.send_raw(PROTOCOL_HEADER)

    def _attempt_closed(self, method: methods.ConnectionClose, now: float | None) -> None:
        """The broker closed the new connection before it opened (a node still starting)."""
        self.send_method(0, methods.ConnectionCloseOk())
        self._attempt_failed(self.error_from_close(method), now)

    def _attempt_lost(self, exc: BaseException | None, now: float | None) -> None:
        self._attempt_failed(exc or ConnectionLost("the broker closed the connection"), now)

    def _attempt_failed(self, error: BaseException, now: float | None) -> None:
        """A reconnection attempt failed: the next broker, or the back-off, or the end.

        A round of attempts tries every broker URL once, in turn: after a failure the next node
        is tried at once, and only a round where every node failed counts as a failed attempt,
        followed by the back-off delay (and by giving up after `max_attempts` of them).
        """
        log.info("reconnection to %s failed: %s", self.params.redacted_url(), error)
        recovery = self.recovery
        if isinstance(error, (AccessRefused, NotAllowed)):  # credentials or vhost: give up
            self._step("give-up", error, now)
            return
        if recovery is not None and self._round_left > 0:  # the rest of the cluster first
            self._round_left -= 1
            self._address += 1
            self._reconnect_at, self._reconnect_delay = (_DUE if now is None else now), None
            self.params = self.addresses[self._address % len(self.addresses)]
            return
        if recovery is None or (recovery.max_attempts and self._attempt >= recovery.max_attempts):
            self._step("give-up", error, now)
            return
        self._address += 1
        self._schedule_reconnect(now)

    def transport_ready(self, now: float | None = None) -> None:
        """The driver opened a transport to `params` (after `transport_wanted`): the handshake
        starts (again, when recovering). Ignored when no transport was wanted.

        `now` (the driver's clock) is when: a recovering handshake's timeout counts from it
        (without it, from the next `handle_timer`).
        """
        if not self.transport_wanted:
            return
        self.transport_wanted = False
        self._step("transport-ready", None, now)

    def transport_failed(self, error: BaseException, now: float | None = None) -> None:
        """The transport the driver was asked for could not be opened: try the next broker,
        or back off, or give up.

        The first connect tries every broker URL once, in turn. Recovery makes rounds of
        attempts (see `_attempt_failed`). `now` (the driver's clock) is when it failed: the
        back-off counts from it (without it, from the next `handle_timer`).
        """
        self.transport_wanted = False
        self._step("transport-failed", error, now)

    def _restart_consumes(self, renamed: dict[str, str]) -> None:
        for op in list(self.consumes):
            op.recover(renamed)
            self._submit(op)
        self.recoveries += 1
        log.warning("recovered: connected to %s", self.params.redacted_url())
        if self.on_recovered is not None:
            self.on_recovered()

    def publisher_gone(self, publisher: Publisher) -> None:
        """The publish channel was closed by the broker; the next publish opens another."""
        if self.publisher is publisher:
            self.publisher = None

    # ------------------------------------------------------------------------------------
    # Operations
    # ------------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.state is ConnectionState.CLOSED or self.state is ConnectionState.CLOSING:
            raise ClientClosed(
                "the client is closed"
                + (f" ({type(self.error).__name__}: {self.error})" if self.error else "")
            )

    def _submit(self, op: Operation) -> Promise:
        if self.state in _RECONNECTING:
            self._fail_recovering(op.promise)
            return op.promise
        if not (self.state is _OPEN and not self._waiting and self._start(op)):
            self._waiting.append(op)  # until the connection opens or a channel is free
        return op.promise

    def _start(self, op: Operation) -> bool:
        if isinstance(op, _Waiting):
            op.replay()
            return True
        channel = self.channels.acquire(op, op.short)
        if channel is None:
            return False
        op.channel = channel
        op.start(channel)
        return True

    def channel_freed(self) -> None:
        """A channel became free, or the connection opened: start what was waiting."""
        waiting = self._waiting
        while waiting and self.state is _OPEN:
            op = waiting.popleft()
            if not self._start(op):
                waiting.appendleft(op)
                return

    def connect(self, callback: Callback | None = None) -> Promise:
        """Start the handshake; the promise resolves once the connection is open."""
        if self.state is not ConnectionState.INITIAL:
            if self._connect_promise is not None:
                return self._connect_promise
            self._check_usable()
        promise = self.promises.new(callback)
        self._connect_promise = promise
        self._step("connect")
        return promise

    def close(self, callback: Callback | None = None) -> Promise:
        """Close the connection once what was sent before is answered."""
        promise = self.promises.new(callback)
        if self.state is ConnectionState.CLOSED or self.state is ConnectionState.INITIAL:
            self._step("drop")
            self.promises.resolve(promise, Result("connection.close_ok"))
            return promise
        if self._close_promise is not None:
            self.promises.resolve(promise, Result("connection.close_ok"))
            return self._close_promise
        self._close_promise = promise
        self._close_requested = True
        self._close_if_idle()
        return promise

    def _close_if_idle(self) -> None:
        """Send connection.close once what was sent before it is answered.

        The broker does not send the confirms of the last publishes before its close-ok, so
        close() waits for publishes and operations in flight (not for consumes) first.
        """
        if not self._close_requested or self.state is not _OPEN:
            return
        if (self.publisher is not None and self.publisher.in_flight) or self.promises.bare:
            return
        for promise in self.promises.live.values():
            if not promise.done and not promise.multi and promise is not self._close_promise:
                return
        self._close_requested = False
        self._step("send-close")

    def rpc(self, method: methods.Method, callback: Callback | None = None) -> Promise:
        """Send a synchronous method on a pooled channel; resolve with its reply."""
        self._check_usable()
        return self._submit(Rpc(self, self.promises.new(callback), method))

    def get(self, queue: str, no_ack: bool, callback: Callback | None = None) -> Promise:
        """basic.get."""
        self._check_usable()
        return self._submit(Get(self, self.promises.new(callback), queue, no_ack))

    def consume(
        self,
        consumes: list[methods.BasicConsume],
        prefetch_count: int,
        callback: Callback | None = None,
    ) -> Promise:
        """basic.consume on each queue, on one channel: one result per message."""
        self._check_usable()
        promise = self.promises.new(callback, multi=True)
        return self._submit(Consume(self, promise, consumes, prefetch_count))

    def transaction(self, callback: Callback | None = None) -> Promise:
        """A channel in transaction mode (tx.select); its promise yields `tx.select_ok`."""
        self._check_usable()
        promise = self.promises.new(callback, multi=True)
        return self._submit(Transaction(self, promise))

    def _holder_of(self, number: int) -> ChannelHolder:
        live = self.promises.live.get(number)
        op = live.op if live is not None else None
        if not isinstance(op, ChannelHolder):
            raise ValueError(f"promise {number} is not a running consume or transaction")
        return op

    def on_holder(
        self, number: int, action: str, method: methods.Method, callback: Callback | None = None
    ) -> Promise:
        """Run `method` on the channel of a consume or transaction.

        `action` is `side` (a synchronous method such as qos, recover, commit), `cancel` (of a
        consume) or `close` (of a transaction).
        """
        self._check_usable()
        promise = self.promises.new(callback)
        live = self.promises.live.get(number)
        if live is not None and any(op.promise is live for op in self._waiting):
            # the holder has not started yet: run after it, in order
            self._waiting.append(
                _Waiting(self, promise, lambda: self._on_holder(number, action, method, promise))
            )
        else:
            self._on_holder(number, action, method, promise)
        return promise

    def _on_holder(
        self, number: int, action: str, method: methods.Method, promise: Promise
    ) -> None:
        live = self.promises.live.get(number)
        holder = live.op if live is not None else None
        side = SideRpc(self, promise, holder, method)  # type: ignore[arg-type]
        if not isinstance(holder, ChannelHolder):
            if action == "side" or not self.promises.issued(number):
                side.fail(
                    ChannelClosed(f"promise {number} is not a running consume or transaction")
                )
            else:  # cancelling what is already over is not an error
                side.answered(method)
        elif action == "cancel" and isinstance(holder, Consume):
            holder.cancel(side)
        elif action == "close" and isinstance(holder, Transaction):
            holder.close(side)
        else:
            holder.side(side)

    @overload
    def publish(
        self,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        headers: dict[str, Any] | None,
        body: bytes,
        callback: Callback | None = None,
        channel_of: int | None = None,
        *,
        bare: Literal[False] = False,
        properties: dict[str, Any] | None = None,
    ) -> Promise: ...

    @overload
    def publish(
        self,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        headers: dict[str, Any] | None,
        body: bytes,
        *,
        bare: Literal[True],
        properties: dict[str, Any] | None = None,
    ) -> int: ...

    def publish(
        self,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        headers: dict[str, Any] | None,
        body: bytes,
        callback: Callback | None = None,
        channel_of: int | None = None,
        *,
        bare: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> Promise | int:
        """basic.publish; the promise settles on the broker's confirm (or once written).

        `headers` and `properties` are `basic_publish`'s (see `puka.messages`); they are
        checked and encoded before anything else happens. With `bare=True` (and no callback)
        the promise is bare: its number, returned, is all there is until it ends or something
        asks for its object (`Promises.promote`); see `puka.promises`, and `on_bare_ended` for
        a driver that does not wait by number.
        """
        if bare and callback is not None:
            raise TypeError("a bare publish has no callback")
        props = (
            EMPTY_PROPERTIES
            if headers is None and properties is None
            else headers_to_properties(headers, properties)
        )
        if self.state is _OPEN and not self._waiting and channel_of is None:
            publisher = self.publisher
            if publisher is not None:  # the hot path: straight to the publish channel
                promises = self.promises
                promise = promises.new_bare() if bare else promises.new(callback)
                publisher.publish(promise, exchange, routing_key, mandatory, props, body)
                return promise
        later = self._publish_later(
            props, exchange, routing_key, mandatory, body, callback, channel_of
        )
        return later.number if bare else later

    def _publish_later(
        self,
        props: bytes,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        body: bytes,
        callback: Callback | None,
        channel_of: int | None,
    ) -> Promise:
        """A publish off the hot path: a first channel, a connection not open yet, a channel."""
        self._check_usable()
        promise = self.promises.new(callback)
        if self.state in _RECONNECTING:
            self._fail_recovering(promise)
            return promise
        if self.state is not _OPEN or self._waiting:
            self._waiting.append(
                _Waiting(
                    self,
                    promise,
                    lambda: self._publish(
                        promise, exchange, routing_key, mandatory, props, body, channel_of
                    ),
                )
            )
            return promise
        self._publish(promise, exchange, routing_key, mandatory, props, body, channel_of)
        return promise

    def _publish(
        self,
        promise: Promise,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        props: bytes,
        body: bytes,
        channel_of: int | None,
    ) -> None:
        if channel_of is not None:
            try:
                holder = self._holder_of(channel_of)
            except ValueError as exc:
                self.promises.resolve(promise, Result.error(ChannelClosed(str(exc))))
                return
            if holder.channel is None:
                self.promises.resolve(
                    promise, Result.error(ChannelClosed("that channel is closed"))
                )
                return
            method = methods.BasicPublish(
                exchange=exchange, routing_key=routing_key, mandatory=mandatory
            )
            self.send_raw(
                encode_content(holder.channel.number, method, props, body, self.frame_max)
            )
            self.written.append(promise)
            return
        publisher = self.publisher
        if publisher is None:
            publisher = self._new_publisher()
            if publisher is None:
                self._waiting.append(
                    _Waiting(
                        self,
                        promise,
                        lambda: self._publish(
                            promise, exchange, routing_key, mandatory, props, body, None
                        ),
                    )
                )
                return
        publisher.publish(promise, exchange, routing_key, mandatory, props, body)

    def republish(
        self,
        promise: Promise,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        props: bytes,
        body: bytes,
    ) -> None:
        """Send again a publish whose channel another publish killed (see `Publisher`)."""
        if self.state is _OPEN:
            self._publish(promise, exchange, routing_key, mandatory, props, body, None)

    def _new_publisher(self) -> Publisher | None:
        placeholder = _PublisherSlot()
        channel = self.channels.acquire(placeholder)
        if channel is None:
            return None
        capabilities = self.server_properties.get("capabilities") or {}
        confirm = (
            bool(capabilities.get("publisher_confirms")) if self.pubacks is None else self.pubacks
        )
        publisher = Publisher(self, channel, confirm)
        channel.owner = publisher
        self.publisher = publisher
        return publisher

    def settle(self, message: Result, method: methods.Method) -> None:
        """basic.ack / reject / nack of a delivered message: sent on its channel.

        A message whose channel is gone (the broker requeued it already) or that was already
        settled is not sent again (that would close the channel with 406): it is counted in
        `stale_acks` and dropped.
        """
        settled = self._settle_channel(message, bool(getattr(method, "multiple", False)))
        if settled is not None:
            channel, tag = settled
            if isinstance(method, methods.BasicNack) and tag != method.delivery_tag:
                # a multiple nack of a settled tag: the highest one below it still outstanding
                method = methods.BasicNack(delivery_tag=tag, multiple=True, requeue=method.requeue)
            self.send_method(channel.number, method)

    def ack(self, message: Result, multiple: bool = False) -> None:
        """basic.ack of a delivered message (the hot path of a consumer: one pack, no objects).

        Acks queued one after the other, on one channel, in rising order, go out as one: when
        the last thing queued is this channel's ack of an earlier tag and every tag up to this
        one is settled, that frame becomes a `multiple` ack of this tag. It acks exactly what
        the two acked (any tag between them was acked, or rejected by a frame queued before).
        """
        settled = self._settle_channel(message, multiple)
        if settled is None:
            return
        channel, tag = settled
        out = self._out
        merge = (
            bool(out)
            and out[-1] is self._last_ack
            and self._last_ack_channel is channel
            and self._last_ack_tag < tag <= channel.settled_to
        )
        data = _ACK_FRAME.pack(1, channel.number, 13, 60, 80, tag, merge or multiple, 206)
        if merge:  # the same 21 bytes, in place of the ack before
            out[-1] = data
            self.coalesced_acks += 1
        else:
            out.append(data)
            self.outgoing_bytes += 21
            self._last_ack_channel = channel
        self._last_ack = data
        self._last_ack_tag = tag

    def _settle_channel(self, message: Result, multiple: bool) -> tuple[Channel, int] | None:
        """The channel and the tag to send for a settle of `message`, `None` if it is stale."""
        if self.state is not _OPEN:
            self._check_usable()
        where = message._ack
        if where is None:
            raise ValueError(
                "msg_result is not a message to acknowledge (or it was fetched with no_ack)"
            )
        channel, tag = where
        if channel.state is not _CHANNEL_OPEN or channel.engine is not self:
            self.stale_acks += 1
            return None
        tag = self.channels.settled(channel, tag, multiple)
        if not tag:
            self.stale_acks += 1
            return None
        return channel, tag

    def update_secret(
        self, new_secret: bytes, reason: str, callback: Callback | None = None
    ) -> Promise:
        """connection.update-secret (a refreshed OAuth 2 token)."""
        self._check_usable()
        promise = self.promises.new(callback)
        method = methods.ConnectionUpdateSecret(new_secret=new_secret, reason=reason)
        if self.state is _OPEN:
            self._secret_promises.append(promise)
            self.send_method(0, method)
        else:

            def replay() -> None:
                self._secret_promises.append(promise)
                self.send_method(0, method)

            self._waiting.append(_Waiting(self, promise, replay))
        return promise

    # ------------------------------------------------------------------------------------

    def _build_client_properties(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product": "Puka",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "information": "https://github.com/puka-amqp/puka",
            "capabilities": dict(_CLIENT_CAPABILITIES),
        }
        if self.params.connection_name:
            props["connection_name"] = self.params.connection_name
        if extra:
            props.update(extra)
        return props


class _PublisherSlot:
    """Owns a channel for the instant between acquiring it and the publisher taking it."""

    def on_method(self, channel: Channel, method: methods.Method, props: Any, body: bytes) -> None:
        """Nothing can arrive before the publisher exists."""

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """Likewise."""


_STEPS = {
    key: (getattr(Engine, "_" + action), state)
    for key, (action, state) in connection_states.TRANSITIONS.items()
}
_RECOVERY_STEPS = {
    key: (getattr(Engine, "_" + action), state)
    for key, (action, state) in connection_states.RECOVERY_TRANSITIONS.items()
}
"""The tables with each action name resolved to its method once."""


def _negotiate(ours: int, theirs: int) -> int:
    """Channel-max and frame-max: 0 means no limit, otherwise the smaller wins."""
    if ours == 0 or theirs == 0:
        return max(ours, theirs)
    return min(ours, theirs)
