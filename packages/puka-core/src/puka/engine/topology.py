"""What the application declared, recorded to be declared again after a recovery.

Exchanges, queues (server-named ones too: they get a new name, and bindings and consumes
follow it) and bindings are recorded when the broker confirms them and forgotten when they are
deleted or unbound; passive declares record nothing.
"""

from __future__ import annotations

from typing import Any

from puka_spec import methods

__all__ = ["Topology"]


class Topology:
    """Declared exchanges, queues and bindings, in declaration order."""

    def __init__(self) -> None:
        self.exchanges: dict[str, methods.ExchangeDeclare] = {}
        self.queues: dict[str, methods.QueueDeclare] = {}
        self.server_named: set[str] = set()
        self.queue_bindings: dict[tuple[str, str, str, str], methods.QueueBind] = {}
        self.exchange_bindings: dict[tuple[str, str, str, str], methods.ExchangeBind] = {}

    def __len__(self) -> int:
        return (
            len(self.exchanges)
            + len(self.queues)
            + len(self.queue_bindings)
            + len(self.exchange_bindings)
        )

    def record(self, method: methods.Method, reply: methods.Method) -> None:
        """`method` succeeded with `reply`: remember or forget what it changed."""
        if isinstance(method, methods.QueueDeclare) and not method.passive:
            name = getattr(reply, "queue", method.queue)
            if not method.queue:
                self.server_named.add(name)
            self.queues[name] = method
        elif isinstance(method, methods.ExchangeDeclare) and not method.passive:
            self.exchanges[method.exchange] = method
        elif isinstance(method, methods.QueueBind):
            self.queue_bindings[_binding(method.queue, method.exchange, method)] = method
        elif isinstance(method, methods.QueueUnbind):
            self.queue_bindings.pop(_binding(method.queue, method.exchange, method), None)
        elif isinstance(method, methods.ExchangeBind):
            self.exchange_bindings[_binding(method.destination, method.source, method)] = method
        elif isinstance(method, methods.ExchangeUnbind):
            self.exchange_bindings.pop(_binding(method.destination, method.source, method), None)
        elif isinstance(method, methods.QueueDelete):
            self.queues.pop(method.queue, None)
            self.server_named.discard(method.queue)
            for key in [k for k in self.queue_bindings if k[0] == method.queue]:
                del self.queue_bindings[key]
        elif isinstance(method, methods.ExchangeDelete):
            self.exchanges.pop(method.exchange, None)
            for key in [k for k in self.queue_bindings if k[1] == method.exchange]:
                del self.queue_bindings[key]
            for key in [k for k in self.exchange_bindings if method.exchange in k[:2]]:
                del self.exchange_bindings[key]

    def rename_queue(self, old: str, new: str) -> None:
        """A server-named queue came back under a new name."""
        if old == new:
            return
        declare = self.queues.pop(old, None)
        if declare is not None:
            self.queues[new] = declare
        self.server_named.discard(old)
        self.server_named.add(new)
        for key in [k for k in self.queue_bindings if k[0] == old]:
            bind = self.queue_bindings.pop(key)
            bind.queue = new
            self.queue_bindings[(new, key[1], key[2], key[3])] = bind

    def replay(self) -> list[tuple[str | None, methods.Method]]:
        """What to send again, in order: (recorded queue name or None, method)."""
        steps: list[tuple[str | None, methods.Method]] = []
        steps.extend((None, m) for m in self.exchanges.values())
        steps.extend((name, m) for name, m in self.queues.items())
        steps.extend((None, m) for m in self.exchange_bindings.values())
        steps.extend((None, m) for m in self.queue_bindings.values())
        return steps


def _binding(destination: str, source: str, method: Any) -> tuple[str, str, str, str]:
    args = method.arguments or {}
    return (destination, source, method.routing_key, repr(sorted(args.items())))
