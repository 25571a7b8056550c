"""The blocking driver: `puka.Client` over a socket, `puka.loop` over many clients.

This is the only part of puka-core that touches sockets, `poll`/`selectors` and the clock;
everything it drives is the sans-I/O engine (`puka.engine`).
"""
