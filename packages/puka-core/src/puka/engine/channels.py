"""Channels and the pool that hands them to operations.

A `Channel` follows the table in `channel_states`, assembles content (method, header, body
frames) into whole messages, and passes what arrives to its current owner: the operation using
it. The `ChannelPool` gives each operation in flight a channel of its own, reuses channels once
an operation is done with them, and recycles the numbers of channels that were closed.
"""

from __future__ import annotations

import io
from typing import Any, NoReturn, Protocol

from puka_spec import (
    BasicProperties,
    BodyFrame,
    ContentFrame,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    methods,
)
from puka_spec.exceptions import AMQPError, ChannelError, FrameError, UnexpectedFrame, error_for

from puka.engine.channel_states import LOCAL_INPUTS, TRANSITIONS, ChannelState
from puka.engine.connection_states import ConnectionState
from puka.engine.link import Link

__all__ = ["Channel", "ChannelLink", "ChannelPool", "ChannelUser"]

IDLE_CHANNELS_KEPT = 64
"""Open channels kept for reuse; channels freed beyond this are closed."""

SHORT_CHANNELS = IDLE_CHANNELS_KEPT
"""Channels that short operations (declares, binds, deletes, purges, gets) open for themselves:
with that many in flight, the next one waits, in order, for one of them to finish (or for an
idle channel). Opening and closing a channel costs the broker about as much as a declare, so
1000 pipelined declares finish sooner on 64 reused channels than on 1000 new ones. Operations
that hold a channel (consumes, transactions, the publisher) are not counted: they may hold
theirs for good. The same number as `IDLE_CHANNELS_KEPT`, so every channel a burst opens is
kept for the next one."""

_FIRST_ROOM = 65536
"""The first room reserved for a body arriving in pieces (or less, if the body is smaller)."""

_OPEN = ChannelState.OPEN  # read as globals: an Enum class attribute is slow on Python 3.11
_OPENING = ChannelState.OPENING
_CONNECTION_OPEN = ConnectionState.OPEN
_CONNECTION_CLOSING = ConnectionState.CLOSING
_METHOD_INPUTS = {
    methods.ChannelOpenOk.KEY: "open-ok",
    methods.ChannelClose.KEY: "close",
    methods.ChannelCloseOk.KEY: "close-ok",
    methods.ChannelFlow.KEY: "flow",
}


def error_from_close(method: methods.ConnectionClose | methods.ChannelClose) -> AMQPError:
    """The exception for a `connection.close` or `channel.close` the broker sent: the class of
    its reply code, with its text and the method it names."""
    return error_for(method.reply_code, method.reply_text, method.class_id, method.method_id)


class ChannelLink(Link, Protocol):
    """What channels need of their connection (`Engine`)."""

    max_message_size: int  # the largest body a content header may announce

    def channel_freed(self) -> None:
        """A channel became free: start what waits for one."""


class ChannelUser(Protocol):
    """What owns a channel: an operation, or the publisher."""

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """A method (with its content, if it carries any) arrived on the channel."""

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """The broker closed the channel with `error`."""


class Channel:
    """One AMQP channel."""

    __slots__ = (
        "_body",
        "_body_left",
        "_body_room",
        "_content",
        "_props",
        "engine",
        "last_tag",
        "number",
        "owner",
        "pool",
        "settled_to",
        "short",
        "state",
        "unacked",
    )

    def __init__(self, engine: ChannelLink, pool: ChannelPool, number: int) -> None:
        self.engine = engine
        self.pool = pool  # the connection's channels (a new pool for each transport)
        self.number = number
        self.state = ChannelState.OPENING
        self.owner: ChannelUser | None = None
        self.short = False  # owned by a short operation (counted against SHORT_CHANNELS)
        self.unacked: set[int] = set()  # delivery tags to settle (ack, reject, nack)
        self.last_tag = 0  # the last delivery tag added to `unacked`
        # every tag up to this one is settled (or was never ours to settle): an ack of it may
        # go on the wire as `multiple` (see `Settler.ack`)
        self.settled_to = 0
        self._content: methods.Method | None = None
        self._props: BasicProperties | None = None
        self._body: io.BytesIO | None = None  # a body arriving in several frames
        self._body_left = 0
        self._body_room = 0  # bytes of _body reserved so far

    def __repr__(self) -> str:
        return f"<Channel {self.number} {self.state.value} owner={type(self.owner).__name__}>"

    def dispatch(self, kind: str, payload: Any) -> None:
        """Feed one input through the state table: the only place a channel's state changes."""
        step = _STEPS.get((self.state, kind))
        if step is None:
            if kind in LOCAL_INPUTS:
                return  # (closing a channel that is closing or closed already)
            raise UnexpectedFrame(
                f"channel {self.number} in state {self.state.value} cannot take {kind}"
                + (f" ({payload.NAME})" if isinstance(payload, methods.Method) else "")
            )
        action, self.state = step
        action(self, payload)

    # --- actions --------------------------------------------------------------------------

    def ignore(self, payload: Any) -> None:
        """Drop input that arrives while the channel is closing."""

    def on_open_ok(self, payload: Any) -> None:
        """The channel is open; the owner's pipelined method is already on its way."""

    def on_flow(self, method: methods.ChannelFlow) -> None:
        """Answer channel.flow (RabbitMQ no longer sends it; the spec requires the answer)."""
        self.engine.send_method(self.number, methods.ChannelFlowOk(active=method.active))

    def on_method(self, method: methods.Method) -> None:
        """A method for the owner, or the start of content."""
        if self._content is not None:
            self._incomplete(method)
        if method.HAS_CONTENT:
            self._content = method
            self._props = None
            return
        if self.owner is not None:
            self.owner.on_method(self, method, None, b"")

    def on_header(self, frame: Any) -> None:
        """The content header of the pending content method."""
        method = self._content
        if method is None or self._props is not None:
            raise UnexpectedFrame(
                f"content header on channel {self.number} without a content method"
            )
        if frame.class_id != method.CLASS_ID:
            raise UnexpectedFrame(f"content header of class {frame.class_id} after {method.NAME}")
        size = frame.body_size
        self._check_size(size)
        self._props = frame.properties
        if size == 0:
            self._deliver(b"")
        else:
            self._body_left = size
            self._body = None

    def _incomplete(self, method: methods.Method) -> NoReturn:
        pending = self._content.NAME if self._content is not None else "?"
        raise UnexpectedFrame(
            f"{method.NAME} on channel {self.number} while content of {pending} is incomplete"
        )

    def _check_size(self, size: int) -> None:
        limit = self.engine.max_message_size
        if size > limit:
            raise FrameError(f"message body of {size} bytes exceeds the limit of {limit} bytes")

    def on_content(self, frame: ContentFrame) -> None:
        """A whole message at once: its method, header and body were read together."""
        if self._content is not None:
            self._incomplete(frame.method)
        if len(frame.body) > self.engine.max_message_size:  # (a call less than _check_size)
            self._check_size(len(frame.body))
        if self.owner is not None:
            self.owner.on_method(self, frame.method, frame.properties, frame.body)

    def on_body(self, payload: bytes | memoryview) -> None:
        """A slice of the pending message body: a whole body frame, or a piece of one."""
        if self._props is None:
            raise UnexpectedFrame(f"content body on channel {self.number} without a header")
        left = self._body_left - len(payload)
        if left < 0:
            raise FrameError(f"content body on channel {self.number} exceeds its declared size")
        body = self._body
        if body is None:
            if left == 0:  # the whole body in one frame: the common case
                self._deliver(payload if type(payload) is bytes else bytes(payload))
                return
            # Several frames, or pieces of one (streamed by the reader as they are received):
            # each is copied once into one buffer whose bytes become the body with no other
            # copy (BytesIO's getvalue hands its buffer over when it is exactly full).
            body = self._body = io.BytesIO()
            self._body_room = 0
        end = body.tell() + len(payload)
        if end > self._body_room:
            self._reserve(body, end, end + left)
        body.write(payload)
        self._body_left = left
        if left == 0:
            self._deliver(body.getvalue())

    def _reserve(self, body: io.BytesIO, end: int, size: int) -> None:
        """Make room in `body` for `end` bytes, towards the message's `size`.

        The room doubles, so a large body is moved a few times (not once per frame), and never
        exceeds twice what has arrived: a peer announcing a large body makes the client
        allocate only about what it sends. The last step reserves exactly `size`.
        """
        room = min(size, max(end, 2 * self._body_room, _FIRST_ROOM))
        pos = body.tell()
        body.seek(room - 1)
        body.write(b"\0")  # BytesIO grows to exactly `room` (zero-filled up to it)
        body.seek(pos)
        self._body_room = room

    def _deliver(self, body: bytes) -> None:
        method, props = self._content, self._props
        self._content = self._props = None
        self._body = None
        if self.owner is not None and method is not None:
            self.owner.on_method(self, method, props, body)

    def on_close(self, method: methods.ChannelClose) -> None:
        """The broker closed the channel: answer, free it, tell the owner why."""
        self.engine.send_method(self.number, methods.ChannelCloseOk())
        owner = self.owner
        self.pool.forget(self)  # the owner lets go of it there
        error = error_from_close(method)
        if owner is not None:
            owner.on_channel_closed(self, error)

    def on_close_while_closing(self, method: methods.ChannelClose) -> None:
        """Both sides closed at once: answer theirs, keep waiting for our close-ok."""
        self.engine.send_method(self.number, methods.ChannelCloseOk())

    def on_close_ok(self, payload: Any) -> None:
        """Our close completed: the number is free again."""
        self.pool.forget(self)

    # --- commands -------------------------------------------------------------------------

    def send_close(self, payload: None) -> None:
        """We close the channel (no error); its close-ok frees its number."""
        self.owner = None
        self.engine.send_method(self.number, methods.ChannelClose(200, "OK", 0, 0))

    def close(self) -> None:
        """Close the channel (no error): used to trim the idle pool."""
        self.dispatch("send-close", None)


_STEPS: dict[tuple[ChannelState, str], tuple[Any, ChannelState]] = {
    key: (getattr(Channel, action), state) for key, (action, state) in TRANSITIONS.items()
}
"""The table with each action name resolved to its function once."""


class ChannelPool:
    """Channels by number; idle open channels for reuse; numbers recycled."""

    def __init__(self, engine: ChannelLink) -> None:
        self.engine = engine
        self.by_number: dict[int, Channel] = {}
        self.idle: list[Channel] = []
        self._free_numbers: list[int] = []
        self._next_number = 1
        self.channel_max = 2047
        self.short_owned = 0  # channels owned by short operations

    def __len__(self) -> int:
        return len(self.by_number)

    def receive(self, number: int, frame: Any, state: ConnectionState) -> None:
        """A frame on channel `number` (not 0), the connection being in `state`: to the
        channel, as its table's input."""
        if state is not _CONNECTION_OPEN and state is not _CONNECTION_CLOSING:
            raise ChannelError(f"frame on channel {number} before the connection is open")
        channel = self.by_number.get(number)
        if channel is None:
            if type(frame) is HeartbeatFrame:  # 505 on any channel but 0, as RabbitMQ replies
                raise UnexpectedFrame(f"heartbeat frame on channel {number}")
            if state is _CONNECTION_CLOSING:
                return  # a channel we already forgot, answering after our close
            raise ChannelError(f"frame on channel {number}, which is not open")
        kind = type(frame)
        if kind is ContentFrame:
            if channel.state is _OPEN:  # the table's (OPEN, content) step, without a lookup
                channel.on_content(frame)
            else:
                channel.dispatch("content", frame)
        elif kind is MethodFrame:
            method = frame.method
            key = method.KEY
            if channel.state is _OPEN and key not in _METHOD_INPUTS:
                channel.on_method(method)  # the table's (OPEN, method) step, without a lookup
            else:
                channel.dispatch(_METHOD_INPUTS.get(key, "method"), method)
        elif kind is BodyFrame:
            channel.dispatch("body", frame.payload)
        elif kind is HeaderFrame:
            channel.dispatch("header", frame)
        else:
            raise UnexpectedFrame(f"heartbeat frame on channel {number}")

    def acquire(self, owner: ChannelUser, short: bool = False) -> Channel | None:
        """An open (or opening) channel for `owner`, or `None` if `owner` must wait for one.

        It waits when channel_max channels are in use, or, for a `short` operation, when
        `SHORT_CHANNELS` are held by short operations and no idle channel is left.
        """
        while self.idle:
            channel = self.idle.pop()
            if channel.state is _OPEN:
                self._own(channel, owner, short)
                return channel
        if short and self.short_owned >= SHORT_CHANNELS:
            return None
        if self._free_numbers:
            number = self._free_numbers.pop()
        elif self._next_number <= self.channel_max:
            number = self._next_number
            self._next_number += 1
        else:
            return None
        channel = Channel(self.engine, self, number)
        self._own(channel, owner, short)
        self.by_number[number] = channel
        self.engine.send_method(number, methods.ChannelOpen())
        return channel

    def _own(self, channel: Channel, owner: ChannelUser, short: bool) -> None:
        channel.owner = owner
        channel.short = short
        self.short_owned += short

    def _disown(self, channel: Channel) -> bool:
        """`channel` has no owner any more; whether a short operation's place became free."""
        channel.owner = None
        if not channel.short:
            return False
        channel.short = False
        self.short_owned -= 1
        return True

    def release(self, channel: Channel) -> None:
        """`channel`'s owner is done with it: keep it for reuse, or close it."""
        freed = self._disown(channel)
        if (
            channel.state is _OPEN or channel.state is _OPENING
        ) and not channel.unacked:  # else parked: `Settler` releases it once acks are done
            if len(self.idle) < IDLE_CHANNELS_KEPT:
                self.idle.append(channel)
            else:
                channel.close()
            freed = True
        if freed:
            self.engine.channel_freed()

    def forget(self, channel: Channel) -> None:
        """`channel` is closed: recycle its number."""
        self._disown(channel)
        if self.by_number.get(channel.number) is channel:
            del self.by_number[channel.number]
            self._free_numbers.append(channel.number)
        if channel in self.idle:
            self.idle.remove(channel)
        self.engine.channel_freed()

    def clear(self) -> None:
        """The connection is gone: every channel is closed."""
        for channel in self.by_number.values():
            channel.dispatch("lost", None)
            self._disown(channel)
        self.by_number.clear()
        self.idle.clear()
