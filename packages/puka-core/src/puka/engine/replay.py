"""Declaring the recorded topology again after a recovery, one method at a time.

Sequential on purpose: a server-named queue comes back under a new name, and the bindings and
consumes that follow must use it. An object the broker now refuses (say, a queue redeclared
elsewhere with other arguments) is skipped and its error kept in `engine.recovery_errors`;
the replay goes on with a fresh channel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from puka_spec import BasicProperties, methods
from puka_spec.exceptions import AMQPError

from puka.engine.operations import Operation
from puka.results import Result

if TYPE_CHECKING:
    from puka.engine.channels import Channel
    from puka.engine.connection import Engine
    from puka.promises import Promise

__all__ = ["Replay"]


class Replay(Operation):
    """Replays `engine.topology`, then calls `done(renamed_queues)`."""

    def __init__(
        self, engine: Engine, promise: Promise, done: Callable[[dict[str, str]], None]
    ) -> None:
        super().__init__(engine, promise)
        self.steps = engine.topology.replay()
        self.renamed: dict[str, str] = {}
        self.done = done
        self.current: tuple[str | None, methods.Method] | None = None

    def start(self, channel: Channel) -> None:
        """Send the first step."""
        self._next(channel)

    def _next(self, channel: Channel) -> None:
        if not self.steps:
            self.finish(Result("recovery.topology_ok", {"renamed": dict(self.renamed)}))
            self.done(self.renamed)
            return
        self.current = self.steps.pop(0)
        _, method = self.current
        if isinstance(method, methods.QueueBind):
            method.queue = self.renamed.get(method.queue, method.queue)
        self.engine.send_method(channel.number, method)

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """One step answered: note a new queue name, send the next."""
        if self.current is None:
            super().on_method(channel, method, props, body)
            return
        recorded, sent = self.current
        if method.KEY not in sent.RESPONSES:
            super().on_method(channel, method, props, body)
        if isinstance(method, methods.QueueDeclareOk) and recorded and recorded != method.queue:
            self.renamed[recorded] = method.queue
            self.engine.topology.rename_queue(recorded, method.queue)
        self._next(channel)

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """A step was refused: keep the error, go on with a new channel."""
        self.engine.recovery_errors.append(error)
        self.channel = None
        new = self.engine.channels.acquire(self)
        if new is None:  # pragma: no cover - the pool was just emptied by the recovery
            self.fail(error)
            return
        self.channel = new
        self._next(new)
