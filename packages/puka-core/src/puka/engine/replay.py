"""What a recovery keeps and restores: the consumes, and the topology declared again.

When the connection is lost, what was in flight fails, but the consumes go on
(`fail_in_flight`). Once the new connection is open, the recorded topology is declared again,
one method at a time (`Replay`), then the consumes start again. Sequential on purpose: a
server-named queue comes back under a new name, and the bindings and consumes that follow must
use it. An object the broker now refuses (say, a queue redeclared elsewhere with other
arguments) is skipped and its error kept in `engine.recovery_errors`; the replay goes on with
a fresh channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from puka_spec import BasicProperties, methods
from puka_spec.exceptions import AMQPError

from puka.engine.operations import Consume, Operation, OperationLink
from puka.results import Result

if TYPE_CHECKING:
    from puka.engine.channels import Channel
    from puka.promises import Promise, Promises

__all__ = ["Replay", "ReplayLink", "fail_in_flight"]


class ReplayLink(OperationLink, Protocol):
    """What the replay needs of its connection (`Engine`)."""

    recovery_errors: list[AMQPError]  # what the broker refused to declare again


def fail_in_flight(
    promises: Promises, consumes: Iterable[Consume], lost: BaseException
) -> set[Consume]:
    """The connection was lost: every promise in flight fails with `lost`, but `consumes`
    (those not over) go on, without their channel; they are returned."""
    survivors = {op for op in consumes if not op.promise.done}
    for op in survivors:
        op.detach(lost)
    for promise in list(promises.live.values()):
        if not promise.done and promise.op not in survivors:
            promises.resolve(promise, Result.error(lost))
    promises.fail_bare(lost)  # unwritten publishes without confirms
    return survivors


class Replay(Operation):
    """Replays `engine.topology`, then calls `done(renamed_queues)`."""

    def __init__(
        self, engine: ReplayLink, promise: Promise, done: Callable[[dict[str, str]], None]
    ) -> None:
        super().__init__(engine, promise)
        self.engine: ReplayLink = engine
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
