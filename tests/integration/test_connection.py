"""The connection: connect/close, client properties, heartbeats, update_secret, pubacks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import puka
import pytest

from tests.broker_node import RabbitmqCtl, UniqueName
from tests.integration.helpers import (
    SOON,
    Resources,
    connection_info,
    url_password,
    url_with_query,
    wait_ok,
)


def test_connect_and_close(amqp_url: str) -> None:
    client = puka.Client(amqp_url)
    promise = client.connect()
    assert isinstance(promise, int)
    result = wait_ok(client, promise)
    assert result.is_error is False
    assert client.fileno() >= 0
    wait_ok(client, client.queue_declare(exclusive=True))
    closed = wait_ok(client, client.close())
    assert closed.is_error is False
    with pytest.raises(puka.ClientClosed):
        client.wait(client.queue_declare(exclusive=True), timeout=SOON)


def test_default_url_reaches_local_broker(amqp_url: str) -> None:
    if not amqp_url.startswith(
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@localhost:5672/")
    ):
        pytest.skip("the shared broker is not the local default one")
    client = puka.Client()  # amqp:/// -> guest@localhost:5672, vhost /
    try:
        wait_ok(client, client.connect())
        wait_ok(client, client.queue_declare(exclusive=True))
    finally:
        client.wait(client.close(), timeout=SOON)


def test_client_properties_reach_the_broker(
    make_client: Callable[..., Any], rabbitmqctl: RabbitmqCtl, unique_name: UniqueName
) -> None:
    marker = unique_name("props")
    make_client(client_properties={"connection_name": marker, "x-puka-test": "yes"})
    line = connection_info(rabbitmqctl, marker, "client_properties")
    assert marker in line
    props = rabbitmqctl("-q", "list_connections", "client_properties")
    mine = next(row for row in props.splitlines() if marker in row)
    assert "x-puka-test" in mine
    assert "connection_name" in mine
    # the client still advertises its capabilities next to ours
    assert "publisher_confirms" in mine
    assert "consumer_cancel_notify" in mine


def test_connection_name_from_url_query(
    make_client: Callable[..., Any],
    amqp_url: str,
    rabbitmqctl: RabbitmqCtl,
    unique_name: UniqueName,
) -> None:
    marker = unique_name("urlname")
    make_client(url_with_query(amqp_url, f"connection_name={marker}"))
    assert connection_info(rabbitmqctl, marker, "pid").startswith("<")


def test_heartbeat_negotiated_and_kept_while_waiting(
    make_client: Callable[..., Any],
    rabbitmqctl: RabbitmqCtl,
    unique_name: UniqueName,
    resources: Resources,
) -> None:
    """heartbeat=1 on an idle connection: a 4 s wait must not let the broker drop us."""
    marker = unique_name("hb")
    client = make_client(heartbeat=1, client_properties={"connection_name": marker})
    # the broker really agreed to 1 s (else this test would prove nothing)
    assert connection_info(rabbitmqctl, marker, "timeout") == "1"
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    never = client.basic_consume(queue=queue)
    started = time.monotonic()
    assert client.wait(never, timeout=4) is None
    assert time.monotonic() - started >= 3.5
    # still alive: the broker got our heartbeats, we did not take it for dead
    assert wait_ok(client, client.queue_declare(queue=resources.queue()))["queue"]
    assert connection_info(rabbitmqctl, marker, "timeout") == "1"
    wait_ok(client, client.basic_cancel(never))


def test_heartbeat_kept_in_loop(make_client: Callable[..., Any]) -> None:
    client = make_client(heartbeat=1)
    client.loop(timeout=4)
    wait_ok(client, client.queue_declare(exclusive=True))


def test_heartbeat_via_url_query(
    make_client: Callable[..., Any],
    amqp_url: str,
    rabbitmqctl: RabbitmqCtl,
    unique_name: UniqueName,
) -> None:
    marker = unique_name("hburl")
    make_client(url_with_query(amqp_url, f"heartbeat=3&connection_name={marker}"))
    assert connection_info(rabbitmqctl, marker, "timeout") == "3"


def test_heartbeat_zero_turns_them_off(
    make_client: Callable[..., Any], rabbitmqctl: RabbitmqCtl, unique_name: UniqueName
) -> None:
    marker = unique_name("hboff")
    make_client(heartbeat=0, client_properties={"connection_name": marker})
    assert connection_info(rabbitmqctl, marker, "timeout") == "0"


def test_update_secret(client: Any, amqp_url: str) -> None:
    result = wait_ok(client, client.update_secret(url_password(amqp_url), "puka test: refresh"))
    assert result.is_error is False
    # the connection carries on
    wait_ok(client, client.queue_declare(exclusive=True))


def test_pubacks_false_publish_completes(
    make_client: Callable[..., Any], resources: Resources
) -> None:
    client = make_client(pubacks=False)
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    promises = [
        client.basic_publish(exchange="", routing_key=queue, body=b"%d" % i) for i in range(20)
    ]
    # without confirms a publish is done once written: each wait returns at once
    results = [wait_ok(client, promise) for promise in promises]
    assert all(r.is_error is False for r in results)
    deadline = time.monotonic() + SOON
    while time.monotonic() < deadline:
        count = wait_ok(client, client.queue_declare(queue=queue, passive=True))["message_count"]
        if count == 20:
            break
        time.sleep(0.05)
    assert count == 20


def test_two_clients_are_independent(make_client: Callable[..., Any], resources: Resources) -> None:
    one, two = make_client(), make_client()
    queue = resources.queue()
    wait_ok(one, one.queue_declare(queue=queue, exclusive=True))
    # an error on one does not touch the other
    with pytest.raises(puka.ResourceLocked):
        two.wait(two.queue_declare(queue=queue))
    wait_ok(one, one.basic_publish(exchange="", routing_key=queue, body=b"x"))
    wait_ok(two, two.queue_declare(exclusive=True))


# --- abort ------------------------------------------------------------------------------------


def test_abort_drops_the_connection_without_closing_it(
    make_client: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The socket goes at once, with no connection.close; what was in flight fails with
    ConnectionLost (caused by the abort), and a later call with ClientClosed."""
    client = make_client()
    caplog.set_level(logging.DEBUG, logger="puka.frames")
    pending = client.queue_declare(exclusive=True)
    client.abort()
    assert client.fileno() == -1 and client.engine.closed
    with pytest.raises(puka.ConnectionLost) as caught:
        client.wait(pending, timeout=SOON)
    assert isinstance(caught.value.__cause__, puka.ClientClosed)
    with pytest.raises(puka.ClientClosed):
        client.queue_declare(exclusive=True)
    client.abort()  # again: nothing more to do
    assert "connection.close" not in caplog.text


def test_abort_before_connect_closes_the_client(amqp_url: str) -> None:
    client = puka.Client(amqp_url)
    client.abort()
    assert client.engine.closed
    with pytest.raises(puka.ClientClosed):
        client.wait(client.connect(), timeout=SOON)


def test_abort_is_not_recovered(make_client: Callable[..., Any]) -> None:
    """Recovery is for a connection lost against the user's will, not for one dropped."""
    client = make_client(reconnect=puka.Recovery(initial_delay=0.01, jitter=0))
    client.abort()
    client.loop(timeout=0.3)  # a recovery would reconnect meanwhile
    assert client.engine.closed and client.fileno() == -1
