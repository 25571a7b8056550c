"""The connection state machine, as a table: (state, input) → (action, next state).

Inputs are the connection-class methods that arrive on channel 0 (`start`, `secure`, `tune`,
`open-ok`, `close`, `close-ok`, `blocked`, `unblocked`, `update-secret-ok`), `heartbeat`, and
`channel` for any frame on another channel. A pair that is not in the table is a protocol
violation: the connection closes with 505 UNEXPECTED_FRAME (or 504 for a channel frame before
the connection is open), naming both.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["TRANSITIONS", "ConnectionState"]


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
    RECOVERING = "recovering"  # lost; waiting to reconnect (no transport, so no input)
    CLOSED = "closed"


S = ConnectionState

TRANSITIONS: dict[tuple[ConnectionState, str], tuple[str, ConnectionState]] = {
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
    (S.OPEN, "channel"): ("on_channel_frame", S.OPEN),
    (S.OPEN, "heartbeat"): ("ignore", S.OPEN),
    (S.OPEN, "close"): ("on_close", S.CLOSED),
    (S.OPEN, "blocked"): ("on_blocked", S.OPEN),
    (S.OPEN, "unblocked"): ("on_unblocked", S.OPEN),
    (S.OPEN, "update-secret-ok"): ("on_update_secret_ok", S.OPEN),
    # After our connection.close the broker still answers what was sent before it (confirms,
    # replies): close() promises to wait for those, so channel frames are still handled.
    (S.CLOSING, "channel"): ("on_channel_frame", S.CLOSING),
    (S.CLOSING, "heartbeat"): ("ignore", S.CLOSING),
    (S.CLOSING, "blocked"): ("ignore", S.CLOSING),
    (S.CLOSING, "unblocked"): ("ignore", S.CLOSING),
    (S.CLOSING, "update-secret-ok"): ("ignore", S.CLOSING),
    (S.CLOSING, "close"): ("on_close", S.CLOSED),
    (S.CLOSING, "close-ok"): ("on_close_ok", S.CLOSED),
}
"""Every allowed (state, input) pair of the connection."""
