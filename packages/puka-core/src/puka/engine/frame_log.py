"""The `puka.frames` logger: one DEBUG line per frame received (`<`) and sent (`>`).

    logging.getLogger("puka.frames").setLevel(logging.DEBUG)

A line names the channel and the frame: a method with its fields
(`> ch=1 basic.publish exchange='' routing_key='q' mandatory=False immediate=False`), a
content header with its size and properties, a body by its size only (`< ch=1 body 12 bytes`:
bodies are never printed), a heartbeat. Secrets are never printed: the login response of
`connection.start-ok` and the token of `connection.update-secret` show as `<redacted>`.

The engine asks `enabled()` once per batch of bytes, so the logger costs nothing while DEBUG is
off for it. A body frame that arrives in pieces (large messages are read as they come) logs a
line per piece.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from puka_spec import (
    BodyFrame,
    ContentFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    methods,
)
from puka_spec.constants import PROTOCOL_HEADER
from puka_spec.exceptions import AMQPError

__all__ = ["FRAMES", "describe", "enabled", "log_received", "log_sent"]

FRAMES = logging.getLogger("puka.frames")
"""The frame logger (a child of `puka`)."""

_DEBUG = logging.DEBUG
_SECRETS = {
    methods.ConnectionStartOk.KEY: frozenset({"response"}),
    methods.ConnectionUpdateSecret.KEY: frozenset({"new_secret"}),
}
_REDACTED = "<redacted>"


def enabled() -> bool:
    """Whether frames are logged now (DEBUG is on for `puka.frames`)."""
    return FRAMES.isEnabledFor(_DEBUG)


def _method(method: methods.Method) -> str:
    hidden = _SECRETS.get(method.KEY, ())
    fields = " ".join(
        f"{name}={_REDACTED if name in hidden else repr(getattr(method, name))}"
        for name, _kind in method.FIELDS
    )
    return f"{method.NAME} {fields}" if fields else method.NAME


def _properties(properties: Any) -> str:
    shown = {k: v for k, v in vars(properties).items() if v is not None}
    return f"properties={shown!r}"


def describe(frame: Any) -> list[str]:
    """The log lines of one frame (three for an assembled `ContentFrame`, which was three)."""
    kind = type(frame)
    if kind is HeartbeatFrame:
        return ["heartbeat" if not frame.channel else f"ch={frame.channel} heartbeat"]
    where = f"ch={frame.channel}"
    if kind is MethodFrame:
        return [f"{where} {_method(frame.method)}"]
    if kind is HeaderFrame:
        return [f"{where} header body_size={frame.body_size} {_properties(frame.properties)}"]
    if kind is BodyFrame:
        return [f"{where} body {len(frame.payload)} bytes"]
    if kind is ContentFrame:
        size = len(frame.body)
        lines = [
            f"{where} {_method(frame.method)}",
            f"{where} header body_size={size} {_properties(frame.properties)}",
        ]
        if size:
            lines.append(f"{where} body {size} bytes")
        return lines
    return [f"{where} {frame!r}"]


def log_received(frame: Any) -> None:
    """Log a frame the engine read."""
    for line in describe(frame):
        FRAMES.debug("< %s", line)


def log_sent(buffers: Iterable[bytes | memoryview]) -> None:
    """Log the frames in a batch the engine hands to its driver (whole frames, in order)."""
    data = b"".join(buffers)
    if data.startswith(PROTOCOL_HEADER):
        FRAMES.debug("> protocol header AMQP 0-9-1")
        data = data[len(PROTOCOL_HEADER) :]
    reader = FrameReader(max(len(data), 8))  # ours: whole frames, any size
    reader.feed(data)
    try:
        while (frame := reader.read_frame()) is not None:
            for line in describe(frame):
                FRAMES.debug("> %s", line)
    except AMQPError as error:  # never: the engine encoded them; say so rather than fail a send
        FRAMES.debug("> (%d bytes this log could not read: %s)", len(data), error)
