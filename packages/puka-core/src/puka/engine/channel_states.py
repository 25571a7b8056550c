"""The channel state machine, as a table: (state, input) → (action, next state).

Everything that changes a channel's state is an input of this table (`Channel.dispatch` is
the one place that moves it). Remote inputs are what can arrive for a channel: `open-ok`,
`close` (the broker closes it: a soft error), `close-ok`, `flow`, `method` (any other method,
content-bearing ones once their content is complete), `header` and `body` (content frames),
and `content` (a method, its header and its body read as one). A remote pair that is not in
the table is a protocol violation: the connection closes with 505 UNEXPECTED_FRAME naming
both. Local inputs are ours: `send-close` (we close the channel: the idle pool is trimmed, a
transaction ends) and `lost` (the connection is gone, and every channel with it); a local pair
that is not in the table changes nothing.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["LOCAL_INPUTS", "TRANSITIONS", "ChannelState"]


class ChannelState(Enum):
    """Where a channel is in its life."""

    # Members are singletons: identity hashing is as good as Enum's, which is a Python-level
    # call and ran for every frame (the state is half of each transition table key).
    __hash__ = object.__hash__

    OPENING = "opening"  # channel.open sent (the first operation may be pipelined behind it)
    OPEN = "open"
    CLOSING = "closing"  # we sent channel.close, waiting for close-ok; everything else dropped
    CLOSED = "closed"  # its number may be reused by a new channel object


S = ChannelState

LOCAL_INPUTS = frozenset({"send-close", "lost"})
"""The inputs that come from our side, not from the broker."""

TRANSITIONS: dict[tuple[ChannelState, str], tuple[str, ChannelState]] = {
    (S.OPENING, "open-ok"): ("on_open_ok", S.OPEN),
    (S.OPENING, "close"): ("on_close", S.CLOSED),
    (S.OPEN, "method"): ("on_method", S.OPEN),
    (S.OPEN, "header"): ("on_header", S.OPEN),
    (S.OPEN, "body"): ("on_body", S.OPEN),
    (S.OPEN, "content"): ("on_content", S.OPEN),  # method, header and body read as one
    (S.OPEN, "flow"): ("on_flow", S.OPEN),
    (S.OPEN, "close"): ("on_close", S.CLOSED),
    # After we send channel.close the broker may still be sending what it sent before it saw
    # ours; the spec says to drop it all until close-ok. A crossing close is answered too.
    (S.CLOSING, "method"): ("ignore", S.CLOSING),
    (S.CLOSING, "header"): ("ignore", S.CLOSING),
    (S.CLOSING, "body"): ("ignore", S.CLOSING),
    (S.CLOSING, "content"): ("ignore", S.CLOSING),
    (S.CLOSING, "flow"): ("ignore", S.CLOSING),
    (S.CLOSING, "open-ok"): ("ignore", S.CLOSING),
    (S.CLOSING, "close"): ("on_close_while_closing", S.CLOSING),
    (S.CLOSING, "close-ok"): ("on_close_ok", S.CLOSED),
    # ours
    (S.OPENING, "send-close"): ("send_close", S.CLOSING),
    (S.OPEN, "send-close"): ("send_close", S.CLOSING),
    (S.OPENING, "lost"): ("ignore", S.CLOSED),
    (S.OPEN, "lost"): ("ignore", S.CLOSED),
    (S.CLOSING, "lost"): ("ignore", S.CLOSED),
}
"""Every allowed (state, input) pair of a channel."""
