"""The consume loop shared by `consume`, `tap`, `dump` and `rpc serve`.

`Deliveries` hands out the messages of a consume one by one and says when to stop: after a
count, after an idle timeout, once the queues are empty, or on Ctrl-C. `stop()` cancels the
consume and returns the messages that were delivered but not handed out yet, so the caller can
requeue them in order (`requeue_rest`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import puka

from puka_cli.context import Interrupt

__all__ = ["Deliveries", "queues_empty", "requeue_rest"]

_POLL = 0.1  # seconds between checks of Ctrl-C, the idle timeout and emptiness
_SETTLE = 0.05  # how long to wait for messages in transit once a queue looks empty


def queues_empty(client: puka.Client, queues: Sequence[str]) -> bool:
    """Whether every queue has no ready message (a passive declare of each)."""
    promises = [client.queue_declare(queue=queue, passive=True) for queue in queues]
    results = client.wait_for_all(promises)
    return all(result["message_count"] == 0 for result in results)


class Deliveries:
    """The messages of a running consume, with the limits a command puts on them.

    `stopped` says why iteration ended: `"count"`, `"idle"`, `"empty"` or `"interrupted"`.
    """

    def __init__(
        self,
        client: puka.Client,
        promise: int,
        *,
        queues: Sequence[str] = (),
        count: int | None = None,
        idle_timeout: float | None = None,
        until_empty: bool = False,
        interrupt: Interrupt | None = None,
    ) -> None:
        self.client = client
        self.promise = promise
        self.queues = list(queues)
        self.count = count
        self.idle_timeout = idle_timeout
        self.until_empty = until_empty
        self.interrupt = interrupt
        self.received = 0
        self.stopped: str | None = None
        self._cancelled = False

    def __iter__(self) -> Iterator[puka.Result]:
        client, promise = self.client, self.promise
        last = time.monotonic()
        while True:
            if self.count is not None and self.received >= self.count:
                self.stopped = "count"
                return
            if self.interrupt is not None and self.interrupt.requested:
                self.stopped = "interrupted"
                return
            result = client.wait(promise, timeout=_POLL)
            if result is None:
                now = time.monotonic()
                if self.idle_timeout is not None and now - last >= self.idle_timeout:
                    self.stopped = "idle"
                    return
                if self.until_empty and self.queues and queues_empty(client, self.queues):
                    result = client.wait(promise, timeout=_SETTLE)
                    if result is None:
                        self.stopped = "empty"
                        return
                else:
                    continue
            last = time.monotonic()
            self.received += 1
            yield result

    def stop(self) -> list[puka.Result]:
        """Cancel the consume; return what was delivered and not handed out, in order."""
        rest: list[puka.Result] = []
        if self._cancelled:
            return rest
        self._cancelled = True
        client = self.client
        client.wait(client.basic_cancel(self.promise))
        while (result := client.wait(self.promise, timeout=0)) is not None:
            if not result.is_error:
                rest.append(result)
        return rest


def requeue_rest(client: puka.Client, last_unsettled: puka.Result | None) -> None:
    """Requeue (nack with `multiple`) every unsettled message up to `last_unsettled`, in order.

    `last_unsettled` must itself be unsettled: RabbitMQ closes the channel when the tag of a
    `multiple` nack was already settled.
    """
    if last_unsettled is not None:
        client.basic_nack(last_unsettled, multiple=True, requeue=True)
