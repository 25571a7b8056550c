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

This module holds the policy (`Recovery`: the timings) and the mechanism that applies it
(`Rounds`: which broker to try next, after which back-off, when to give up). The states a
recovering connection goes through are rows of `connection_states.RECOVERY_TRANSITIONS`; what
is declared again after it is `replay`'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from puka_spec.exceptions import AccessRefused, NotAllowed

if TYPE_CHECKING:
    from puka.urls import ConnectionParameters

__all__ = ["RECOVERABLE_REPLY_CODES", "Recovery", "Rounds", "is_final", "recovery_for"]

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


class Rounds:
    """Which broker to connect to next, and when: rounds of attempts over the addresses.

    The first connect tries every address once, in turn, with no back-off. Recovery makes
    rounds: the node just lost first (or a random one, with `shuffle`), after the back-off of
    the round, then the others at once; only a round where every node failed counts as a
    failed attempt, and `max_attempts` of them give up.
    """

    def __init__(self) -> None:
        self.attempt = 0  # failed rounds since the connection was last open
        self.index = 0  # the address tried last (modulo their number)
        self.left = 0  # nodes still to try, without back-off, in this round

    def node(self, addresses: list[ConnectionParameters]) -> ConnectionParameters:
        """The address to connect to."""
        return addresses[self.index % len(addresses)]

    def first(self, addresses: list[ConnectionParameters]) -> None:
        """The first connect: one round over every address, from the current one."""
        self.left = len(addresses) - 1

    def next_node(self, addresses: list[ConnectionParameters]) -> ConnectionParameters | None:
        """The next node of this round (tried at once), or `None` when the round is over."""
        if self.left <= 0:
            return None
        self.left -= 1
        self.index += 1
        return self.node(addresses)

    def start(self, recovery: Recovery, addresses: list[ConnectionParameters]) -> float:
        """Start a round of attempts (its first node is `node`): its back-off delay."""
        delay = recovery.delay(self.attempt)
        self.attempt += 1
        self.left = len(addresses) - 1
        if recovery.shuffle and len(addresses) > 1:
            self.index = random.randrange(len(addresses))  # noqa: S311
        return delay

    def failed(self, recovery: Recovery | None) -> bool:
        """A round failed: whether recovery gives up (no recovery, or `max_attempts` rounds
        failed); if not, the next round starts at the next node."""
        if recovery is None or (recovery.max_attempts and self.attempt >= recovery.max_attempts):
            return True
        self.index += 1
        return False


def is_final(error: BaseException) -> bool:
    """Whether an attempt's error ends recovery: refused credentials or virtual host."""
    return isinstance(error, (AccessRefused, NotAllowed))
