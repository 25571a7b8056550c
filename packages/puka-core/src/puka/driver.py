"""What Puka's drivers share: the engine a client's options describe, and how they tune I/O.

A driver (`puka.Client` in `puka.blocking`, puka-asyncio's client, one for another event loop)
owns only how to read, write, wait and schedule. What would otherwise be written once per
driver lives here, or in the engine: building the engine from the keyword arguments of a
client's constructor (each checked first), the decision a timer leaves to the driver, the
sizes both drivers tune their reads and writes with, and the read buffer that the connections
of one thread or event loop share. This module does no I/O (a test checks
it): opening a TLS transport, and the errors of a transport that could not be opened, are
`puka.tls`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from puka.arguments import check_client_options
from puka.engine import READ_SIZE, Engine
from puka.engine.recovery import recovery_for
from puka.urls import ConnectionParameters, client_addresses

__all__ = [
    "EAGER_WRITE",
    "READS_PER_WAKE",
    "ReadBuffer",
    "checked_engine",
    "client_engine",
    "client_engine_arguments",
    "run_timer",
]

EAGER_WRITE = 65536
"""Queued bytes above which a call hands the transport what it takes at once, rather than with
the rest of its batch: a large backlog starts moving while the caller goes on queueing."""

READS_PER_WAKE = 16
"""Reads a driver makes in a row, as long as each fills its buffer (of `puka.engine.READ_SIZE`),
before it waits on the transport again: a large message costs a few wake-ups, not one per read."""


class ReadBuffer:
    """One read buffer (of `puka.engine.READ_SIZE`) that many connections take turns with.

    The engine copies what it keeps of what it is fed (`Engine.receive_data`), so a read's
    bytes are needed only until that call returns: the connections one thread (or one event
    loop) drives can all read into one buffer, instead of 64 KiB each (which was most of the
    memory of an idle connection). A driver `hold`s the buffer while its engine is fed from
    it; a read made meanwhile, by another connection from inside that feed (a hook, a nested
    wait), gets a `spare` buffer of its own, so nothing overwrites bytes still being decoded.
    """

    def __init__(self, size: int = READ_SIZE) -> None:
        self.buffer = memoryview(bytearray(size))
        self.held = False

    def spare(self) -> memoryview:
        """The buffer to read into now: the shared one, or a new one while that is held."""
        return memoryview(bytearray(len(self.buffer))) if self.held else self.buffer

    def hold(self, buffer: memoryview) -> None:
        """`buffer` (from `spare`) holds bytes being fed to an engine: lend it to no other."""
        if buffer is self.buffer:
            self.held = True

    def give_back(self, buffer: memoryview) -> None:
        """The engine was fed what `buffer` held: it may be read into again."""
        if buffer is self.buffer:
            self.held = False


_ENGINE_CHECKED = ("pubacks", "client_properties", "blocked_timeout", "handshake_timeout")
"""The options of a client that go to its `Engine` as they are, checked as a client checks."""
_CHECKED = (
    "amqp_url",
    "reconnect",
    "shuffle",
    "heartbeat",
    "connection_timeout",
    "connection_name",
    "max_message_size",
    *_ENGINE_CHECKED,
)
"""The options `check_client_options` checks: every one of a client's, `ssl` aside."""
_ENGINE_OPTIONS = ("max_message_size", "recovery", *_ENGINE_CHECKED)
"""The keyword arguments of `Engine`."""


def client_engine_arguments(
    call: str, options: Mapping[str, Any]
) -> tuple[list[ConnectionParameters], dict[str, Any]]:
    """The broker addresses and the other `Engine` arguments that a client's options describe.

    `options` holds the keyword arguments of `puka.Client` (and `puka_asyncio.connect`) by
    name, as the constructor was given them (what `locals()` holds at its start; other names,
    `ssl` among them, are not looked at: `puka.tls.check_ssl_context` checks that one). Each
    is checked first, as `call` (see `puka.arguments`): a wrong one raises `TypeError` or
    `ValueError` naming it, and nothing is built.
    """
    check_client_options(call, {name: options[name] for name in _CHECKED})
    addresses = client_addresses(
        options["amqp_url"],
        shuffle=options["shuffle"],
        heartbeat=options["heartbeat"],
        connection_timeout=options["connection_timeout"],
        connection_name=options["connection_name"],
        max_message_size=options["max_message_size"],
    )
    arguments = {
        "pubacks": options["pubacks"],
        "client_properties": options["client_properties"],
        "recovery": recovery_for(options["reconnect"]),
        "blocked_timeout": options["blocked_timeout"],
        "handshake_timeout": options["handshake_timeout"],
    }
    return addresses, arguments


def client_engine(call: str, options: Mapping[str, Any]) -> Engine:
    """The engine of a client made with `options` (see `client_engine_arguments`)."""
    addresses, arguments = client_engine_arguments(call, options)
    return Engine(addresses, **arguments)


def checked_engine(
    call: str,
    addresses: ConnectionParameters | list[ConnectionParameters],
    options: Mapping[str, Any],
) -> Engine:
    """The engine over `addresses` that `options` describe: `Engine`'s keyword arguments by
    name (a missing one is `None`, other names are not looked at), checked as a client's
    (`check_client_options`, as `call`) first."""
    check_client_options(call, {name: options[name] for name in _ENGINE_CHECKED})
    return Engine(addresses, **{name: options.get(name) for name in _ENGINE_OPTIONS})


def run_timer(engine: Engine, now: float) -> bool:
    """`engine.handle_timer(now)`; whether the driver must now drop its transport.

    It must when the timer ended the connection (a heartbeat, handshake or blocked timeout:
    the peer is not reading us, so waiting for it to take our last bytes is pointless) or
    started a recovery, which wants a new transport, not the old one.
    """
    was_closed = engine.closed
    engine.handle_timer(now)
    return engine.recovering or engine.transport_wanted or (engine.closed and not was_closed)
