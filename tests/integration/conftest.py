"""Fixtures of the integration suite: connected clients and cleaned-up broker resources.

* ``client`` -- a connected :class:`puka.Client` on the shared broker, closed at teardown.
* ``make_client(url=None, connect=True, **kwargs)`` -- more clients (connected unless
  ``connect=False``), all closed at teardown.
* ``resources`` -- ``resources.queue(prefix)`` / ``resources.exchange(prefix)`` give unique
  names deleted at teardown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import puka
import pytest

from tests.broker_node import RabbitmqCtl, UniqueName
from tests.integration.helpers import SOON, Resources, close_quietly


@pytest.fixture
def make_client(amqp_url: str) -> Iterator[Callable[..., Any]]:
    """``make_client(url=None, connect=True, **Client kwargs)`` -> a (connected) client."""
    made: list[Any] = []

    def make(url: str | None = None, *, connect: bool = True, **kwargs: Any) -> Any:
        new = puka.Client(url or amqp_url, **kwargs)
        made.append(new)
        if connect:
            result = new.wait(new.connect(), timeout=SOON * 3)
            assert result is not None, "connect() did not complete"
        return new

    yield make
    for made_client in made:
        close_quietly(made_client)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    """A client connected to the shared broker; closed at teardown."""
    return make_client()


@pytest.fixture
def resources(
    amqp_url: str, unique_name: UniqueName, request: pytest.FixtureRequest
) -> Iterator[Resources]:
    """Unique names of queues and exchanges, deleted at teardown."""
    ctl: RabbitmqCtl | None = None
    with contextlib.suppress(Exception, pytest.skip.Exception, pytest.fail.Exception):
        ctl = request.getfixturevalue("rabbitmqctl")  # the last resort of the cleanup
    res = Resources(unique_name)
    yield res
    res.cleanup(amqp_url, ctl)
