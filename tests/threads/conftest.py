"""Fixtures of the thread tests: the integration suite's (connected clients, unique queues).

``watchdog(client)`` guards a call that blocks without a timeout: if the call has not
returned after ``seconds``, the client's socket is shut down, so the blocked call ends with
``ConnectionLost`` (and the test fails) instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import client, make_client, resources

__all__ = ["client", "make_client", "resources", "watchdog"]


@pytest.fixture
def watchdog() -> Iterator[Callable[..., Any]]:
    """``with watchdog(client, seconds=15): client.loop()`` (see the module docstring)."""
    timers: list[threading.Timer] = []

    @contextlib.contextmanager
    def guard(client: Any, seconds: float = 15.0) -> Iterator[None]:
        def fire() -> None:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(seconds, fire)
        timers.append(timer)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    yield guard
    for timer in timers:
        timer.cancel()
