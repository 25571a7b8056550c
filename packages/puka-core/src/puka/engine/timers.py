"""The connection's deadlines: heartbeats, the handshake, a blocked connection, reconnection.

The engine keeps no clock: every deadline is a time in the driver's clock, computed from the
`now` passed with the input that set it. A deadline set by an input that came without its time
is `DUE` (at once) and counts from the `now` of the next `handle_timer`. `Timers` holds them,
says when the next one is (`next`: `Engine.next_timer`) and which one ran out (`due`:
`Engine.handle_timer` then takes it as an input of the state tables).

Which deadlines count depends on where the connection is: recovering (no transport), the
back-off before the next attempt; in the handshake, its timeout; open, the blocked timeout;
from the tune on, heartbeats.

Heartbeats (when negotiated): we send one at least every half interval (a frame of ours counts
as one), and a peer we hear nothing from for two intervals is dead. So is one that takes none
of the bytes we hand it for two intervals (the write-stall rule, `unwritten_since`), except
while it blocks the connection (a blocked connection is not read, on purpose).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from puka_spec import HEARTBEAT_FRAME

from puka.engine.connection_states import ConnectionState
from puka.errors import BlockedTimeout, ConnectTimeout, HeartbeatTimeout

if TYPE_CHECKING:
    from puka.urls import ConnectionParameters

__all__ = ["DUE", "TimerLink", "Timers"]

_OPEN = ConnectionState.OPEN  # read as globals: an Enum class attribute is slow on Python 3.11
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_RECOVERING = ConnectionState.RECOVERING

DUE = float("-inf")
"""The time of a deadline set by an input that came without its time: due at once, it is
timed from the `now` of the next `handle_timer` (the engine keeps no clock of its own)."""


class TimerLink(Protocol):
    """What the timers need of their connection (`Engine`)."""

    state: ConnectionState
    params: ConnectionParameters
    heartbeat: int  # seconds, 0 for none
    blocked: bool
    blocked_reason: str
    blocked_timeout: float | None
    _out: list[bytes | memoryview]  # the frames queued (a heartbeat goes if there are none)

    def send_raw(self, data: bytes) -> None:
        """Queue encoded frames."""

    def _handshake_timeout(self) -> float:
        """How long the handshake may take."""


class Timers:
    """The deadlines of one connection, in the driver's clock."""

    def __init__(self) -> None:
        self.handshake: float | None = None  # the handshake must be over by then
        self.blocked: float | None = None  # a connection still blocked then is dropped
        self.blocked_armed = False  # False: `blocked` is DUE, and counts from the next `due`
        self.reconnect_at: float | None = None  # recovery's next attempt
        self.reconnect_delay: float | None = None  # a back-off waiting for the time it starts
        self.next_tick: float | None = None  # our next heartbeat (None: no heartbeats)
        self.sent = False  # a frame went out since the last tick (ours proves nothing)
        self.received = False  # bytes came without a time since the last tick
        self.last_received: float | None = None  # when the last bytes came
        self.unwritten_since: float | None = None  # the transport has taken nothing since

    # --- set ------------------------------------------------------------------------------

    def start_heartbeats(self, now: float | None) -> None:
        """Heartbeats were negotiated: the first tick is due at once."""
        self.next_tick = DUE if now is None else now

    def start_handshake(self, timeout: float, now: float | None) -> None:
        """A new transport at `now`: its handshake must be over `timeout` seconds later
        (without a time, the deadline is set by the next `handshake_due`)."""
        self.handshake = None if now is None else now + timeout

    def block(self, timeout: float, now: float | None) -> None:
        """The broker blocked the connection: drop it if still blocked `timeout` seconds later.
        A repeated block does not move the deadline."""
        if self.blocked is None:
            self.blocked_armed = now is not None
            self.blocked = DUE if now is None else now + timeout

    def reconnect(self, delay: float | None, now: float | None) -> None:
        """Recovery's next attempt, `delay` seconds after `now` (`None`: at once)."""
        if delay is None:
            self.reconnect_at, self.reconnect_delay = (DUE if now is None else now), None
        elif now is None:
            self.reconnect_at, self.reconnect_delay = DUE, delay
        else:
            self.reconnect_at, self.reconnect_delay = now + delay, None

    def new_transport(self, timeout: float, now: float | None) -> None:
        """A new transport: nothing heard or sent on it yet, its handshake from `now`."""
        self.sent = self.received = False
        self.last_received = self.next_tick = None
        self.start_handshake(timeout, now)

    def stop(self) -> None:
        """The connection ended, or was lost: none of its deadlines is due any more."""
        self.next_tick = self.handshake = self.blocked = self.unwritten_since = None

    # --- ask --------------------------------------------------------------------------------

    def next(self, link: TimerLink) -> float | None:
        """The earliest deadline, or `None`."""
        state = link.state
        if state is _CLOSED:
            return None
        if state is _RECOVERING:
            return self.reconnect_at
        heartbeat = link.heartbeat
        deadline = self.handshake if state is not _OPEN else None
        blocked = self.blocked
        if blocked is not None and (deadline is None or blocked < deadline):
            deadline = blocked
        tick = self.next_tick
        if tick is not None:
            last = self.last_received
            if last is not None and last + 2 * heartbeat < tick:
                tick = last + 2 * heartbeat  # the peer's deadline, not the next tick's
            stalled = self.unwritten_since
            if stalled is not None and stalled + 2 * heartbeat < tick:
                tick = stalled + 2 * heartbeat  # the transport took nothing: its deadline
            if deadline is None or tick < deadline:
                return tick
        return deadline

    def due(self, link: TimerLink, now: float) -> tuple[str, BaseException | None] | None:
        """What ran out at `now`, as an input of the state tables (with its error), or
        `None`; our heartbeat is queued when it is due."""
        state = link.state
        if state is _CLOSED:
            return None
        if state is _RECOVERING:
            return ("reconnect", None) if self.reconnect_due(now) else None
        if state is not _OPEN and state is not _CLOSING:
            late = self.handshake_due(now, link._handshake_timeout(), link.params)
            if late is not None:
                return "handshake-timeout", late
        if state is _OPEN and link.blocked_timeout:
            blocked = self.blocked_due(now, link.blocked_timeout, link.blocked_reason)
            if blocked is not None:
                return "dead", blocked
        if not link.heartbeat or self.next_tick is None:
            return None
        dead = self.peer_dead(now, link.heartbeat, blocked=link.blocked, params=link.params)
        if dead is not None:
            return "dead", dead
        if self.tick(now, link.heartbeat) and not link._out:
            link.send_raw(HEARTBEAT_FRAME)
        return None

    def reconnect_due(self, now: float) -> bool:
        """Whether recovery's next attempt is due (a back-off without a start starts now)."""
        if self.reconnect_delay is not None:
            self.reconnect_at = now + self.reconnect_delay
            self.reconnect_delay = None
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.reconnect_at = None
            return True
        return False

    def handshake_due(
        self, now: float, timeout: float, params: ConnectionParameters
    ) -> ConnectTimeout | None:
        """The error if the handshake is over time (the first call sets the deadline)."""
        if self.handshake is None:
            self.handshake = now + timeout
        elif now >= self.handshake:
            return ConnectTimeout(
                f"no AMQP connection to {params.host}:{params.port} within {timeout:g} s"
            )
        return None

    def blocked_due(self, now: float, timeout: float, reason: str) -> BlockedTimeout | None:
        """The error if the broker kept the connection blocked for `timeout` seconds."""
        if self.blocked is None:
            return None
        if not self.blocked_armed:
            self.blocked_armed = True
            self.blocked = now + timeout
        elif now >= self.blocked:
            self.blocked = None
            return BlockedTimeout(
                f"the broker kept the connection blocked ({reason}) for over {timeout:g} s "
                "(blocked_timeout)"
            )
        return None

    def peer_dead(
        self, now: float, heartbeat: int, *, blocked: bool, params: ConnectionParameters
    ) -> HeartbeatTimeout | None:
        """The error if the peer is dead at `now`: it took nothing we sent, or sent nothing,
        for two heartbeat intervals."""
        stalled = self.unwritten_since
        if stalled is not None:
            if blocked:  # not read while blocked, on purpose: the clock starts again
                self.unwritten_since = now
            elif now - stalled >= 2 * heartbeat:
                return HeartbeatTimeout(
                    f"{params.host}:{params.port} took nothing we sent for "
                    f"{2 * heartbeat} s (heartbeat {heartbeat} s)"
                )
        if self.received or self.last_received is None:
            self.received = False  # bytes without a time (or the first tick): now
            self.last_received = now
        silent = now - self.last_received
        if silent >= 2 * heartbeat:  # two intervals without a byte
            return HeartbeatTimeout(
                f"nothing from {params.host}:{params.port} for {silent:.1f} s (heartbeat "
                f"{heartbeat} s: dead after {2 * heartbeat} s)"
            )
        return None

    def tick(self, now: float, heartbeat: int) -> bool:
        """Whether our heartbeat is due at `now` (nothing else went out since the last one)."""
        if self.next_tick is None or now < self.next_tick:
            return False
        self.next_tick = now + heartbeat / 2  # ours: at least one frame per half interval
        send = not self.sent
        self.sent = False
        return send
