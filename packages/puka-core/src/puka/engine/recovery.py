"""Automatic recovery: when to reconnect, and to which broker.

Opt in with `puka.Client(url, reconnect=True)` (or a `Recovery` for other timings). After the
connection is lost — the socket died, heartbeats stopped, or the broker closed it with 320
CONNECTION_FORCED (a node shutting down) or 541 — the client reconnects with exponential
back-off between rounds of attempts, each round trying every broker URL once, in turn (the
nodes of a cluster: a node that refuses sends it on to the next one at once), declares again
the exchanges, queues and bindings it declared, and restarts its consumes. It never recovers
from an application close, a channel error, an authentication failure or a missing virtual
host.

What recovery does not hide: operations in flight when the connection died fail with
`ConnectionLost` (for a publish: the outcome is unknown, republish if it matters), and calls
made while reconnecting fail at once with `ConnectionLost` — nothing is buffered in secret.
Consumes go on: their promises keep yielding messages after the recovery, delivery tags stay
monotonic, and acks of messages delivered before it are dropped (the broker has requeued
them already) and counted in `engine.stale_acks`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RECOVERABLE_REPLY_CODES", "Recovery", "recovery_for"]

RECOVERABLE_REPLY_CODES = frozenset({320, 541})
"""Connection closes by the broker after which recovery reconnects (forced, internal error)."""


@dataclass(frozen=True)
class Recovery:
    """Reconnection timings: the delay before attempt n is `initial_delay * multiplier**n`,
    capped at `max_delay`, with ±`jitter` of it random. With several URLs an attempt is a round
    that tries each of them once, one right after the other, starting with the node last
    connected to; `shuffle` starts each round at a random one instead. `max_attempts`
    (0 = forever) gives up after that many failed rounds, with the last error.
    """

    initial_delay: float = 0.2
    max_delay: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.1
    shuffle: bool = False
    max_attempts: int = 0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before reconnection attempt `attempt` (0-based)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
        return base * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - jitter


def recovery_for(reconnect: bool | Recovery) -> Recovery | None:
    """What a client's `reconnect` argument asks for: `True` is `Recovery()`, `False` none."""
    return Recovery() if reconnect is True else (reconnect or None)
