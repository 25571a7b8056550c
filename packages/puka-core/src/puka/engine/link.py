"""What the parts of the engine need of the connection they belong to.

The engine's parts (channels, operations, the publisher, settling, the operation queue) never
import `Engine`, which is made of them: each one says, in a `typing.Protocol` of its own
module, what it uses of its connection, and `Engine` has all of it (mypy checks that where the
engine hands itself over). `Link` is what every part needs: a way to send frames.
"""

from __future__ import annotations

from typing import Protocol

from puka_spec import methods

__all__ = ["Link"]


class Link(Protocol):
    """Frames out: what every part of the engine needs of its connection."""

    def send_method(self, channel: int, method: methods.Method) -> None:
        """Queue one method frame."""

    def send_raw(self, data: bytes) -> None:
        """Queue encoded frames."""

    def send_buffers(self, buffers: list[bytes | memoryview]) -> None:
        """Queue encoded frames given as several buffers."""
