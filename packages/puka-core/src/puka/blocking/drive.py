"""Driving several clients from one thread."""

from __future__ import annotations

import selectors
import threading
import time
from collections.abc import Iterable

from puka.arguments import check_timeout, list_of
from puka.blocking.client import Client
from puka.blocking.handoff import Handoff

__all__ = ["loop"]


def loop(clients: Iterable[Client], timeout: float | None = None) -> None:
    """Run the callbacks of several clients as results arrive, from this thread.

    Returns when every client has called `loop_break()` (or is closed), or after `timeout`
    seconds. Heartbeats and timers of each client keep running, and a client with automatic
    recovery (`reconnect=True`) that lost its connection reconnects from here, its back-off
    waited out without holding up the others. Calls handed to a client by other threads
    (`call_soon_threadsafe`) wake it and run here.

    While it runs, this thread is each client's own: a call of one from another thread raises
    `WrongThread`, as during a client's `loop`.

    Each socket is registered with the selector once, and changed only when what its client
    waits for changes, so the cost of a message does not grow with the number of clients.
    """
    check_timeout(timeout, "timeout", "loop")
    clients = list_of(
        clients, "clients", "loop", Client, "an iterable of puka.Client", "a puka.Client"
    )
    deadline = None if timeout is None else time.monotonic() + timeout
    me = threading.get_ident()
    for client in clients:
        if client._owner is not None and client._owner != me:
            client._wrong_thread("loop")
    owners = [client._owner for client in clients]
    for client in clients:
        client._owner = me
    selector = selectors.DefaultSelector()
    watched = _Watched(selector)
    first = True
    try:
        for client in clients:
            client._loop_break = False
            client.on_write()
        while True:
            for client in clients:  # callbacks first: one may break another's loop
                client.run_any_callbacks()
            live = [
                c
                for c in clients
                if not c._loop_break and (c.socket() is not None or c._recovering)
            ]
            if not live:
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline and not first:
                return  # (the first round always looks at the sockets, even with timeout 0)
            first = False
            for client in live:
                if client.socket() is None:  # recovering: reconnect if it is time
                    client._recovery_due(now)
            until = deadline
            for client in live:
                timer = client.engine.next_timer()
                if timer is not None and (until is None or timer < until):
                    until = timer
            watched.update(live)
            wait_for = None if until is None else max(0.0, until - now)
            if watched:
                ready = selector.select(wait_for)
            else:  # every live client is waiting to reconnect
                time.sleep(wait_for if wait_for is not None else 0.05)
                ready = []
            for key, mask in ready:
                client = key.data
                if isinstance(client, Handoff):  # its client runs the calls next round
                    client.drain()
                    continue
                if mask & selectors.EVENT_READ:
                    client.on_read()
                if mask & selectors.EVENT_WRITE:
                    client.on_write()
            now = time.monotonic()
            for client in live:
                if client.socket() is None:
                    if client._recovering:
                        client._recovery_due(now)
                elif client._run_timers(now):
                    client.on_write()
    finally:
        selector.close()
        for client, owner in zip(clients, owners, strict=True):
            client._loop_break = False
            client._owner = owner


class _Watched:
    """What `loop`'s selector watches: each live client's socket (for reading, and for writing
    while it has bytes queued) and the reading end of its handoff.

    `update` changes the selector only where that differs from the round before: a client's
    write interest changed, recovery replaced its socket, or it left (closed, broke its loop).
    Registering every socket anew each round cost two system calls per client per round, which
    made the CPU per message grow with the number of clients.
    """

    __slots__ = ("_registered", "_selector")

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        # descriptor -> (what owns it: a socket or a handoff, events, the key's data); the
        # owner tells a reused descriptor number (a socket closed, another opened) from the same
        self._registered: dict[int, tuple[object, int, Client | Handoff]] = {}

    def __bool__(self) -> bool:
        return bool(self._registered)

    def update(self, live: list[Client]) -> None:
        """Watch what `live` need now, and nothing else."""
        wanted: dict[int, tuple[object, int, Client | Handoff]] = {}
        for client in live:
            handoff = client._handoff
            fd = handoff.fileno()
            if fd >= 0:  # another thread may hand it a call: watch for it
                wanted[fd] = (handoff, selectors.EVENT_READ, handoff)
            sock = client.socket()
            if sock is None:
                continue  # recovering: its reconnect timer is part of `loop`'s wait
            events = selectors.EVENT_READ
            if client.needs_write():
                events |= selectors.EVENT_WRITE
            wanted[sock.fileno()] = (sock, events, client)
        selector, registered = self._selector, self._registered
        for fd, (owner, _, _) in list(registered.items()):
            entry = wanted.get(fd)
            if entry is None or entry[0] is not owner:
                del registered[fd]
                selector.unregister(fd)  # (a descriptor closed meanwhile is forgotten quietly)
        for fd, entry in wanted.items():
            old = registered.get(fd)
            if old is None:
                selector.register(fd, entry[1], entry[2])
            elif old[1] != entry[1] or old[2] is not entry[2]:
                selector.modify(fd, entry[1], entry[2])
            else:
                continue
            registered[fd] = entry
