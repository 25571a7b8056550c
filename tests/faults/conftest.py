"""Fixtures of the fault suite (``tests/faults``).

* ``fault_proxy`` -- a running :class:`~tests.faults.fault_proxy.FaultProxy` in front of the
  shared broker (``amqp_url``); ``fault_proxy.url(amqp_url)`` is the URL through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.faults.fault_proxy import FaultProxy


@pytest.fixture
def fault_proxy(amqp_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's broker, stopped (links reset) at teardown."""
    parts = urlsplit(amqp_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        yield proxy
