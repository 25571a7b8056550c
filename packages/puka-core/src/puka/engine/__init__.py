"""The sans-I/O engine: all of Puka's protocol logic, with no sockets, clocks or threads.

Every module in this package is pure computation over bytes and the times a driver passes in
(a test checks that none imports an I/O, clock or threading module). A driver owns the
transport and the clock: `puka.Client` (`puka.blocking`) over a blocking socket, or
puka-asyncio's protocol over an asyncio transport. See `puka.engine.connection.Engine` and
`docs/library-authors/engine.md`.
"""

from puka.engine.connection import DEFAULT_MAX_MESSAGE_SIZE, READ_SIZE, Engine

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "READ_SIZE", "Engine"]
