"""The connection state machine, as tables: (state, input) → (action, next state).

Everything that changes the connection's state is an input of these tables, and nothing else
changes it (h11's rule): `Engine._step` is the one place that moves the state. It looks the
pair up, sets the next state, then runs the action (a method of `Engine`, named here without
its leading underscore). An action whose outcome depends on more than the pair (is another
broker left to try? did the broker offer our SASL mechanism?) fires a further input from the
state its row led to: the state then moves through that input's row.

Remote inputs are the connection-class methods the broker sends on channel 0 (`start`,
`secure`, `tune`, `open-ok`, `close`, `close-ok`, `blocked`, `unblocked`,
`update-secret-ok`) and `heartbeat`; with recovery on, a `close` with a reply code recovery
reconnects after (320 CONNECTION_FORCED, 541) is the input `forced-close`. A remote pair with
no row is a protocol violation: the connection closes with 505 UNEXPECTED_FRAME, naming both.
(Frames on other channels are the channels' own: see `channel_states`.)

Local inputs are what happens on our side: the user connects (`connect`), closes before
connecting (`drop`) or once everything is answered (`send-close`); the driver's transport
comes (`transport-ready`), cannot be opened (`transport-failed`), goes (`transport-lost`) or
is dropped on purpose (`transport-dropped`: the user's `abort()`, never recovered);
the handshake takes too long (`handshake-timeout`); the broker stops reading or sending, or
keeps the connection blocked too long (`dead`); we end the connection telling the broker why
(`abort`: a protocol violation, a mechanism the broker does not offer); recovery's back-off is
over (`reconnect`) or every attempt failed (`give-up`). A local pair with no row changes
nothing (a transport loss after the end, a second report of one failure).

`TRANSITIONS` is a connection without recovery. `RECOVERY_TRANSITIONS` is a connection with a
`Recovery`: the same rows, a few replaced (a lost connection recovers instead of ending), and
the states of recovery: waiting for a transport, then the handshake again.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from puka_spec import ContentFrame, HeartbeatFrame, MethodFrame, methods
from puka_spec.exceptions import CommandInvalid, UnexpectedFrame

from puka.engine.recovery import RECOVERABLE_REPLY_CODES

__all__ = [
    "LOCAL_INPUTS",
    "RECOVERY_TRANSITIONS",
    "REMOTE_INPUTS",
    "TRANSITIONS",
    "ConnectionState",
    "input_of",
]


class ConnectionState(Enum):
    """Where the connection is in its life."""

    # Members are singletons: identity hashing is as good as Enum's, which is a Python-level
    # call and ran for every frame (the state is half of each transition table key).
    __hash__ = object.__hash__

    INITIAL = "initial"  # nothing sent yet
    AWAIT_START = "await-start"  # protocol header sent
    AWAIT_TUNE = "await-tune"  # start-ok sent (secure may come first)
    AWAIT_OPEN_OK = "await-open-ok"  # tune-ok and open sent
    OPEN = "open"
    CLOSING = "closing"  # we sent connection.close
    RECOVERING = "recovering"  # lost; waiting to reconnect (no transport, so no remote input)
    RECOVERY_AWAIT_START = "recovery-await-start"  # recovering: a new transport, header sent
    RECOVERY_AWAIT_TUNE = "recovery-await-tune"
    RECOVERY_AWAIT_OPEN_OK = "recovery-await-open-ok"
    CLOSED = "closed"


S = ConnectionState

REMOTE_INPUTS = frozenset(
    {
        "start",
        "secure",
        "tune",
        "open-ok",
        "close",
        "forced-close",
        "close-ok",
        "blocked",
        "unblocked",
        "update-secret-ok",
        "heartbeat",
    }
)
"""What the broker sends on channel 0."""

LOCAL_INPUTS = frozenset(
    {
        "connect",
        "drop",
        "send-close",
        "transport-ready",
        "transport-failed",
        "transport-lost",
        "transport-dropped",
        "handshake-timeout",
        "dead",
        "abort",
        "reconnect",
        "give-up",
    }
)
"""What happens on our side (the user, the driver, the timers, recovery)."""

_HANDSHAKE = (S.INITIAL, S.AWAIT_START, S.AWAIT_TUNE, S.AWAIT_OPEN_OK)
_RECOVERY_HANDSHAKE = (S.RECOVERY_AWAIT_START, S.RECOVERY_AWAIT_TUNE, S.RECOVERY_AWAIT_OPEN_OK)
_LIVE = (*_HANDSHAKE[1:], S.OPEN, S.CLOSING, *_RECOVERY_HANDSHAKE)  # a transport, bytes sent

TRANSITIONS: dict[tuple[ConnectionState, str], tuple[str, ConnectionState]] = {
    # --- what the broker sends ---------------------------------------------------------------
    (S.AWAIT_START, "start"): ("on_start", S.AWAIT_TUNE),
    (S.AWAIT_TUNE, "secure"): ("on_secure", S.CLOSED),  # PLAIN/EXTERNAL never need a challenge
    (S.AWAIT_TUNE, "tune"): ("on_tune", S.AWAIT_OPEN_OK),
    (S.AWAIT_TUNE, "close"): ("on_close", S.CLOSED),
    (S.AWAIT_TUNE, "heartbeat"): ("ignore", S.AWAIT_TUNE),
    (S.AWAIT_OPEN_OK, "open-ok"): ("on_open_ok", S.OPEN),
    (S.AWAIT_OPEN_OK, "close"): ("on_close", S.CLOSED),
    (S.AWAIT_OPEN_OK, "heartbeat"): ("ignore", S.AWAIT_OPEN_OK),
    (S.AWAIT_OPEN_OK, "blocked"): ("on_blocked", S.AWAIT_OPEN_OK),
    (S.AWAIT_OPEN_OK, "unblocked"): ("on_unblocked", S.AWAIT_OPEN_OK),
    (S.OPEN, "heartbeat"): ("ignore", S.OPEN),
    (S.OPEN, "close"): ("on_close", S.CLOSED),
    (S.OPEN, "blocked"): ("on_blocked", S.OPEN),
    (S.OPEN, "unblocked"): ("on_unblocked", S.OPEN),
    (S.OPEN, "update-secret-ok"): ("on_update_secret_ok", S.OPEN),
    # After our connection.close the broker still answers what was sent before it (confirms,
    # replies): close() promises to wait for those, so channel frames are still handled.
    (S.CLOSING, "heartbeat"): ("ignore", S.CLOSING),
    (S.CLOSING, "blocked"): ("ignore", S.CLOSING),
    (S.CLOSING, "unblocked"): ("ignore", S.CLOSING),
    (S.CLOSING, "update-secret-ok"): ("ignore", S.CLOSING),
    (S.CLOSING, "close"): ("on_close", S.CLOSED),
    (S.CLOSING, "close-ok"): ("on_close_ok", S.CLOSED),
    # --- the user ------------------------------------------------------------------------------
    (S.INITIAL, "connect"): ("connect", S.AWAIT_START),  # the header queued, a transport wanted
    (S.INITIAL, "drop"): ("ignore", S.CLOSED),  # closed before it was connected
    (S.OPEN, "send-close"): ("send_close", S.CLOSING),  # everything before it is answered
    # --- the driver's transport ----------------------------------------------------------------
    (S.AWAIT_START, "transport-ready"): ("ignore", S.AWAIT_START),  # connect() sent the header
    (S.AWAIT_START, "transport-failed"): ("try_next_node", S.AWAIT_START),  # or give-up
    (S.AWAIT_START, "give-up"): ("fail", S.CLOSED),  # every broker failed: the last one's error
    **{(state, "transport-lost"): ("fail_connecting", S.CLOSED) for state in _HANDSHAKE},
    (S.OPEN, "transport-lost"): ("fail_lost", S.CLOSED),
    (S.CLOSING, "transport-lost"): ("closed_by_loss", S.CLOSED),  # the close succeeded
    **{(state, "transport-dropped"): ("fail_dropped", S.CLOSED) for state in (S.INITIAL, *_LIVE)},
    # --- the timers ----------------------------------------------------------------------------
    **{(state, "handshake-timeout"): ("fail", S.CLOSED) for state in _HANDSHAKE},
    (S.AWAIT_OPEN_OK, "dead"): ("fail", S.CLOSED),  # heartbeats start with the tune
    (S.OPEN, "dead"): ("fail", S.CLOSED),
    (S.CLOSING, "dead"): ("fail", S.CLOSED),
    # --- ending it ourselves: connection.close with the reason, then the end ---------------------
    (S.INITIAL, "abort"): ("fail", S.CLOSED),  # nothing sent yet: nothing to tell
    **{(state, "abort"): ("abort", S.CLOSED) for state in _LIVE},
}
"""Every (state, input) pair of a connection without recovery."""

RECOVERY_TRANSITIONS: dict[tuple[ConnectionState, str], tuple[str, ConnectionState]] = {
    **TRANSITIONS,
    # --- a connection that was open is recovered, not ended --------------------------------------
    # (before the first open, a forced close ends the connection as any close does)
    (S.AWAIT_TUNE, "forced-close"): ("on_close", S.CLOSED),
    (S.AWAIT_OPEN_OK, "forced-close"): ("on_close", S.CLOSED),
    (S.OPEN, "forced-close"): ("on_forced_close", S.RECOVERING),
    (S.CLOSING, "forced-close"): ("on_close", S.CLOSED),  # we were closing: stay closed
    (S.OPEN, "transport-lost"): ("recover_lost", S.RECOVERING),
    (S.OPEN, "dead"): ("recover", S.RECOVERING),
    # --- no transport: wait for the back-off, then ask the driver for one ------------------------
    (S.RECOVERING, "reconnect"): ("want_transport", S.RECOVERING),
    (S.RECOVERING, "transport-ready"): ("reopen", S.RECOVERY_AWAIT_START),
    (S.RECOVERING, "transport-failed"): ("attempt_failed", S.RECOVERING),  # or give-up
    (S.RECOVERING, "give-up"): ("fail", S.CLOSED),  # max_attempts, credentials, vhost
    (S.RECOVERING, "transport-dropped"): ("fail_dropped", S.CLOSED),  # abort(): no more tries
    # --- the handshake again: as the first one, but a failure is a failed attempt ---------------
    (S.RECOVERY_AWAIT_START, "start"): ("on_start", S.RECOVERY_AWAIT_TUNE),
    (S.RECOVERY_AWAIT_TUNE, "secure"): ("on_secure", S.CLOSED),
    (S.RECOVERY_AWAIT_TUNE, "tune"): ("on_tune", S.RECOVERY_AWAIT_OPEN_OK),
    (S.RECOVERY_AWAIT_TUNE, "close"): ("on_close", S.CLOSED),  # refused: credentials, vhost
    (S.RECOVERY_AWAIT_TUNE, "forced-close"): ("attempt_closed", S.RECOVERING),
    (S.RECOVERY_AWAIT_TUNE, "heartbeat"): ("ignore", S.RECOVERY_AWAIT_TUNE),
    (S.RECOVERY_AWAIT_OPEN_OK, "open-ok"): ("on_reopen_ok", S.OPEN),  # then the topology replay
    (S.RECOVERY_AWAIT_OPEN_OK, "close"): ("on_close", S.CLOSED),
    (S.RECOVERY_AWAIT_OPEN_OK, "forced-close"): ("attempt_closed", S.RECOVERING),
    (S.RECOVERY_AWAIT_OPEN_OK, "heartbeat"): ("ignore", S.RECOVERY_AWAIT_OPEN_OK),
    (S.RECOVERY_AWAIT_OPEN_OK, "blocked"): ("on_blocked", S.RECOVERY_AWAIT_OPEN_OK),
    (S.RECOVERY_AWAIT_OPEN_OK, "unblocked"): ("on_unblocked", S.RECOVERY_AWAIT_OPEN_OK),
    **{(state, "transport-lost"): ("attempt_lost", S.RECOVERING) for state in _RECOVERY_HANDSHAKE},
    **{
        (state, "handshake-timeout"): ("attempt_failed", S.RECOVERING)
        for state in _RECOVERY_HANDSHAKE
    },
    (S.RECOVERY_AWAIT_OPEN_OK, "dead"): ("attempt_failed", S.RECOVERING),
}
"""Every (state, input) pair of a connection with a `Recovery`."""


_METHOD_INPUTS = {
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


def input_of(frame: Any, recovering: bool) -> tuple[str, methods.Method | None]:
    """The remote input a frame on channel 0 is, and its method (`recovering`: the
    connection has a `Recovery`, so a close it reconnects after is `forced-close`)."""
    kind = type(frame)
    if kind is HeartbeatFrame:
        return "heartbeat", None
    if kind is not MethodFrame and kind is not ContentFrame:
        raise UnexpectedFrame("content frame on channel 0")
    method = frame.method
    name = _METHOD_INPUTS.get(method.KEY)
    if name is None:
        raise CommandInvalid(
            f"{method.NAME} on channel 0, which carries only connection methods",
            method.CLASS_ID,
            method.METHOD_ID,
        )
    if name == "close" and recovering and method.reply_code in RECOVERABLE_REPLY_CODES:
        name = "forced-close"
    return name, method
