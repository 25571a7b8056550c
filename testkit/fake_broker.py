"""An in-memory, sans-I/O fake AMQP 0-9-1 server that behaves like RabbitMQ 3.10.

`FakeBroker` is the server half of an in-memory broker/client byte pair: feed it the bytes a
client wrote with `receive_data()` and hand what `data_to_send()` returns back to the client.
There are no sockets, threads or clocks; everything happens synchronously inside those calls.

It implements the handshake (PLAIN and AMQPLAIN authentication, tune, vhosts), channels,
exchanges (direct, fanout, topic, headers, exchange-to-exchange bindings), queues, publishing
with mandatory returns, publisher confirms, consumers with prefetch, basic.get, acks, rejects,
nacks, recover, transactions and the error behaviour of RabbitMQ: soft errors close the channel
with ``channel.close`` (after which the channel ignores everything but ``channel.close-ok``),
hard errors and malformed input close the connection with ``connection.close``. Reply texts
follow RabbitMQ's ("NOT_FOUND - no queue 'q' in vhost '/'").

Tests steer it with knobs (`send_heartbeat`, `close_connection`, `close_channel`, `block`,
`unblock`, `cancel_consumer`, `delete_queue`, `publish`, `inject`, `confirm_batch`,
`nack_next`, ...) and inspect it through `state`, `open_channels`, `queues`, `exchanges`,
`consumers`, `received_methods`, `published` and friends.

    >>> broker = FakeBroker()
    >>> broker.receive_data(b"AMQP\\x00\\x00\\x09\\x01")
    >>> broker.state
    'awaiting_start_ok'
"""

from __future__ import annotations

import base64
import random
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple

from puka_spec import (
    HEARTBEAT_FRAME,
    AMQPError,
    BasicProperties,
    BodyFrame,
    FieldTable,
    FieldValue,
    Frame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    Method,
    MethodFrame,
    decode_table,
    encode_content,
    encode_method_frame,
    error_for,
    methods,
)
from puka_spec.constants import PROTOCOL_HEADER

__all__ = [
    "DEFAULT_CAPABILITIES",
    "Binding",
    "Channel",
    "Consumer",
    "Exchange",
    "FakeBroker",
    "Message",
    "Queue",
    "Tuning",
    "headers_match",
    "topic_matches",
]

DEFAULT_CAPABILITIES: dict[str, FieldValue] = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "consumer_priorities": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
}
"""The capabilities RabbitMQ 3.10 advertises in ``connection.start``."""

EXCHANGE_TYPES = frozenset({"direct", "fanout", "topic", "headers"})

_REPLY_NAMES = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED",
    402: "INVALID_PATH",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    501: "FRAME_ERROR",
    502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID",
    504: "CHANNEL_ERROR",
    505: "UNEXPECTED_FRAME",
    506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}

# RabbitMQ's names for the connection states, used in its error texts.
_RABBIT_STATES = {
    "awaiting_start_ok": "starting",
    "awaiting_tune_ok": "tuning",
    "awaiting_open": "opening",
    "open": "running",
}

_UNLIMITED_FRAME = (1 << 32) + 8
_AUTH_REFUSED = (
    "ACCESS_REFUSED - Login was refused using authentication mechanism {}. "
    "For details see the broker logfile."
)


def _fail(code: int, detail: str, class_id: int = 0, method_id: int = 0) -> AMQPError:
    """The error to raise for `code`, its text prefixed with the code's name as RabbitMQ does."""
    return error_for(code, f"{_REPLY_NAMES[code]} - {detail}", class_id, method_id)


def _named_text(exc: AMQPError) -> str:
    name = _REPLY_NAMES.get(exc.reply_code, str(exc.reply_code))
    text = exc.reply_text
    return text if text.startswith(name) else f"{name} - {text}"


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class Message:
    """A message as a queue holds it (and as the client published it, in `published`)."""

    body: bytes
    properties: BasicProperties
    exchange: str
    routing_key: str
    redelivered: bool = False


class Binding(NamedTuple):
    """A binding from an exchange to a queue (`to_queue`) or to another exchange."""

    destination: str
    to_queue: bool
    routing_key: str
    arguments: FieldTable


@dataclass(eq=False)
class Exchange:
    """An exchange and the bindings of which it is the source."""

    name: str
    type: str
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: FieldTable = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)

    def matches(self, binding: Binding, routing_key: str, headers: FieldTable | None) -> bool:
        """Whether a message with this routing key and headers follows `binding`."""
        if self.type == "fanout":
            return True
        if self.type == "topic":
            return topic_matches(binding.routing_key, routing_key)
        if self.type == "headers":
            return headers_match(binding.arguments, headers or {})
        return binding.routing_key == routing_key


@dataclass(eq=False)
class Consumer:
    """A consumer: its tag, channel number, queue, flags and how many deliveries it has unacked."""

    tag: str
    channel: int
    queue: str
    no_ack: bool = False
    exclusive: bool = False
    prefetch: int = 0
    arguments: FieldTable = field(default_factory=dict)
    unacked: int = 0


@dataclass(eq=False)
class Queue:
    """A queue: its flags, the messages ready for delivery (head first) and its consumers."""

    name: str
    durable: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: FieldTable = field(default_factory=dict)
    messages: deque[Message] = field(default_factory=deque)
    consumers: list[Consumer] = field(default_factory=list)


@dataclass(eq=False)
class _Unacked:
    tag: int
    queue: str
    message: Message
    consumer: Consumer | None  # None for basic.get


@dataclass(eq=False)
class _Content:
    """A publish whose header and body frames are still arriving."""

    publish: methods.BasicPublish
    properties: BasicProperties | None = None
    body_size: int = 0
    parts: list[bytes] = field(default_factory=list)
    received: int = 0


@dataclass(eq=False)
class Channel:
    """An open channel, or one the broker closed that awaits ``channel.close-ok`` (`closing`)."""

    number: int
    closing: bool = False
    consumers: dict[str, Consumer] = field(default_factory=dict)
    unacked: dict[int, _Unacked] = field(default_factory=dict)  # by delivery tag, ascending
    delivery_tag: int = 0  # last tag of basic.deliver / basic.get-ok
    prefetch_count: int = 0  # for consumers created from now on (basic.qos global=False)
    global_prefetch: int = 0  # for the whole channel (basic.qos global=True)
    confirm: bool = False
    publish_seq: int = 0  # last publish sequence number in confirm mode
    unconfirmed: list[int] = field(default_factory=list)  # acks held back by confirm_batch
    tx: bool = False
    tx_ops: list[Callable[[], None]] = field(default_factory=list)
    last_queue: str = ""  # the queue an empty queue name refers to
    content: _Content | None = None

    @property
    def unacked_tags(self) -> list[int]:
        """Delivery tags awaiting an ack, ascending."""
        return list(self.unacked)


class Tuning(NamedTuple):
    """The values negotiated by ``connection.tune-ok``."""

    channel_max: int
    frame_max: int
    heartbeat: int


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic binding key (``*`` one word, ``#`` zero or more) matches a routing key."""
    words = routing_key.split(".") if routing_key else []
    parts = pattern.split(".") if pattern else []

    def closure(states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < len(parts) and parts[i] == "#" and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states

    states = closure({0})
    for word in words:
        following: set[int] = set()
        for i in states:
            if i < len(parts):
                if parts[i] == "#":
                    following.add(i)
                elif parts[i] in ("*", word):
                    following.add(i + 1)
        states = closure(following)
        if not states:
            return False
    return len(parts) in states


def headers_match(arguments: FieldTable, headers: FieldTable) -> bool:
    """Whether message headers match a headers-exchange binding (``x-match`` all or any)."""
    how = arguments.get("x-match", "all")
    with_x = how in ("all-with-x", "any-with-x")
    wanted = {k: v for k, v in arguments.items() if with_x or not k.startswith("x-")}
    hits = [k in headers and (v is None or headers[k] == v) for k, v in wanted.items()]
    if how in ("any", "any-with-x"):
        return any(hits)
    return all(hits)


# ---------------------------------------------------------------------------------------------
# The broker
# ---------------------------------------------------------------------------------------------


class FakeBroker:
    """A fake RabbitMQ serving one client connection.

    Bytes in with `receive_data`, bytes out with `data_to_send`. `seed` makes the generated
    names (``amq.gen-...``, ``amq.ctag-...``) reproducible.
    """

    def __init__(
        self,
        *,
        frame_max: int = 131072,
        channel_max: int = 2047,
        heartbeat: int = 60,
        users: dict[str, str] | None = None,
        vhosts: set[str] | frozenset[str] | None = None,
        server_properties: FieldTable | None = None,
        capabilities: dict[str, FieldValue] | None = None,
        seed: int = 0,
    ) -> None:
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = heartbeat
        self.users = {"guest": "guest"} if users is None else dict(users)
        self.vhosts = {"/"} if vhosts is None else set(vhosts)
        caps = {**DEFAULT_CAPABILITIES, **(capabilities or {})}
        self.server_properties: FieldTable = {
            "capabilities": caps,
            "cluster_name": "rabbit@fake",
            "copyright": "Copyright (c) 2007-2022 VMware, Inc. or its affiliates.",
            "information": "Licensed under the MPL 2.0. Website: https://rabbitmq.com",
            "platform": "Erlang/OTP 24.3",
            "product": "RabbitMQ",
            "version": "3.10.0",
            **(server_properties or {}),
        }

        # Knobs.
        self.confirm_batch = 1
        """Acknowledge publishes in confirm mode with one multiple ack per this many."""
        self.nack_next = 0
        """Nack (and drop) this many of the next publishes on confirm channels."""
        self.stuck_channels: set[int] = set()
        """Confirm channels on which every publish is nacked (and dropped) until they close, as
        RabbitMQ 3.10 does on a channel opened before a killed quorum leader was replaced."""

        # Introspection.
        self.state = "awaiting_header"
        self.client_properties: FieldTable = {}
        self.user: str | None = None
        self.vhost: str | None = None
        self.negotiated: Tuning | None = None
        self.close_reason: methods.ConnectionClose | None = None
        self.protocol_errors: list[tuple[int, str]] = []
        self.received_methods: list[tuple[int, Method]] = []
        self.published: list[Message] = []
        self.heartbeats_received = 0
        self.channels: dict[int, Channel] = {}
        self.queues: dict[str, Queue] = {}
        self.exchanges: dict[str, Exchange] = {}
        for name, kind in [
            ("", "direct"),
            ("amq.direct", "direct"),
            ("amq.fanout", "fanout"),
            ("amq.topic", "topic"),
            ("amq.headers", "headers"),
            ("amq.match", "headers"),
        ]:
            self.exchanges[name] = Exchange(name, kind, durable=True)

        self._rng = random.Random(seed)
        self._out: list[bytes] = []
        self._header = b""
        self._reader = FrameReader()
        self._channel_handlers: dict[type[Method], Callable[[Channel, Any], None]] = {
            methods.ChannelOpen: self._channel_open,
            methods.ChannelClose: self._channel_close,
            methods.ChannelFlow: self._channel_flow,
            methods.ExchangeDeclare: self._exchange_declare,
            methods.ExchangeDelete: self._exchange_delete,
            methods.ExchangeBind: self._exchange_bind,
            methods.ExchangeUnbind: self._exchange_unbind,
            methods.QueueDeclare: self._queue_declare,
            methods.QueueBind: self._queue_bind,
            methods.QueueUnbind: self._queue_unbind,
            methods.QueuePurge: self._queue_purge,
            methods.QueueDelete: self._queue_delete,
            methods.BasicQos: self._basic_qos,
            methods.BasicConsume: self._basic_consume,
            methods.BasicCancel: self._basic_cancel,
            methods.BasicPublish: self._basic_publish,
            methods.BasicGet: self._basic_get,
            methods.BasicAck: self._basic_ack,
            methods.BasicReject: self._basic_reject,
            methods.BasicNack: self._basic_nack,
            methods.BasicRecover: self._basic_recover,
            methods.BasicRecoverAsync: self._basic_recover,
            methods.ConfirmSelect: self._confirm_select,
            methods.TxSelect: self._tx_select,
            methods.TxCommit: self._tx_commit,
            methods.TxRollback: self._tx_rollback,
        }

    # -- bytes in, bytes out ------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Process bytes the client wrote; replies accumulate for `data_to_send`."""
        if self.state == "closed" or not data:
            return
        if self.state == "awaiting_header":
            self._header += data
            if len(self._header) < len(PROTOCOL_HEADER):
                return
            header, data = self._header[:8], self._header[8:]
            self._header = b""
            if header != PROTOCOL_HEADER:
                self._out.append(PROTOCOL_HEADER)
                self.state = "closed"
                return
            self._send(
                0,
                methods.ConnectionStart(
                    version_major=0,
                    version_minor=9,
                    server_properties=self.server_properties,
                    mechanisms=b"PLAIN AMQPLAIN",
                    locales=b"en_US",
                ),
            )
            self.state = "awaiting_start_ok"
        self._reader.feed(data)
        while self.state != "closed":
            try:
                frame = self._reader.read_frame()
            except AMQPError as exc:
                # The stream is unusable past a malformed frame: drop what is buffered and read
                # whatever comes next (the client's close-ok) afresh.
                self._reader = FrameReader(self._reader.frame_max)
                if self.state != "closing":
                    self._close_connection(
                        exc.reply_code, _named_text(exc), exc.class_id, exc.method_id
                    )
                return
            if frame is None:
                return
            self._handle_frame(frame)
            self._dispatch()

    def data_to_send(self) -> bytes:
        """The bytes for the client written since the last call."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    # -- knobs --------------------------------------------------------------------------------

    def send_heartbeat(self) -> None:
        """Send a heartbeat frame."""
        self._out.append(HEARTBEAT_FRAME)

    def inject(self, raw: bytes) -> None:
        """Append arbitrary bytes to the output (hostile-input tests)."""
        self._out.append(bytes(raw))

    def close_connection(
        self,
        code: int = 320,
        text: str = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
    ) -> None:
        """Close the connection from the broker side (``connection.close``), then await close-ok."""
        self._close_connection(code, text, 0, 0)

    def close_channel(
        self,
        channel: int,
        code: int = 406,
        text: str = "PRECONDITION_FAILED - closed by the fake broker",
    ) -> None:
        """Close an open channel from the broker side (``channel.close``)."""
        ch = self.channels.get(channel)
        if ch is None or ch.closing:
            raise KeyError(f"channel {channel} is not open")
        self._server_close_channel(ch, code, text, 0, 0)

    def block(self, reason: str = "low on memory") -> bool:
        """Send ``connection.blocked`` if the client advertised it; return whether it was sent."""
        if not self.client_capable("connection.blocked"):
            return False
        self._send(0, methods.ConnectionBlocked(reason=reason))
        return True

    def unblock(self) -> bool:
        """Send ``connection.unblocked`` if the client advertised it; return whether it was sent."""
        if not self.client_capable("connection.blocked"):
            return False
        self._send(0, methods.ConnectionUnblocked())
        return True

    def cancel_consumer(self, tag: str) -> bool:
        """Cancel a consumer from the broker side; return whether the client was told.

        The client hears of it (a ``basic.cancel``) only if it advertised consumer_cancel_notify.
        """
        consumer = self.consumers[tag]
        self._remove_consumer(consumer)
        return self._notify_cancel(consumer)

    def delete_queue(self, name: str) -> int:
        """Delete a queue as an operator would; its consumers are cancelled. Returns its depth."""
        queue = self.queues[name]
        count = len(queue.messages)
        self._remove_queue(queue)
        return count

    def declare_queue(
        self,
        name: str,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: FieldTable | None = None,
    ) -> Queue:
        """Create a queue as another connection would (no reply is sent)."""
        queue = Queue(name, durable, exclusive, auto_delete, dict(arguments or {}))
        self.queues[name] = queue
        return queue

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | None = None,
    ) -> list[str]:
        """Route a message as another publisher would; return the queues it reached."""
        message = Message(body, properties or BasicProperties(), exchange, routing_key)
        if exchange not in self.exchanges:
            raise KeyError(f"no exchange {exchange!r}")
        names = self._route(message)
        for name in names:
            self.queues[name].messages.append(replace(message))
        self._dispatch()
        return names

    def flush_confirms(self) -> None:
        """Send the acks `confirm_batch` is holding back, one multiple ack per channel."""
        for ch in self.channels.values():
            if not ch.closing:
                self._flush_confirms(ch)

    # -- introspection ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the connection is over."""
        return self.state == "closed"

    @property
    def open_channels(self) -> set[int]:
        """Numbers of the open channels (not counting those awaiting close-ok)."""
        return {n for n, ch in self.channels.items() if not ch.closing}

    @property
    def closing_channels(self) -> set[int]:
        """Numbers of the channels the broker closed and that await ``channel.close-ok``."""
        return {n for n, ch in self.channels.items() if ch.closing}

    @property
    def consumers(self) -> dict[str, Consumer]:
        """Every consumer of the connection, by tag."""
        return {tag: c for ch in self.channels.values() for tag, c in ch.consumers.items()}

    def client_capable(self, capability: str) -> bool:
        """Whether the client advertised `capability` in its start-ok client_properties."""
        caps = self.client_properties.get("capabilities")
        return isinstance(caps, dict) and caps.get(capability) is True

    # -- output helpers -----------------------------------------------------------------------

    def _send(self, channel: int, method: Method) -> None:
        self._out.append(encode_method_frame(channel, method))

    def _send_content(
        self, channel: int, method: Method, properties: BasicProperties, body: bytes
    ) -> None:
        frame_max = self.negotiated.frame_max if self.negotiated else self.frame_max
        self._out.append(encode_content(channel, method, properties, body, frame_max))

    def _gen_name(self, prefix: str) -> str:
        return prefix + base64.urlsafe_b64encode(self._rng.randbytes(16)).rstrip(b"=").decode()

    def _resource(self, kind: str, name: str) -> str:
        return f"{kind} '{name}' in vhost '{self.vhost or '/'}'"

    # -- frames -------------------------------------------------------------------------------

    def _handle_frame(self, frame: Frame) -> None:
        method = frame.method if isinstance(frame, MethodFrame) else None
        if method is not None:
            self.received_methods.append((frame.channel, method))
        if isinstance(frame, HeartbeatFrame) and frame.channel == 0:
            self.heartbeats_received += 1
            return
        if self.state == "closing":
            self._closing_frame(frame)
            return
        try:
            if frame.channel == 0:
                self._connection_frame(frame)
            elif self.state != "open":
                raise _fail(505, f"frame on channel {frame.channel} before connection.open-ok")
            else:
                self._channel_frame(frame)
        except AMQPError as exc:
            class_id, method_id = exc.class_id, exc.method_id
            if not class_id and method is not None:
                class_id, method_id = method.CLASS_ID, method.METHOD_ID
            ch = self.channels.get(frame.channel)
            if exc.soft and ch is not None:
                self._server_close_channel(ch, exc.reply_code, exc.reply_text, class_id, method_id)
            else:
                self._close_connection(exc.reply_code, _named_text(exc), class_id, method_id)

    def _closing_frame(self, frame: Frame) -> None:
        """After the broker's connection.close only close-ok (or a crossing close) matters."""
        if frame.channel != 0 or not isinstance(frame, MethodFrame):
            return
        if isinstance(frame.method, methods.ConnectionClose):
            self.close_reason = frame.method
            self._send(0, methods.ConnectionCloseOk())
            self.state = "closed"
        elif isinstance(frame.method, methods.ConnectionCloseOk):
            self.state = "closed"

    # -- connection (channel 0) ---------------------------------------------------------------

    def _connection_frame(self, frame: Frame) -> None:
        if not isinstance(frame, MethodFrame):
            raise _fail(505, f"expected method frame on channel 0, got {type(frame).__name__}")
        method = frame.method
        if isinstance(method, methods.ConnectionClose):
            self.close_reason = method
            self._send(0, methods.ConnectionCloseOk())
            self._teardown()
            self.state = "closed"
        elif self.state == "awaiting_start_ok" and isinstance(method, methods.ConnectionStartOk):
            self._start_ok(method)
        elif self.state == "awaiting_tune_ok" and isinstance(method, methods.ConnectionTuneOk):
            self._tune_ok(method)
        elif self.state == "awaiting_open" and isinstance(method, methods.ConnectionOpen):
            if method.virtual_host not in self.vhosts:
                raise _fail(530, f"vhost {method.virtual_host} not found")
            self.vhost = method.virtual_host
            self._send(0, methods.ConnectionOpenOk())
            self.state = "open"
        elif self.state == "open" and isinstance(method, methods.ConnectionUpdateSecret):
            self._send(0, methods.ConnectionUpdateSecretOk())
        else:
            state = _RABBIT_STATES.get(self.state, self.state)
            raise _fail(504, f"unexpected method in connection state {state}")

    def _start_ok(self, method: methods.ConnectionStartOk) -> None:
        self.client_properties = method.client_properties
        user: object = None
        password: object = None
        if method.mechanism == "PLAIN":
            parts = method.response.split(b"\0")
            if len(parts) == 3:
                user, password = (
                    parts[1].decode(errors="replace"),
                    parts[2].decode(errors="replace"),
                )
        elif method.mechanism == "AMQPLAIN":
            response = method.response
            try:
                table, _ = decode_table(struct.pack(">I", len(response)) + response)
            except AMQPError:
                table = {}
            user, password = table.get("LOGIN"), table.get("PASSWORD")
        else:
            raise _fail(503, f"unknown authentication mechanism '{method.mechanism}'")
        if not isinstance(user, str) or self.users.get(user) != password:
            self._close_connection(403, _AUTH_REFUSED.format(method.mechanism), 0, 0)
            return
        self.user = user
        self._send(0, methods.ConnectionTune(self.channel_max, self.frame_max, self.heartbeat))
        self.state = "awaiting_tune_ok"

    def _tune_ok(self, method: methods.ConnectionTuneOk) -> None:
        for name, minimum, value, server in [
            ("channel_max", 1, method.channel_max, self.channel_max),
            ("frame_max", 4096, method.frame_max, self.frame_max),
        ]:
            if value != 0 and value < minimum:
                detail = f"negotiated {name} = {value} is lower than the minimum allowed value"
                raise _fail(530, f"{detail} ({minimum})", 10, 30)
            if server != 0 and (value == 0 or value > server):
                detail = f"negotiated {name} = {value} is higher than the maximum allowed value"
                raise _fail(530, f"{detail} ({server})", 10, 30)
        self.negotiated = Tuning(method.channel_max, method.frame_max, method.heartbeat)
        self._reader.frame_max = method.frame_max or _UNLIMITED_FRAME
        self.state = "awaiting_open"

    def _close_connection(self, code: int, text: str, class_id: int, method_id: int) -> None:
        self.protocol_errors.append((code, text))
        self._send(0, methods.ConnectionClose(code, text, class_id, method_id))
        self._teardown()
        self.state = "closing"

    def _teardown(self) -> None:
        """The connection is over: release every channel and delete the exclusive queues."""
        for ch in list(self.channels.values()):
            self._release_channel(ch)
        self.channels.clear()
        for queue in list(self.queues.values()):
            if queue.exclusive:
                self._remove_queue(queue, notify=False)

    # -- channels -----------------------------------------------------------------------------

    def _channel_frame(self, frame: Frame) -> None:
        number = frame.channel
        ch = self.channels.get(number)
        if ch is None:
            limit = self.negotiated.channel_max if self.negotiated else self.channel_max
            if limit and number > limit:
                raise _fail(504, f"channel number {number} exceeds channel_max ({limit})")
            if isinstance(frame, MethodFrame) and isinstance(frame.method, methods.ChannelOpen):
                self.channels[number] = Channel(number)
                self._send(number, methods.ChannelOpenOk())
                return
            raise _fail(504, "expected 'channel.open'")
        if ch.closing:  # closed by the broker: everything but close-ok is ignored
            if isinstance(frame, MethodFrame):
                if isinstance(frame.method, methods.ChannelCloseOk):
                    del self.channels[number]
                elif isinstance(frame.method, methods.ChannelClose):
                    self._send(number, methods.ChannelCloseOk())
            return
        if ch.content is not None:
            self._content_frame(ch, frame)
            return
        if not isinstance(frame, MethodFrame):
            raise _fail(505, "expected method frame, got non method frame instead")
        handler = self._channel_handlers.get(type(frame.method))
        if handler is None:
            raise _fail(503, "unimplemented method")
        handler(ch, frame.method)

    def _server_close_channel(
        self, ch: Channel, code: int, text: str, class_id: int, method_id: int
    ) -> None:
        self._send(ch.number, methods.ChannelClose(code, text, class_id, method_id))
        self._release_channel(ch)
        ch.closing = True

    def _release_channel(self, ch: Channel) -> None:
        """Requeue the channel's unacked messages and remove its consumers."""
        self._settle(ch, list(ch.unacked), requeue=True)
        for consumer in list(ch.consumers.values()):
            self._remove_consumer(consumer)
        ch.content = None
        ch.tx_ops.clear()
        ch.unconfirmed.clear()

    def _channel_open(self, ch: Channel, _method: methods.ChannelOpen) -> None:
        raise _fail(504, "second 'channel.open' seen")

    def _channel_close(self, ch: Channel, _method: methods.ChannelClose) -> None:
        self.stuck_channels.discard(ch.number)
        self._release_channel(ch)
        del self.channels[ch.number]
        self._send(ch.number, methods.ChannelCloseOk())

    def _channel_flow(self, ch: Channel, method: methods.ChannelFlow) -> None:
        if not method.active:
            raise _fail(540, "active=false")
        self._send(ch.number, methods.ChannelFlowOk(active=True))

    # -- exchanges ----------------------------------------------------------------------------

    def _exchange_declare(self, ch: Channel, method: methods.ExchangeDeclare) -> None:
        name = method.exchange
        if method.passive:
            if name == "":
                raise _fail(403, "operation not permitted on the default exchange")
            if name not in self.exchanges:
                raise _fail(404, f"no {self._resource('exchange', name)}")
        else:
            if method.type not in EXCHANGE_TYPES:
                raise _fail(503, f"unknown exchange type '{method.type}'")
            if name == "":
                raise _fail(403, "operation not permitted on the default exchange")
            existing = self.exchanges.get(name)
            if existing is None:
                if name.startswith("amq."):
                    raise _fail(403, f"exchange name '{name}' contains reserved prefix 'amq.*'")
                self.exchanges[name] = Exchange(
                    name,
                    method.type,
                    method.durable,
                    method.auto_delete,
                    method.internal,
                    dict(method.arguments),
                )
            else:
                resource = self._resource("exchange", name)
                _assert_equivalent(resource, "type", existing.type, method.type)
                _assert_equivalent(resource, "durable", existing.durable, method.durable)
                _assert_equivalent(
                    resource, "auto_delete", existing.auto_delete, method.auto_delete
                )
                _assert_equivalent(resource, "internal", existing.internal, method.internal)
                _assert_args_equivalent(resource, existing.arguments, method.arguments)
        if not method.no_wait:
            self._send(ch.number, methods.ExchangeDeclareOk())

    def _exchange_delete(self, ch: Channel, method: methods.ExchangeDelete) -> None:
        name = method.exchange
        if name == "":
            raise _fail(403, "operation not permitted on the default exchange")
        if name.startswith("amq."):
            raise _fail(403, f"deletion of system {self._resource('exchange', name)} not allowed")
        exchange = self.exchanges.get(name)
        if exchange is not None:
            if method.if_unused and exchange.bindings:
                raise _fail(406, f"{self._resource('exchange', name)} in use")
            self._remove_exchange(exchange)
        if not method.no_wait:
            self._send(ch.number, methods.ExchangeDeleteOk())

    def _exchange_bind(self, ch: Channel, method: methods.ExchangeBind) -> None:
        source = self._binding_ends(method.source, method.destination, to_queue=False)
        binding = Binding(method.destination, False, method.routing_key, dict(method.arguments))
        if binding not in source.bindings:
            source.bindings.append(binding)
        if not method.no_wait:
            self._send(ch.number, methods.ExchangeBindOk())

    def _exchange_unbind(self, ch: Channel, method: methods.ExchangeUnbind) -> None:
        source = self._binding_ends(method.source, method.destination, to_queue=False)
        binding = Binding(method.destination, False, method.routing_key, dict(method.arguments))
        self._unbind(source, binding)
        if not method.no_wait:
            self._send(ch.number, methods.ExchangeUnbindOk())

    def _binding_ends(self, source: str, destination: str, *, to_queue: bool) -> Exchange:
        """Check both ends of a binding exist; return the source exchange."""
        if source == "" or (destination == "" and not to_queue):
            raise _fail(403, "operation not permitted on the default exchange")
        exchange = self.exchanges.get(source)
        if exchange is None:
            raise _fail(404, f"no {self._resource('exchange', source)}")
        if to_queue and destination not in self.queues:
            raise _fail(404, f"no {self._resource('queue', destination)}")
        if not to_queue and destination not in self.exchanges:
            raise _fail(404, f"no {self._resource('exchange', destination)}")
        return exchange

    def _unbind(self, source: Exchange, binding: Binding) -> None:
        if binding in source.bindings:
            source.bindings.remove(binding)
            if source.auto_delete and not source.bindings:
                self._remove_exchange(source)

    def _remove_exchange(self, exchange: Exchange) -> None:
        self.exchanges.pop(exchange.name, None)
        for other in list(self.exchanges.values()):
            for binding in list(other.bindings):
                if not binding.to_queue and binding.destination == exchange.name:
                    self._unbind(other, binding)

    # -- queues -------------------------------------------------------------------------------

    def _queue_name(self, ch: Channel, name: str) -> str:
        """RabbitMQ's shortcut: an empty queue name is the channel's last declared queue."""
        if name:
            return name
        if not ch.last_queue:
            raise _fail(404, "no previously declared queue")
        return ch.last_queue

    def _existing_queue(self, name: str) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            raise _fail(404, f"no {self._resource('queue', name)}")
        return queue

    def _queue_declare(self, ch: Channel, method: methods.QueueDeclare) -> None:
        name = method.queue
        if method.passive:
            queue = self._existing_queue(name)
        else:
            if not name:
                name = self._gen_name("amq.gen-")
            elif name.startswith("amq."):
                raise _fail(403, f"queue name '{name}' contains reserved prefix 'amq.*'")
            existing = self.queues.get(name)
            if existing is None:
                queue = self.declare_queue(
                    name,
                    durable=method.durable,
                    exclusive=method.exclusive,
                    auto_delete=method.auto_delete,
                    arguments=method.arguments,
                )
            else:
                queue = existing
                resource = self._resource("queue", name)
                if queue.exclusive != method.exclusive:
                    raise _fail(
                        405,
                        f"cannot obtain exclusive access to locked {resource}. It could be "
                        "originally declared on another connection or the exclusive property "
                        "value does not match that of the original declaration.",
                    )
                _assert_equivalent(resource, "durable", queue.durable, method.durable)
                _assert_equivalent(resource, "auto_delete", queue.auto_delete, method.auto_delete)
                _assert_args_equivalent(resource, queue.arguments, method.arguments)
        ch.last_queue = queue.name
        if not method.no_wait:
            self._send(
                ch.number,
                methods.QueueDeclareOk(queue.name, len(queue.messages), len(queue.consumers)),
            )

    def _queue_bind(self, ch: Channel, method: methods.QueueBind) -> None:
        name = self._queue_name(ch, method.queue)
        source = self._binding_ends(method.exchange, name, to_queue=True)
        binding = Binding(name, True, method.routing_key, dict(method.arguments))
        if binding not in source.bindings:
            source.bindings.append(binding)
        if not method.no_wait:
            self._send(ch.number, methods.QueueBindOk())

    def _queue_unbind(self, ch: Channel, method: methods.QueueUnbind) -> None:
        name = self._queue_name(ch, method.queue)
        source = self._binding_ends(method.exchange, name, to_queue=True)
        self._unbind(source, Binding(name, True, method.routing_key, dict(method.arguments)))
        self._send(ch.number, methods.QueueUnbindOk())

    def _queue_purge(self, ch: Channel, method: methods.QueuePurge) -> None:
        queue = self._existing_queue(self._queue_name(ch, method.queue))
        count = len(queue.messages)
        queue.messages.clear()
        if not method.no_wait:
            self._send(ch.number, methods.QueuePurgeOk(count))

    def _queue_delete(self, ch: Channel, method: methods.QueueDelete) -> None:
        queue = self.queues.get(self._queue_name(ch, method.queue))
        count = 0
        if queue is not None:
            resource = self._resource("queue", queue.name)
            if method.if_empty and queue.messages:
                raise _fail(406, f"{resource} is not empty")
            if method.if_unused and queue.consumers:
                raise _fail(406, f"{resource} in use")
            count = len(queue.messages)
            self._remove_queue(queue)
        if not method.no_wait:
            self._send(ch.number, methods.QueueDeleteOk(count))

    def _remove_queue(self, queue: Queue, *, notify: bool = True) -> None:
        """Delete a queue, its bindings and its consumers (told with basic.cancel if `notify`)."""
        if self.queues.get(queue.name) is not queue:
            return
        del self.queues[queue.name]
        for exchange in list(self.exchanges.values()):
            for binding in list(exchange.bindings):
                if binding.to_queue and binding.destination == queue.name:
                    self._unbind(exchange, binding)
        for consumer in list(queue.consumers):
            queue.consumers.remove(consumer)
            ch = self.channels.get(consumer.channel)
            if ch is not None:
                ch.consumers.pop(consumer.tag, None)
            if notify:
                self._notify_cancel(consumer)

    # -- consumers ----------------------------------------------------------------------------

    def _basic_qos(self, ch: Channel, method: methods.BasicQos) -> None:
        if method.prefetch_size:
            raise _fail(540, f"prefetch_size!=0 ({method.prefetch_size})")
        if method.global_:
            ch.global_prefetch = method.prefetch_count
        else:
            ch.prefetch_count = method.prefetch_count
        self._send(ch.number, methods.BasicQosOk())

    def _basic_consume(self, ch: Channel, method: methods.BasicConsume) -> None:
        queue = self._existing_queue(self._queue_name(ch, method.queue))
        tag = method.consumer_tag or self._gen_name("amq.ctag-")
        if tag in ch.consumers:
            raise _fail(530, f"attempt to reuse consumer tag '{tag}'")
        if queue.consumers and (method.exclusive or any(c.exclusive for c in queue.consumers)):
            raise _fail(403, f"{self._resource('queue', queue.name)} in exclusive use")
        consumer = Consumer(
            tag,
            ch.number,
            queue.name,
            method.no_ack,
            method.exclusive,
            ch.prefetch_count,
            dict(method.arguments),
        )
        ch.consumers[tag] = consumer
        queue.consumers.append(consumer)
        if not method.no_wait:
            self._send(ch.number, methods.BasicConsumeOk(tag))

    def _basic_cancel(self, ch: Channel, method: methods.BasicCancel) -> None:
        consumer = ch.consumers.get(method.consumer_tag)
        if consumer is not None:
            self._remove_consumer(consumer)
        if not method.no_wait:
            self._send(ch.number, methods.BasicCancelOk(method.consumer_tag))

    def _remove_consumer(self, consumer: Consumer) -> None:
        """Remove a consumer; an auto-delete queue goes with its last consumer."""
        ch = self.channels.get(consumer.channel)
        if ch is not None:
            ch.consumers.pop(consumer.tag, None)
        queue = self.queues.get(consumer.queue)
        if queue is not None and consumer in queue.consumers:
            queue.consumers.remove(consumer)
            if queue.auto_delete and not queue.consumers:
                self._remove_queue(queue, notify=False)

    def _notify_cancel(self, consumer: Consumer) -> bool:
        ch = self.channels.get(consumer.channel)
        if ch is None or ch.closing or not self.client_capable("consumer_cancel_notify"):
            return False
        self._send(ch.number, methods.BasicCancel(consumer.tag, no_wait=True))
        return True

    def _dispatch(self) -> None:
        """Deliver ready messages to consumers that may take them, round-robin per queue."""
        for queue in list(self.queues.values()):
            while queue.messages:
                consumer = next((c for c in queue.consumers if self._can_deliver(c)), None)
                if consumer is None:
                    break
                queue.consumers.remove(consumer)
                queue.consumers.append(consumer)
                self._deliver(consumer, queue.messages.popleft())

    def _can_deliver(self, consumer: Consumer) -> bool:
        ch = self.channels.get(consumer.channel)
        if ch is None or ch.closing or self.state != "open":
            return False
        if consumer.no_ack:
            return True
        if consumer.prefetch and consumer.unacked >= consumer.prefetch:
            return False
        if ch.global_prefetch:
            in_flight = sum(1 for u in ch.unacked.values() if u.consumer is not None)
            return in_flight < ch.global_prefetch
        return True

    def _deliver(self, consumer: Consumer, message: Message) -> None:
        ch = self.channels[consumer.channel]
        ch.delivery_tag += 1
        tag = ch.delivery_tag
        if not consumer.no_ack:
            ch.unacked[tag] = _Unacked(tag, consumer.queue, message, consumer)
            consumer.unacked += 1
        deliver = methods.BasicDeliver(
            consumer.tag, tag, message.redelivered, message.exchange, message.routing_key
        )
        self._send_content(ch.number, deliver, message.properties, message.body)

    # -- basic.get, acks ----------------------------------------------------------------------

    def _basic_get(self, ch: Channel, method: methods.BasicGet) -> None:
        queue = self._existing_queue(self._queue_name(ch, method.queue))
        if not queue.messages:
            self._send(ch.number, methods.BasicGetEmpty())
            return
        message = queue.messages.popleft()
        ch.delivery_tag += 1
        tag = ch.delivery_tag
        if not method.no_ack:
            ch.unacked[tag] = _Unacked(tag, queue.name, message, None)
        get_ok = methods.BasicGetOk(
            tag, message.redelivered, message.exchange, message.routing_key, len(queue.messages)
        )
        self._send_content(ch.number, get_ok, message.properties, message.body)

    def _collect(self, ch: Channel, tag: int, multiple: bool) -> list[int]:
        """The delivery tags an ack/reject/nack settles; an unknown tag is a 406."""
        if multiple and tag == 0:
            return list(ch.unacked)
        if tag not in ch.unacked:
            raise _fail(406, f"unknown delivery tag {tag}")
        return [t for t in ch.unacked if t <= tag] if multiple else [tag]

    def _settle(self, ch: Channel, tags: list[int], *, requeue: bool) -> None:
        """Remove deliveries from the unacked set; requeue them (at the head, in order)."""
        back: list[_Unacked] = []
        for tag in tags:
            unacked = ch.unacked.pop(tag, None)
            if unacked is None:
                continue
            if unacked.consumer is not None:
                unacked.consumer.unacked -= 1
            if requeue:
                back.append(unacked)
        for unacked in reversed(back):
            queue = self.queues.get(unacked.queue)
            if queue is not None:
                queue.messages.appendleft(replace(unacked.message, redelivered=True))

    def _settle_or_defer(self, ch: Channel, tags: list[int], requeue: bool) -> None:
        if ch.tx:
            ch.tx_ops.append(partial(self._settle, ch, tags, requeue=requeue))
        else:
            self._settle(ch, tags, requeue=requeue)

    def _basic_ack(self, ch: Channel, method: methods.BasicAck) -> None:
        tags = self._collect(ch, method.delivery_tag, method.multiple)
        self._settle_or_defer(ch, tags, False)

    def _basic_reject(self, ch: Channel, method: methods.BasicReject) -> None:
        tags = self._collect(ch, method.delivery_tag, False)
        self._settle_or_defer(ch, tags, method.requeue)

    def _basic_nack(self, ch: Channel, method: methods.BasicNack) -> None:
        tags = self._collect(ch, method.delivery_tag, method.multiple)
        self._settle_or_defer(ch, tags, method.requeue)

    def _basic_recover(
        self, ch: Channel, method: methods.BasicRecover | methods.BasicRecoverAsync
    ) -> None:
        if not method.requeue:
            raise _fail(540, "requeue=false")
        self._settle(ch, list(ch.unacked), requeue=True)
        if isinstance(method, methods.BasicRecover):
            self._send(ch.number, methods.BasicRecoverOk())

    # -- publishing ---------------------------------------------------------------------------

    def _basic_publish(self, ch: Channel, method: methods.BasicPublish) -> None:
        if method.immediate:
            raise _fail(540, "immediate=true")
        ch.content = _Content(method)

    def _content_frame(self, ch: Channel, frame: Frame) -> None:
        content = ch.content
        assert content is not None
        if content.properties is None:
            if not isinstance(frame, HeaderFrame):
                raise _fail(
                    505,
                    "expected content header for class 60, got non content header frame instead",
                )
            content.properties = frame.properties
            content.body_size = frame.body_size
        else:
            if not isinstance(frame, BodyFrame):
                raise _fail(505, "expected content body, got non content body frame instead")
            content.parts.append(frame.payload)
            content.received += len(frame.payload)
            if content.received > content.body_size:
                raise _fail(505, f"content body exceeds the declared size {content.body_size}")
        if content.received == content.body_size:
            ch.content = None
            self._publish(ch, content.publish, content.properties, b"".join(content.parts))

    def _publish(
        self, ch: Channel, method: methods.BasicPublish, properties: BasicProperties, body: bytes
    ) -> None:
        message = Message(body, properties, method.exchange, method.routing_key)
        self.published.append(message)
        exchange = self.exchanges.get(method.exchange)
        if exchange is None:
            raise _fail(404, f"no {self._resource('exchange', method.exchange)}", 60, 40)
        if exchange.internal:
            resource = self._resource("exchange", method.exchange)
            raise _fail(403, f"cannot publish to internal {resource}", 60, 40)
        if ch.tx:
            ch.tx_ops.append(partial(self._route_publish, ch, message, method.mandatory))
        else:
            self._route_publish(ch, message, method.mandatory)

    def _route_publish(self, ch: Channel, message: Message, mandatory: bool) -> None:
        if ch.confirm:
            ch.publish_seq += 1
            if self.nack_next > 0 or ch.number in self.stuck_channels:
                self.nack_next = max(0, self.nack_next - 1)
                self._flush_confirms(ch)
                self._send(ch.number, methods.BasicNack(ch.publish_seq, False, False))
                return
        names = self._route(message)
        if not names and mandatory:
            returned = methods.BasicReturn(312, "NO_ROUTE", message.exchange, message.routing_key)
            self._send_content(ch.number, returned, message.properties, message.body)
        for name in names:
            self.queues[name].messages.append(replace(message))
        if ch.confirm:
            ch.unconfirmed.append(ch.publish_seq)
            if len(ch.unconfirmed) >= max(1, self.confirm_batch):
                self._flush_confirms(ch)

    def _flush_confirms(self, ch: Channel) -> None:
        if not ch.unconfirmed:
            return
        multiple = self.confirm_batch > 1 or len(ch.unconfirmed) > 1
        self._send(ch.number, methods.BasicAck(ch.unconfirmed[-1], multiple))
        ch.unconfirmed.clear()

    def _route(self, message: Message) -> list[str]:
        """The names of the queues a message reaches, following exchange-to-exchange bindings."""
        headers = message.properties.headers
        found: dict[str, None] = {}
        visited: set[str] = set()

        def visit(name: str) -> None:
            if name in visited:
                return
            visited.add(name)
            exchange = self.exchanges.get(name)
            if exchange is None:
                return
            if name == "":
                if message.routing_key in self.queues:
                    found[message.routing_key] = None
                return
            for binding in exchange.bindings:
                if exchange.matches(binding, message.routing_key, headers):
                    if not binding.to_queue:
                        visit(binding.destination)
                    elif binding.destination in self.queues:
                        found[binding.destination] = None

        visit(message.exchange)
        return list(found)

    def _confirm_select(self, ch: Channel, method: methods.ConfirmSelect) -> None:
        if ch.tx:
            raise _fail(406, "cannot switch from tx to confirm mode")
        ch.confirm = True
        if not method.nowait:
            self._send(ch.number, methods.ConfirmSelectOk())

    # -- transactions -------------------------------------------------------------------------

    def _tx_select(self, ch: Channel, _method: methods.TxSelect) -> None:
        if ch.confirm:
            raise _fail(406, "cannot switch from confirm to tx mode")
        ch.tx = True
        self._send(ch.number, methods.TxSelectOk())

    def _tx_commit(self, ch: Channel, _method: methods.TxCommit) -> None:
        if not ch.tx:
            raise _fail(406, "channel is not transactional")
        ops, ch.tx_ops = ch.tx_ops, []
        for op in ops:
            op()
        self._send(ch.number, methods.TxCommitOk())

    def _tx_rollback(self, ch: Channel, _method: methods.TxRollback) -> None:
        if not ch.tx:
            raise _fail(406, "channel is not transactional")
        ch.tx_ops.clear()
        self._send(ch.number, methods.TxRollbackOk())


# ---------------------------------------------------------------------------------------------
# Equivalence checks (redeclaring with other flags), worded as RabbitMQ words them
# ---------------------------------------------------------------------------------------------


def _flag(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _assert_equivalent(resource: str, name: str, current: object, received: object) -> None:
    if current != received:
        raise _fail(
            406,
            f"inequivalent arg '{name}' for {resource}: "
            f"received '{_flag(received)}' but current is '{_flag(current)}'",
        )


_TYPE_NAMES: list[tuple[type, str]] = [
    (bool, "bool"),
    (int, "long"),
    (float, "double"),
    (str, "longstr"),
    (bytes, "bytes"),
    (dict, "table"),
    (list, "array"),
]


def _describe(value: FieldValue | None, present: bool) -> str:
    if not present:
        return "none"
    kind = next((n for t, n in _TYPE_NAMES if isinstance(value, t)), type(value).__name__)
    if kind == "long" and isinstance(value, int) and -(2**31) <= value < 2**31:
        kind = "signedint"
    return f"the value '{value}' of type '{kind}'"


def _assert_args_equivalent(resource: str, current: FieldTable, received: FieldTable) -> None:
    """Compare the ``x-`` arguments, the ones RabbitMQ checks on a redeclare."""
    for key in sorted({*current, *received}):
        if not key.startswith("x-"):
            continue
        if (key in current, current.get(key)) != (key in received, received.get(key)):
            raise _fail(
                406,
                f"inequivalent arg '{key}' for {resource}: "
                f"received {_describe(received.get(key), key in received)} "
                f"but current is {_describe(current.get(key), key in current)}",
            )
