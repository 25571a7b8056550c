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

`Engine` is the one class a driver talks to: it reads frames, moves the connection's state
through the tables of `connection_states` (`_step` is the only place the state changes; what
each row does is in `actions`), and queues the frames to send. Its parts each have a module:
`handshake`, `timers`, `recovery` (when and where to reconnect), `replay` (what a recovery
restores), `queueing`, `publisher` (publish routing and confirms), `settling`, `channels` and
`operations`. None imports this module: each says in a `Protocol` what it needs of the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from puka_spec import HEARTBEAT_FRAME, FrameReader, encode_method_frame, methods
from puka_spec.constants import FRAME_MIN_SIZE
from puka_spec.exceptions import AMQPError, HardError, UnexpectedFrame

from puka import hooks, urls
from puka.engine import actions, connection_states, frame_log, handshake
from puka.engine.channels import ChannelPool, error_from_close
from puka.engine.connection_states import ConnectionState
from puka.engine.operations import Consume, Get, Rpc, Transaction
from puka.engine.publisher import Publisher, Routes
from puka.engine.queueing import Queue
from puka.engine.recovery import Recovery, Rounds
from puka.engine.retrying import Retrier, RetryPolicy, retry_policy, with_message_id
from puka.engine.settling import Settler
from puka.engine.timers import Timers
from puka.engine.topology import Topology
from puka.errors import ClientClosed
from puka.hooks import INSTALLED
from puka.messages import EMPTY_PROPERTIES, headers_to_properties, message_id_properties
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

# Members read from module globals: on Python 3.11 `ConnectionState.OPEN` goes through
# EnumType.__getattr__'s slot, about 1,000 instructions, several times per message.
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED
_RECOVERING = ConnectionState.RECOVERING

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

    # (about 50 attributes: an instance dict of them took 1.6 KB per connection)
    __slots__ = (
        "__weakref__",
        "_client_properties",
        "_close_promise",
        "_close_requested",
        "_connect_promise",
        "_out",
        "_out_views",
        "_queue",
        "_reader",
        "_retrier",
        "_rounds",
        "_routes",
        "_secret_promises",
        "_settler",
        "addresses",
        "blocked",
        "blocked_reason",
        "blocked_timeout",
        "channel_max",
        "channels",
        "coalesced_acks",
        "consumes",
        "duplicate_consume_oks",
        "error",
        "frame_max",
        "handshake_timeout",
        "heartbeat",
        "max_message_size",
        "on_blocked",
        "on_connection_lost",
        "on_recovered",
        "on_unblocked",
        "outgoing_bytes",
        "params",
        "promises",
        "pubacks",
        "publisher",
        "recoveries",
        "recovery",
        "recovery_errors",
        "replaced_publish_channels",
        "server_properties",
        "stale_acks",
        "state",
        "timers",
        "topology",
        "transport_wanted",
        "unpaired_returns",
        "written",
    )

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
        if blocked_timeout is not None and blocked_timeout <= 0:
            raise ValueError(f"blocked_timeout must be positive, not {blocked_timeout!r}")
        self.blocked_timeout = blocked_timeout
        self.pubacks = pubacks
        self.max_message_size = (
            self.addresses[0].max_message_size if max_message_size is None else max_message_size
        )
        """Largest body a content header may announce: larger ones close with 501 at once."""
        self.state = ConnectionState.INITIAL
        self.error: BaseException | None = None  # why the connection ended, if it did
        # what the broker said in the handshake
        self.server_properties: dict[str, Any] = {}
        self.channel_max = 0
        self.frame_max = FRAME_MIN_SIZE
        self.heartbeat = 0
        self.blocked = False
        self.blocked_reason = ""
        # the parts (each in a module of its own)
        self.promises = Promises()
        self.channels = ChannelPool(self)
        self.publisher: Publisher | None = None
        self.timers = Timers()
        self.topology = Topology()  # what was declared, declared again after a recovery
        self.consumes: set[Consume] = set()  # the consumes running, restarted after one
        self._queue = Queue(self)
        self._routes = Routes(self, self._queue)
        self._settler = Settler(self)
        self._rounds = Rounds()
        self._reader = FrameReader(FRAME_MIN_SIZE, assemble_content=True, stream_bodies=True)
        self._client_properties = handshake.client_properties(self.params, client_properties)
        # the frames out
        self._out: list[bytes | memoryview] = []
        self._out_views = False  # whether _out holds views of message bodies
        self.outgoing_bytes = 0
        """Bytes queued for the transport: drivers apply backpressure on this (an attribute,
        not a property: it is read once per call; only the engine changes it)."""
        self.written: list[Promise | int] = []  # publishes without confirms, done once written
        self._connect_promise: Promise | None = None
        self._close_promise: Promise | None = None
        self._close_requested = False
        self._secret_promises: list[Promise] = []  # (a deque costs 760 bytes, even empty)
        # recovery
        self.transport_wanted = False
        """The driver should open a transport to `params` now (after `connect()`, after a
        failed attempt with another address left, and when recovery's back-off is over)."""
        self.recovery_errors: list[AMQPError] = []
        self.recoveries = 0
        # callbacks and counters
        self.on_connection_lost: Callable[[BaseException], Any] | None = None
        self.on_recovered: Callable[[], Any] | None = None
        self.on_blocked: Callable[[str], Any] | None = None
        self.on_unblocked: Callable[[], Any] | None = None
        self.unpaired_returns = 0
        self.stale_acks = 0  # acks of deliveries from a channel that is gone, dropped
        self.duplicate_consume_oks = 0  # repeated consume-oks for a tag we hold, dropped
        self.coalesced_acks = 0  # acks merged into the `multiple` ack queued before them
        self.replaced_publish_channels = 0
        """Publish channels left for a new one after the broker nacked a message being retried
        on them (see `puka.engine.retrying`)."""
        self._retrier: Retrier | None = None  # the at-least-once publishes, from the first

    def __repr__(self) -> str:
        return f"<puka.Engine {self.params.redacted_url()} {self.state.value}>"

    # --- The driver's side: questions, bytes, time, the transport -----------------------------

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
        self.timers.unwritten_since = since

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
            self.timers.sent = True
        if self.written:
            written, self.written = self.written, []
            self.promises.resolve_all(written, _WRITTEN)
            if self._close_requested:
                actions.close_if_idle(self)
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
            self.timers.received = True
        else:
            self.timers.last_received = now
        reader, channels = self._reader, self.channels
        reader.feed(data)
        logged = frame_log.enabled()
        try:
            while (frame := reader.read_frame()) is not None:
                if logged:
                    frame_log.log_received(frame)
                channel = frame.channel
                if channel:
                    channels.receive(channel, frame, self.state)
                else:
                    kind, method = connection_states.input_of(frame, self.recovery is not None)
                    self._step(kind, method, now)
                if self.state is _CLOSED:
                    return
        except AMQPError as error:
            self.protocol_violation(error)
            return
        if self._close_requested:
            actions.close_if_idle(self)

    def connection_lost(self, exc: BaseException | None = None, now: float | None = None) -> None:
        """The transport is gone: every promise in flight fails (or, with recovery, most).

        `now` (the driver's clock) is when: recovery's back-off counts from it (without it,
        from the next `handle_timer`).
        """
        self._step("transport-lost", exc, now)

    def transport_dropped(self, now: float | None = None) -> None:
        """The driver dropped the transport on purpose (a client's `abort()`), writing nothing
        more: what was in flight fails with `ConnectionLost` caused by a `ClientClosed`, later
        calls raise `ClientClosed`, and a connection with recovery is not recovered."""
        self._step("transport-dropped", ClientClosed("the client was aborted"), now)

    def next_timer(self) -> float | None:
        """When `handle_timer` should next run (in the driver's clock), or `None`."""
        when = self.timers.next(self)
        if self._retrier is not None:
            retry = self._retrier.next()
            if retry is not None and (when is None or retry < when):
                return retry
        return when

    def handle_timer(self, now: float) -> None:
        """Run what is due at `now`; a driver calls it at start and whenever `next_timer` passes.

        A deadline set by an input that came without its time is timed from this `now`.
        """
        fired = self.timers.due(self, now)
        if fired is not None:
            kind, error = fired
            self._step(kind, error, now)
        if self._retrier is not None:
            self._retrier.tick(now)
            if self._close_requested:
                actions.close_if_idle(self)

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
        attempts (see `puka.engine.recovery`). `now` (the driver's clock) is when it failed:
        the back-off counts from it (without it, from the next `handle_timer`).
        """
        self.transport_wanted = False
        self._step("transport-failed", error, now)

    def _handshake_timeout(self) -> float:
        if self.handshake_timeout is not None:
            return float(self.handshake_timeout)
        return self.params.connection_timeout

    # --- Frames out (the parts send through these: see `puka.engine.link`) --------------------

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

    # --- Frames in, and the state machine -----------------------------------------------------

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

    def error_from_close(self, method: methods.ConnectionClose | methods.ChannelClose) -> AMQPError:
        """The exception for a close the broker sent (`channels.error_from_close`)."""
        return error_from_close(method)

    def protocol_violation(self, error: AMQPError) -> None:
        """We received something malformed or out of order: close with its reply code."""
        log.warning("closing the connection: %s", error)
        if not isinstance(error, HardError):
            error = UnexpectedFrame(str(error))
        self._step("abort", error)

    # --- Operations ---------------------------------------------------------------------------

    def connect(self, callback: Callback | None = None) -> Promise:
        """Start the handshake; the promise resolves once the connection is open."""
        if self.state is not ConnectionState.INITIAL:
            if self._connect_promise is not None:
                return self._connect_promise
            self._queue.check_usable()
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
        actions.close_if_idle(self)
        return promise

    def channel_freed(self) -> None:
        """A channel became free, or the connection opened: start what was waiting."""
        self._queue.freed()

    def rpc(self, method: methods.Method, callback: Callback | None = None) -> Promise:
        """Send a synchronous method on a pooled channel; resolve with its reply."""
        self._queue.check_usable()
        return self._queue.submit(Rpc(self, self.promises.new(callback), method))

    def get(self, queue: str, no_ack: bool, callback: Callback | None = None) -> Promise:
        """basic.get."""
        self._queue.check_usable()
        return self._queue.submit(Get(self, self.promises.new(callback), queue, no_ack))

    def consume(
        self,
        consumes: list[methods.BasicConsume],
        prefetch_count: int,
        callback: Callback | None = None,
    ) -> Promise:
        """basic.consume on each queue, on one channel: one result per message."""
        self._queue.check_usable()
        promise = self.promises.new(callback, multi=True)
        return self._queue.submit(Consume(self, promise, consumes, prefetch_count))

    def transaction(self, callback: Callback | None = None) -> Promise:
        """A channel in transaction mode (tx.select); its promise yields `tx.select_ok`."""
        self._queue.check_usable()
        promise = self.promises.new(callback, multi=True)
        return self._queue.submit(Transaction(self, promise))

    def on_holder(
        self, number: int, action: str, method: methods.Method, callback: Callback | None = None
    ) -> Promise:
        """Run `method` on the channel of a consume or transaction.

        `action` is `side` (a synchronous method such as qos, recover, commit), `cancel` (of a
        consume) or `close` (of a transaction).
        """
        self._queue.check_usable()
        promise = self.promises.new(callback)
        self._queue.on_holder(number, action, method, promise)
        return promise

    def update_secret(
        self, new_secret: bytes, reason: str, callback: Callback | None = None
    ) -> Promise:
        """connection.update-secret (a refreshed OAuth 2 token)."""
        self._queue.check_usable()
        promise = self.promises.new(callback)
        method = methods.ConnectionUpdateSecret(new_secret=new_secret, reason=reason)
        self._queue.when_open(promise, lambda: self._secret(promise, method))
        return promise

    def _secret(self, promise: Promise, method: methods.ConnectionUpdateSecret) -> None:
        self._secret_promises.append(promise)
        self.send_method(0, method)

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
        retry: RetryPolicy | bool | None = None,
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
        retry: RetryPolicy | bool | None = None,
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
        retry: RetryPolicy | bool | None = None,
    ) -> Promise | int:
        """basic.publish; the promise settles on the broker's confirm (or once written).

        `headers` and `properties` are `basic_publish`'s (see `puka.messages`); they are
        checked and encoded before anything else happens. With `bare=True` (and no callback)
        the promise is bare: its number, returned, is all there is until it ends or something
        asks for its object (`Promises.promote`); see `puka.promises`, and `on_bare_ended` for
        a driver that does not wait by number. The hot path (open, nothing waiting, the
        publish channel there) is taken here; the others are `puka.engine.publisher.Routes`'.

        With a `retry` policy the publish is at least once (`puka.engine.retrying`): sent again
        until the broker confirms it, or the policy gives up (`PublishFailed`); it gets a
        `message_id` if it has none (and the policy's `add_message_id`).
        """
        if bare and callback is not None:
            raise TypeError("a bare publish has no callback")
        if retry is not None and type(retry) is not RetryPolicy:
            retry = retry_policy(retry, "publish")
        message_id = None
        if retry is not None:
            if channel_of is not None:
                raise ValueError(
                    "basic_publish: retry publishes on the publish channel, not channel_of"
                )
            if retry.add_message_id:
                if headers is None and properties is None and not INSTALLED:
                    message_id = self._retrying().message_id()  # the properties, in short
                else:
                    headers, properties = with_message_id(
                        headers, properties, self._retrying().message_id
                    )
        watcher = None
        if INSTALLED:  # a hook (puka.hooks) sees it first, and may want its outcome
            headers, watcher = hooks.before_publish(
                self.params, exchange, routing_key, mandatory, headers, properties, body
            )
        try:
            if message_id is not None:
                props = message_id_properties(message_id)
            elif headers is None and properties is None:
                props = EMPTY_PROPERTIES
            else:
                props = headers_to_properties(headers, properties)
            if (
                self.state is _OPEN
                and not self._queue.waiting
                and channel_of is None
                and (retry is None or not retry.ordered)
            ):
                publisher = self.publisher
                if publisher is not None:  # the hot path: straight to the publish channel
                    promises = self.promises
                    promise = promises.new_bare() if bare else promises.new(callback)
                    if watcher is not None:
                        promises.watch(promise, watcher)
                    if retry is not None:  # kept until confirmed: `puka.engine.retrying`
                        key = (exchange, routing_key, mandatory)
                        self._retrying().add(promise, key, props, body, retry, sent=True)
                    publisher.publish(promise, exchange, routing_key, mandatory, props, body)
                    return promise
            if retry is not None:
                return self._publish_retrying(
                    (exchange, routing_key, mandatory), props, body, callback, bare, watcher, retry
                )
            later = self._routes.later(
                props, exchange, routing_key, mandatory, body, callback, channel_of, watcher
            )
        except Exception as exc:  # refused: the hook hears of it (free when nothing raises)
            if watcher is not None:
                watcher(Result.error(exc))
            raise
        return later.number if bare else later

    def _retrying(self) -> Retrier:
        """The retrier of at-least-once publishes (made on the first)."""
        if self._retrier is None:
            self._retrier = self.promises.guard = Retrier(self)
        return self._retrier

    def _publish_retrying(
        self,
        key: tuple[str, str, bool],
        props: bytes,
        body: bytes,
        callback: Callback | None,
        bare: bool,
        watcher: Callable[[Result], None] | None,
        policy: RetryPolicy,
    ) -> Promise | int:
        """An at-least-once publish off the hot path (the connection not open yet, or
        recovering, or an ordered one): its promise, which the retrier keeps until it ends."""
        self._queue.check_usable()
        promises = self.promises
        promise = promises.new_bare() if bare else promises.new(callback)
        if watcher is not None:
            promises.watch(promise, watcher)
        self._retrying().add(promise, key, props, body, policy)
        return promise

    def resend(
        self, promise: Promise | int, key: tuple[str, str, bool], props: bytes, body: bytes
    ) -> bool:
        """Send (again) an at-least-once publish; `False` while recovering (see `Retrier`)."""
        return self._routes.resend(promise, key, props, body)

    def usable_error(self) -> BaseException | None:
        """Why no publish can go out any more (the client is closing or closed), or `None`."""
        try:
            self._queue.check_usable()
        except ClientClosed as exc:
            return exc
        return None

    @property
    def retried_publishes(self) -> int:
        """At-least-once publishes sent again (after a nack or a lost connection)."""
        return 0 if self._retrier is None else self._retrier.sent_again

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
        self._routes.republish(promise, (exchange, routing_key, mandatory), props, body)

    def publisher_gone(self, publisher: Publisher) -> None:
        """The publish channel was closed by the broker; the next publish opens another."""
        self._routes.gone(publisher)

    def ack(self, message: Result, multiple: bool = False) -> None:
        """basic.ack of a delivered message; consecutive acks go out as one (see
        `puka.engine.settling`)."""
        self._settler.ack(message, multiple)

    def settle(self, message: Result, method: methods.Method) -> None:
        """basic.ack / reject / nack of a delivered message: sent on its channel.

        A message whose channel is gone (the broker requeued it already) or that was already
        settled is not sent again (that would close the channel with 406): it is counted in
        `stale_acks` and dropped.
        """
        self._settler.settle(message, method)


_STEPS = {
    key: (getattr(actions, action), state)
    for key, (action, state) in connection_states.TRANSITIONS.items()
}
_RECOVERY_STEPS = {
    key: (getattr(actions, action), state)
    for key, (action, state) in connection_states.RECOVERY_TRANSITIONS.items()
}
"""The tables with each action name resolved to its function (`puka.engine.actions`) once."""

if TYPE_CHECKING:

    def _actions_can_take(engine: Engine) -> actions.Connection:
        """(For mypy: the tables' actions get the engine as an `actions.Connection`.)"""
        return engine
