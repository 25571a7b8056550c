"""Losing the connection: a silent broker (heartbeat timeout), a cut link, a mute listener.

The fault proxy between the client and the shared broker plays the broken network, so the
broker itself is never hurt: ``stall()`` freezes the link both ways (nothing forwarded, nothing
read), ``rst()`` cuts it (RST to both ends).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import puka
import pytest

from testkit.fake_broker import FakeBroker
from tests.faults.fault_proxy import FaultProxy
from tests.integration.helpers import SOON, close_quietly, url_with_query, wait_ok
from tests.loopback_server import LoopbackServer


@pytest.fixture
def proxied(amqp_url: str, fault_proxy: FaultProxy) -> Iterator[Any]:
    """A client connected through the fault proxy, with 1 s heartbeats."""
    client = puka.Client(fault_proxy.url(amqp_url), heartbeat=1)
    try:
        wait_ok(client, client.connect())
        yield client
    finally:
        close_quietly(client)


def test_proxy_itself_works(proxied: Any) -> None:
    queue = wait_ok(proxied, proxied.queue_declare(exclusive=True))["queue"]
    wait_ok(proxied, proxied.basic_publish(exchange="", routing_key=queue, body=b"via proxy"))
    assert wait_ok(proxied, proxied.basic_get(queue=queue, no_ack=True))["body"] == b"via proxy"


def test_silent_broker_is_heartbeat_timeout(proxied: Any, fault_proxy: FaultProxy) -> None:
    queue = wait_ok(proxied, proxied.queue_declare(exclusive=True))["queue"]
    consume = proxied.basic_consume(queue=queue)
    assert proxied.wait(consume, timeout=0.5) is None
    fault_proxy.stall()
    started = time.monotonic()
    with pytest.raises(puka.HeartbeatTimeout) as caught:
        proxied.wait(consume, timeout=20)
    elapsed = time.monotonic() - started
    assert isinstance(caught.value, puka.ConnectionLost)
    assert elapsed < 10, f"a dead peer with 1 s heartbeats took {elapsed:.1f} s to notice"
    with pytest.raises(puka.ClientClosed):
        proxied.wait(proxied.queue_declare(exclusive=True), timeout=SOON)


def test_cut_connection_is_connection_lost(proxied: Any, fault_proxy: FaultProxy) -> None:
    queue = wait_ok(proxied, proxied.queue_declare(exclusive=True))["queue"]
    consume = proxied.basic_consume(queue=queue)
    assert proxied.wait(consume, timeout=0.3) is None
    fault_proxy.stall()
    # in flight when the link dies: its outcome is unknown
    publish = proxied.basic_publish(exchange="", routing_key=queue, body=b"limbo")
    assert proxied.wait(publish, timeout=0.3) is None
    fault_proxy.rst()
    with pytest.raises(puka.ConnectionLost):
        proxied.wait(publish, timeout=SOON)
    with pytest.raises((puka.ConnectionLost, puka.ClientClosed)):
        proxied.wait(consume, timeout=SOON)
    with pytest.raises(puka.ClientClosed):
        proxied.wait(proxied.queue_declare(exclusive=True), timeout=SOON)


def test_cut_connection_reaches_callbacks(proxied: Any, fault_proxy: FaultProxy) -> None:
    seen: list[Any] = []
    queue = wait_ok(proxied, proxied.queue_declare(exclusive=True))["queue"]
    proxied.basic_consume(queue=queue, callback=lambda _p, r: seen.append(r))
    proxied.loop(timeout=0.3)
    fault_proxy.rst()
    deadline = time.monotonic() + SOON
    while not seen and time.monotonic() < deadline:
        proxied.loop(timeout=0.1)
    assert len(seen) == 1, "the lost connection did not reach the consume's callback"
    assert seen[0].is_error is True
    assert isinstance(seen[0].exception, (puka.ConnectionLost, puka.ClientClosed))


def test_mute_listener_is_connect_failed_after_connection_timeout() -> None:
    """TCP connects, but nothing ever answers the AMQP header: the connect must time out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # never accepted: the kernel completes the TCP handshake anyway
        port = listener.getsockname()[1]
        url = url_with_query(f"amqp://guest:guest@127.0.0.1:{port}/", "connection_timeout=1000")
        client = puka.Client(url)
        started = time.monotonic()
        with pytest.raises(puka.ConnectFailed):
            client.wait(client.connect(), timeout=SOON)
        assert time.monotonic() - started < SOON / 2


@pytest.mark.parametrize("pubacks", [True, False])
def test_a_close_unread_when_a_write_is_reset_is_still_the_reason(pubacks: bool) -> None:
    """The broker's 320, sent just before its socket reset, is what the client reports."""
    server = LoopbackServer(FakeBroker())
    client = puka.Client(server.url, pubacks=pubacks)
    try:
        client.wait(client.connect(), timeout=SOON)
        client.wait(client.queue_declare(queue="q"), timeout=SOON)
        server.shut_down()
        publish = client.basic_publish(exchange="", routing_key="q", body=b"after the reset")
        outcome = client.wait(publish, timeout=SOON, raise_errors=False)
        error = client._engine.error
        assert isinstance(error, puka.ConnectionForced), repr(error)
        assert error.reply_code == 320
        if pubacks:  # unconfirmed: it failed, outcome unknown, for the broker's reason
            assert outcome is not None and outcome.exception is not None
            assert isinstance(outcome.exception, puka.ConnectionForced) or "320" in str(
                outcome.exception
            ), repr(outcome.exception)
    finally:
        close_quietly(client)
