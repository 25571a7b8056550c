"""Shared fixtures of the Puka test suite: the broker, private nodes, rabbitmqctl, names.

Integration tests ask for ``amqp_url``. The broker it names is ``$AMQP_URL`` (default
``amqp://guest:guest@127.0.0.1:5672/``). If that broker does not answer: under CI (``$CI``
set) the tests fail; elsewhere the session starts a private node if RabbitMQ is installed,
and the tests are skipped if it is not. Tests that hurt a broker (alarms, stopping it,
closing all connections) use ``private_node`` instead, and carry the ``hurts_broker`` mark.

``rabbitmqctl`` runs the local rabbitmqctl against the shared broker; set ``$RABBITMQCTL``
to another command (e.g. ``docker exec rabbitmq rabbitmqctl``) when the broker runs elsewhere.

``fault_proxy`` is a running :class:`~tests.faults.fault_proxy.FaultProxy` in front of the
shared broker, the suite's one TCP proxy for breaking a link on purpose (stall it, reset it,
slow it); ``fault_proxy.url(amqp_url)`` is the URL through it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from tests import broker_node
from tests.broker_node import (
    PrivateBrokerNode,
    RabbitmqCtl,
    UniqueName,
    broker_reachable,
    rabbitmq_installed,
    run_command,
)
from tests.faults.fault_proxy import FaultProxy


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's markers (the suite runs with --strict-markers)."""
    config.addinivalue_line(
        "markers",
        "hurts_broker: the test raises alarms on, stops or disconnects a broker; "
        "it must use the private_node fixture, never the shared broker",
    )


def _unavailable(reason: str) -> NoReturn:
    """Skip the test for missing infrastructure -- or fail it under CI, where it is a bug."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: missing infrastructure is a failure, not a skip)")
    pytest.skip(reason)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


@dataclass(frozen=True)
class SessionBroker:
    """The broker the session's integration tests use."""

    url: str
    #: The private node started because the configured broker did not answer, if any.
    node: PrivateBrokerNode | None = None


@pytest.fixture(scope="session")
def session_broker() -> Iterator[SessionBroker]:
    """Find the session's broker, starting a private node as a last resort (see module doc)."""
    url = broker_node.amqp_url()
    if broker_reachable(url):
        yield SessionBroker(url)
        return
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5672}"
    if os.environ.get("CI"):
        pytest.fail(f"no AMQP broker answers at {where} (AMQP_URL); under CI that is a failure")
    if not rabbitmq_installed():
        pytest.skip(f"no AMQP broker answers at {where} and rabbitmq-server is not installed")
    with PrivateBrokerNode() as node:
        yield SessionBroker(node.url, node)


@pytest.fixture(scope="session")
def amqp_url(session_broker: SessionBroker) -> str:
    """The URL of the broker shared by the session's integration tests."""
    return session_broker.url


@pytest.fixture(scope="session")
def private_node() -> Iterator[PrivateBrokerNode]:
    """A private RabbitMQ node shared by the session's ``hurts_broker`` tests.

    Each test must leave it as it found it (clear the alarms it raised, and so on).
    """
    if not rabbitmq_installed():
        _unavailable("rabbitmq-server is not installed: no private broker node")
    with PrivateBrokerNode() as node:
        yield node


@pytest.fixture
def rabbitmqctl(session_broker: SessionBroker) -> RabbitmqCtl:
    """``rabbitmqctl(*args, timeout=30.0) -> stdout`` against the session's broker.

    Raises RuntimeError (with rabbitmqctl's message) if the command fails or times out.
    """
    if session_broker.node is not None:
        return session_broker.node.ctl
    override = os.environ.get("RABBITMQCTL")
    if override:
        prefix = shlex.split(override)

        def run(*args: str, timeout: float = 30.0) -> str:
            return run_command([*prefix, *args], timeout=timeout)

        return run
    if not rabbitmq_installed():
        _unavailable("rabbitmqctl is not installed (set RABBITMQCTL to reach the broker's)")
    host = urlsplit(session_broker.url).hostname or "localhost"
    if not _is_loopback(host):
        _unavailable(f"the broker runs on {host}: set RABBITMQCTL to reach its rabbitmqctl")
    return broker_node.rabbitmqctl


@pytest.fixture
def fault_proxy(amqp_url: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's broker, stopped (links reset) at teardown."""
    parts = urlsplit(amqp_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        yield proxy


@pytest.fixture
def unique_name() -> UniqueName:
    """``unique_name(prefix="t")`` -> a fresh ``puka-test-<prefix>-<8 hex digits>`` name."""
    issued: set[str] = set()

    def make(prefix: str = "t") -> str:
        while (name := f"puka-test-{prefix}-{secrets.token_hex(4)}") in issued:
            pass
        issued.add(name)
        return name

    return make
