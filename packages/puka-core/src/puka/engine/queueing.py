"""Operation queueing: each call starts at once, or waits its turn.

An operation starts as soon as the connection is open, nothing started before it is still
waiting, and the pool has a channel for it; otherwise it waits, in order, until the connection
opens or a channel is freed. Calls made while recovery reconnects fail at once (nothing is
buffered in secret), and calls on a closed connection raise `ClientClosed`. Side operations
(qos, cancel, commit, ...) run on the channel of the consume or transaction that holds it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from puka_spec import methods

from puka.engine.connection_states import ConnectionState
from puka.engine.operations import (
    ChannelHolder,
    Consume,
    Operation,
    OperationLink,
    SideRpc,
    Transaction,
)
from puka.errors import ChannelClosed, ClientClosed, ConnectionLost
from puka.results import Result

if TYPE_CHECKING:
    from puka.promises import Promise

__all__ = ["Deferred", "Queue", "QueueLink", "refuse_if_closed"]

_OPEN = ConnectionState.OPEN  # read as globals: an Enum class attribute is slow on Python 3.11
_RECONNECTING = frozenset(  # recovering: calls fail at once until the connection is back
    {
        ConnectionState.RECOVERING,
        ConnectionState.RECOVERY_AWAIT_START,
        ConnectionState.RECOVERY_AWAIT_TUNE,
        ConnectionState.RECOVERY_AWAIT_OPEN_OK,
    }
)


class QueueLink(OperationLink, Protocol):
    """What the queue needs of its connection (`Engine`)."""

    state: ConnectionState
    error: BaseException | None


def refuse_if_closed(state: ConnectionState, error: BaseException | None) -> None:
    """A call on a closed (or closing) connection raises `ClientClosed`, naming why it ended."""
    if state is ConnectionState.CLOSED or state is ConnectionState.CLOSING:
        raise ClientClosed(
            "the client is closed" + (f" ({type(error).__name__}: {error})" if error else "")
        )


class Deferred(Operation):
    """A call made before the connection is open (or behind others), replayed in its turn."""

    def __init__(self, engine: OperationLink, promise: Promise, replay: Callable[[], None]) -> None:
        super().__init__(engine, promise)
        self.replay = replay


class Queue:
    """The operations waiting for the connection or for a channel, in order."""

    def __init__(self, link: QueueLink) -> None:
        self.link = link
        # a deque while something waits; an empty tuple otherwise (an idle connection holds
        # no deque: one costs 760 bytes, even empty)
        self.waiting: deque[Operation] | tuple[()] = ()

    def _wait(self, op: Operation) -> None:
        """Keep `op` until its turn, after the others waiting."""
        waiting = self.waiting
        if type(waiting) is tuple:
            waiting = self.waiting = deque()
        waiting.append(op)  # type: ignore[union-attr]  # (a deque by now)

    def check_usable(self) -> None:
        """Raise `ClientClosed` if the connection is closed or closing."""
        refuse_if_closed(self.link.state, self.link.error)

    def recovering(self) -> bool:
        """Whether recovery is reconnecting: calls fail at once."""
        return self.link.state in _RECONNECTING

    def fail_recovering(self, promise: Promise) -> None:
        """Calls made while reconnecting fail at once: nothing is buffered in secret."""
        error = ConnectionLost("the connection is being recovered: call again once it is back")
        self.link.promises.resolve(promise, Result.error(error))

    def submit(self, op: Operation) -> Promise:
        """Start `op` now if it can, else keep it until its turn; its promise."""
        if self.recovering():
            self.fail_recovering(op.promise)
            return op.promise
        if not (self.link.state is _OPEN and not self.waiting and self.start(op)):
            self._wait(op)  # until the connection opens or a channel is free
        return op.promise

    def defer(self, promise: Promise, replay: Callable[[], None]) -> None:
        """Run `replay` in this call's turn (once the connection is open)."""
        self._wait(Deferred(self.link, promise, replay))

    def when_open(self, promise: Promise, run: Callable[[], None]) -> None:
        """Run `run` now if the connection is open, else in this call's turn once it is."""
        if self.link.state is _OPEN:
            run()
        else:
            self.defer(promise, run)

    def start(self, op: Operation) -> bool:
        """Start `op` on a channel of its own; whether there was one."""
        if isinstance(op, Deferred):
            op.replay()
            return True
        channel = self.link.channels.acquire(op, op.short)
        if channel is None:
            return False
        op.channel = channel
        op.start(channel)
        return True

    def freed(self) -> None:
        """A channel became free, or the connection opened: start what was waiting."""
        if not self.waiting:
            return
        waiting = self.waiting  # (not empty: a deque)
        link = self.link
        while waiting and link.state is _OPEN:
            op = waiting.popleft()
            if not self.start(op):
                waiting.appendleft(op)
                return
        if not waiting and self.waiting is waiting:
            self.waiting = ()

    def refuse_waiting(self) -> None:
        """The connection is closing: what never started fails with `ClientClosed`."""
        waiting, self.waiting = self.waiting, ()
        for op in waiting:
            op.fail(ClientClosed("the client was closed before this operation started"))

    def survivors(self) -> set[Consume]:
        """The consumes that have not started yet and will go on after a recovery."""
        return {op for op in self.waiting if isinstance(op, Consume) and not op.promise.done}

    # --- side operations --------------------------------------------------------------------

    def holder_of(self, number: int) -> ChannelHolder:
        """The running consume or transaction of promise `number` (else `ValueError`)."""
        live = self.link.promises.live.get(number)
        op = live.op if live is not None else None
        if not isinstance(op, ChannelHolder):
            raise ValueError(f"promise {number} is not a running consume or transaction")
        return op

    def on_holder(self, number: int, action: str, method: methods.Method, promise: Promise) -> None:
        """Run `method` on the channel of a consume or transaction (see `Engine.on_holder`)."""
        live = self.link.promises.live.get(number)
        if live is not None and any(op.promise is live for op in self.waiting):
            # the holder has not started yet: run after it, in order
            self.defer(promise, lambda: self._on_holder(number, action, method, promise))
        else:
            self._on_holder(number, action, method, promise)

    def _on_holder(
        self, number: int, action: str, method: methods.Method, promise: Promise
    ) -> None:
        promises = self.link.promises
        live = promises.live.get(number)
        holder = live.op if live is not None else None
        side = SideRpc(self.link, promise, holder, method)  # type: ignore[arg-type]
        if not isinstance(holder, ChannelHolder):
            if action == "side" or not promises.issued(number):
                side.fail(
                    ChannelClosed(f"promise {number} is not a running consume or transaction")
                )
            else:  # cancelling what is already over is not an error
                side.answered(method)
        elif action == "cancel" and isinstance(holder, Consume):
            holder.cancel(side)
        elif action == "close" and isinstance(holder, Transaction):
            holder.close(side)
        else:
            holder.side(side)
