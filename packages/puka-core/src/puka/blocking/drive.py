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
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
            for client in live:
                handoff = client._handoff
                if handoff.fileno() >= 0:  # another thread may hand it a call: watch for it
                    selector.register(handoff.fileno(), selectors.EVENT_READ, handoff)
                if client.socket() is None:
                    continue  # recovering: its reconnect timer is part of `until`
                events = selectors.EVENT_READ
                if client.needs_write():
                    events |= selectors.EVENT_WRITE
                selector.register(client.fileno(), events, client)
            wait_for = None if until is None else max(0.0, until - now)
            if selector.get_map():
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
