"""What each input of the connection's state tables does: the actions the rows name.

`Engine._step` sets the state a row names, then calls its action here with the engine, the
input's payload (a method the broker sent, an error, the exception a transport went with) and
its time (`now`, when the driver passed it). No action changes the state: when the outcome
depends on more than the row (was our SASL mechanism offered? is another broker left to try?),
the action fires a further input, which moves the state through its own row.

The actions of the handshake and of the connection methods come first, then the end of the
connection, then recovery's (the rows of `connection_states.RECOVERY_TRANSITIONS`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from puka_spec import FrameReader, methods
from puka_spec.constants import FRAME_MIN_SIZE, PROTOCOL_HEADER
from puka_spec.exceptions import AccessRefused, AMQPError

from puka.engine import handshake
from puka.engine.channels import ChannelLink, ChannelPool, error_from_close
from puka.engine.connection_states import ConnectionState
from puka.engine.recovery import is_final
from puka.engine.replay import Replay, ReplayLink, fail_in_flight
from puka.errors import ClientClosed, ConnectFailed, ConnectionLost
from puka.results import Result

if TYPE_CHECKING:
    from puka.engine.publisher import Publisher
    from puka.engine.queueing import Queue
    from puka.engine.recovery import Recovery, Rounds
    from puka.engine.retrying import Retrier
    from puka.engine.timers import Timers
    from puka.promises import Promise
    from puka.urls import ConnectionParameters

__all__ = ["Connection", "close_if_idle"]

log = logging.getLogger("puka")
_OPEN = ConnectionState.OPEN


class Connection(ReplayLink, ChannelLink, Protocol):
    """The engine as the actions of its state tables see it (`Engine`)."""

    state: ConnectionState
    error: BaseException | None
    params: ConnectionParameters
    addresses: list[ConnectionParameters]
    recovery: Recovery | None
    transport_wanted: bool
    server_properties: dict[str, Any]
    channel_max: int
    frame_max: int
    heartbeat: int
    blocked: bool
    blocked_reason: str
    blocked_timeout: float | None
    publisher: Publisher | None
    timers: Timers
    written: list[Promise | int]
    outgoing_bytes: int
    recoveries: int
    on_blocked: Callable[[str], Any] | None
    on_unblocked: Callable[[], Any] | None
    on_connection_lost: Callable[[BaseException], Any] | None
    on_recovered: Callable[[], Any] | None
    _out: list[bytes | memoryview]
    _reader: FrameReader
    _queue: Queue
    _rounds: Rounds
    _client_properties: dict[str, Any]
    _connect_promise: Promise | None
    _close_promise: Promise | None
    _close_requested: bool
    _secret_promises: list[Promise]
    _retrier: Retrier | None

    def _step(self, kind: str, payload: Any = None, now: float | None = None) -> None:
        """Take one more input."""

    def _handshake_timeout(self) -> float:
        """How long a handshake may take."""


# --- the handshake and the connection methods ---------------------------------------------


def ignore(engine: Connection, payload: Any, now: float | None) -> None:
    """Nothing to do (a heartbeat: receive_data noted the time of every byte)."""


def on_start(engine: Connection, method: methods.ConnectionStart, now: float | None) -> None:
    """connection.start: answer with our mechanism, or abort if it is not offered."""
    engine.transport_wanted = False  # a driver that never said `transport_ready` has one
    engine.server_properties = handshake.shared_server_properties(method.server_properties)
    answer = handshake.start_ok(engine.params, method, engine._client_properties)
    if isinstance(answer, AMQPError):
        engine._step("abort", answer, now)
    else:
        engine.send_method(0, answer)


def on_secure(engine: Connection, method: methods.ConnectionSecure, now: float | None) -> None:
    """connection.secure: PLAIN and EXTERNAL never need a challenge."""
    why = "the broker sent a SASL challenge, which PLAIN and EXTERNAL never need"
    abort(engine, AccessRefused(why), now)


def on_tune(engine: Connection, method: methods.ConnectionTune, now: float | None) -> None:
    """connection.tune: settle the limits and the heartbeat, then open the virtual host."""
    tuned = handshake.tune_ok(engine.params, method, engine.max_message_size)
    engine.channel_max = engine.channels.channel_max = tuned.channel_max
    engine.frame_max = engine._reader.frame_max = tuned.frame_max
    engine.heartbeat = tuned.heartbeat
    if engine.heartbeat:
        engine.timers.start_heartbeats(now)
    engine.send_method(0, tuned)
    engine.send_method(0, methods.ConnectionOpen(virtual_host=engine.params.virtual_host))


def on_open_ok(engine: Connection, method: methods.ConnectionOpenOk, now: float | None) -> None:
    """connection.open-ok: connected; what waited for it starts."""
    engine.timers.handshake = None
    if engine._connect_promise is not None:
        props = copy.deepcopy(engine.server_properties)  # (shared: the caller gets a copy)
        result = Result("connection.open_ok", {"server_properties": props})
        engine.promises.resolve(engine._connect_promise, result)
    engine.channel_freed()
    close_if_idle(engine)


def on_close(engine: Connection, method: methods.ConnectionClose, now: float | None) -> None:
    """connection.close by the broker: answer, and end with its error."""
    engine.send_method(0, methods.ConnectionCloseOk())
    fail(engine, error_from_close(method), now)


def on_close_ok(engine: Connection, method: methods.ConnectionCloseOk, now: float | None) -> None:
    """connection.close-ok: our close is done."""
    if engine._close_promise is not None:
        engine.promises.resolve(engine._close_promise, Result("connection.close_ok"))
    fail(engine, engine.error or ClientClosed("the client was closed"), now)


def on_blocked(engine: Connection, method: methods.ConnectionBlocked, now: float | None) -> None:
    """connection.blocked: a resource alarm (the blocked timeout starts, if there is one)."""
    engine.blocked = True
    engine.blocked_reason = method.reason
    if engine.blocked_timeout is not None:
        engine.timers.block(engine.blocked_timeout, now)
    if engine.on_blocked is not None:
        engine.on_blocked(method.reason)


def on_unblocked(
    engine: Connection, method: methods.ConnectionUnblocked, now: float | None
) -> None:
    """connection.unblocked: the alarm is over."""
    engine.blocked = False
    engine.blocked_reason = ""
    engine.timers.blocked = None
    if engine.on_unblocked is not None:
        engine.on_unblocked()


def on_update_secret_ok(
    engine: Connection, method: methods.ConnectionUpdateSecretOk, now: float | None
) -> None:
    """connection.update-secret-ok: the oldest update_secret is done."""
    if engine._secret_promises:
        promise = engine._secret_promises.pop(0)
        engine.promises.resolve(promise, Result("connection.update_secret_ok"))


def connect(engine: Connection, payload: None, now: float | None) -> None:
    """connect(): the protocol header, and a transport to the first address."""
    engine.send_raw(PROTOCOL_HEADER)
    engine._rounds.first(engine.addresses)
    engine.transport_wanted = True


def close_if_idle(engine: Connection) -> None:
    """Send connection.close once what was sent before close() is answered.

    The broker does not send the confirms of the last publishes before its close-ok, so
    close() waits for publishes and operations in flight (not for consumes) first.
    """
    if not engine._close_requested or engine.state is not _OPEN:
        return
    if (engine.publisher is not None and engine.publisher.in_flight) or engine.promises.bare:
        return
    for promise in engine.promises.live.values():
        if not promise.done and not promise.multi and promise is not engine._close_promise:
            return
    engine._close_requested = False
    engine._step("send-close")


def send_close(engine: Connection, payload: None, now: float | None) -> None:
    """Everything before close() is answered: connection.close (what never started fails)."""
    engine._queue.refuse_waiting()
    engine.send_method(0, methods.ConnectionClose(200, "Goodbye", 0, 0))


def try_next_node(engine: Connection, error: BaseException, now: float | None) -> None:
    """The first connect's transport could not be opened: the next node, or the end (with
    the last node's error). No back-off: recovery's rounds start once a connection was open."""
    node = engine._rounds.next_node(engine.addresses)
    if node is None:
        engine._step("give-up", error, now)
        return
    engine.params = node
    engine.transport_wanted = True


# --- the end ----------------------------------------------------------------------------------


def fail_connecting(engine: Connection, exc: BaseException | None, now: float | None) -> None:
    """The transport went during the handshake."""
    fail(engine, _loss_error(engine, exc, handshake=True), now)


def fail_lost(engine: Connection, exc: BaseException | None, now: float | None) -> None:
    """The transport of the open connection went."""
    fail(engine, _loss_error(engine, exc, handshake=False), now)


def fail_dropped(engine: Connection, error: BaseException, now: float | None) -> None:
    """The driver dropped the transport on purpose (`error`, a `ClientClosed`): what was in
    flight fails with `ConnectionLost` (its outcome is unknown) caused by it, later calls with
    it, and nothing is recovered."""
    lost = ConnectionLost(f"the connection was dropped ({error}): the outcome is unknown")
    lost.__cause__ = error
    if engine.error is None:
        engine.error = error
    fail(engine, lost, now)


def closed_by_loss(engine: Connection, exc: BaseException | None, now: float | None) -> None:
    """The transport went while we were closing: the close succeeded, as far as the user is
    concerned."""
    if engine._close_promise is not None:
        engine.promises.resolve(engine._close_promise, Result("connection.close_ok"))
    fail(engine, _loss_error(engine, exc, handshake=False), now)


def abort(engine: Connection, error: BaseException, now: float | None) -> None:
    """Tell the broker why we end the connection (connection.close), then end it."""
    code = getattr(error, "reply_code", 0) or 541
    text = getattr(error, "reply_text", "") or str(error)
    engine.send_method(
        0,
        methods.ConnectionClose(
            reply_code=code,
            reply_text=text.encode()[:255].decode("utf-8", "ignore"),
            class_id=getattr(error, "class_id", 0),
            method_id=getattr(error, "method_id", 0),
        ),
    )
    fail(engine, error, now)


def fail(engine: Connection, error: BaseException, now: float | None) -> None:
    """The end: fail everything in flight with `error`."""
    engine.transport_wanted = False
    if engine._retrier is not None:  # at-least-once publishes give up, not only fail
        engine._retrier.end(error)
    if engine.error is None:
        engine.error = error
    engine.timers.stop()
    publisher, engine.publisher = engine.publisher, None
    if publisher is not None:
        publisher.fail_all(error)
    engine._queue.waiting = ()
    engine.channels.clear()
    engine.promises.fail_all(error)


def _loss_error(engine: Connection, exc: BaseException | None, *, handshake: bool) -> BaseException:
    """What the promises in flight fail with when the transport went with `exc`: `exc` if it
    is one of ours, else `ConnectFailed` during the handshake or `ConnectionLost`, named by
    address, with `exc` as its `__cause__`."""
    if exc is not None and isinstance(exc, (AMQPError, ConnectionLost, ConnectFailed)):
        return exc
    where = f"connection to {engine.params.host}:{engine.params.port}"
    why = f": {exc}" if exc else ""
    error = (
        ConnectFailed(f"{where} closed during the handshake{why}")
        if handshake
        else ConnectionLost(f"{where} lost{why}")
    )
    error.__cause__ = exc
    return error


# --- recovery ---------------------------------------------------------------------------------


def on_forced_close(engine: Connection, method: methods.ConnectionClose, now: float | None) -> None:
    """Closed by the broker with a code recovery reconnects after (a node shutting down)."""
    engine.send_method(0, methods.ConnectionCloseOk())
    recover(engine, error_from_close(method), now)


def recover_lost(engine: Connection, exc: BaseException | None, now: float | None) -> None:
    """The transport of the open connection went: recover."""
    recover(engine, _loss_error(engine, exc, handshake=False), now)


def recover(engine: Connection, cause: BaseException, now: float | None) -> None:
    """The open connection was lost: fail what was in flight, keep the consumes, and start
    the first round of reconnection attempts."""
    log.warning("connection to %s lost (%s): recovering", engine.params.redacted_url(), cause)
    # what is in flight fails with the cause's own class (a HeartbeatTimeout, a
    # BlockedTimeout), as without recovery: `except puka.BlockedTimeout` catches it both ways
    kind = type(cause) if isinstance(cause, ConnectionLost) else ConnectionLost
    lost = kind(f"the connection was lost ({cause}); the outcome is unknown")
    lost.__cause__ = cause
    going_on = [*engine.consumes, *engine._queue.survivors()]
    publisher, engine.publisher = engine.publisher, None
    if publisher is not None:
        publisher.fail_all(lost)
    engine.consumes = fail_in_flight(engine.promises, going_on, lost)
    engine._queue.waiting = ()
    engine.channels.clear()
    engine._out.clear()
    engine.outgoing_bytes = 0
    engine.written.clear()
    engine._secret_promises.clear()
    engine.timers.stop()
    engine.blocked = False
    engine._rounds.attempt = 0
    _start_round(engine, now)
    if engine.on_connection_lost is not None:
        engine.on_connection_lost(cause)


def _start_round(engine: Connection, now: float | None) -> None:
    """A round of attempts, after its back-off (from `now`, or from the next
    `handle_timer`): one node, then the others at once."""
    if engine.recovery is None:  # callers recover only with a Recovery: a bug, not bad input
        raise RuntimeError("a reconnection was scheduled without automatic recovery")
    engine.timers.reconnect(engine._rounds.start(engine.recovery, engine.addresses), now)
    engine.params = engine._rounds.node(engine.addresses)


def want_transport(engine: Connection, payload: None, now: float | None) -> None:
    """The back-off is over: the driver should open a transport to `params`."""
    engine.transport_wanted = True


def reopen(engine: Connection, payload: None, now: float | None) -> None:
    """A new transport: the handshake again, on a clean slate."""
    engine._reader = FrameReader(FRAME_MIN_SIZE, assemble_content=True, stream_bodies=True)
    engine.channels = ChannelPool(engine)
    engine.frame_max = FRAME_MIN_SIZE
    engine._out.clear()
    engine.outgoing_bytes = 0
    engine.timers.new_transport(engine._handshake_timeout(), now)
    engine.send_raw(PROTOCOL_HEADER)


def on_reopen_ok(engine: Connection, method: methods.ConnectionOpenOk, now: float | None) -> None:
    """Recovered: declare the topology again, then restart the consumes."""
    engine.timers.handshake = None
    engine._rounds.attempt = 0
    engine._queue.start(
        Replay(engine, engine.promises.new(), lambda renamed: _restart(engine, renamed))
    )


def _restart(engine: Connection, renamed: dict[str, str]) -> None:
    """The topology is back (queues renamed as in `renamed`): the consumes start again."""
    for op in list(engine.consumes):
        op.recover(renamed)
        engine._queue.submit(op)
    engine.recoveries += 1
    log.warning("recovered: connected to %s", engine.params.redacted_url())
    if engine._retrier is not None:
        engine._retrier.recovered()
    if engine.on_recovered is not None:
        engine.on_recovered()


def attempt_closed(engine: Connection, method: methods.ConnectionClose, now: float | None) -> None:
    """The broker closed the new connection before it opened (a node still starting)."""
    engine.send_method(0, methods.ConnectionCloseOk())
    attempt_failed(engine, error_from_close(method), now)


def attempt_lost(engine: Connection, exc: BaseException | None, now: float | None) -> None:
    """The new transport went before the connection opened."""
    attempt_failed(engine, exc or ConnectionLost("the broker closed the connection"), now)


def attempt_failed(engine: Connection, error: BaseException, now: float | None) -> None:
    """A reconnection attempt failed: the next node of the round at once, else the next round
    after its back-off, or the end (`max_attempts`, credentials, virtual host)."""
    log.info("reconnection to %s failed: %s", engine.params.redacted_url(), error)
    if is_final(error):
        engine._step("give-up", error, now)
        return
    rounds = engine._rounds
    node = rounds.next_node(engine.addresses) if engine.recovery is not None else None
    if node is not None:  # the rest of the cluster first
        engine.timers.reconnect(None, now)
        engine.params = node
    elif rounds.failed(engine.recovery):
        engine._step("give-up", error, now)
    else:
        _start_round(engine, now)
