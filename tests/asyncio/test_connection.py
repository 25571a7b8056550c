"""Connecting, closing, failing to connect, losing the connection, heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time
import tracemalloc
from urllib.parse import urlsplit

import puka
import puka_asyncio
import pytest

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import (
    SOON,
    assert_no_leaks,
    connection_pid,
    eventually,
    exclusive_queue,
    next_message,
    url_with,
    within,
)
from tests.broker_node import PROTOCOL_HEADER, RabbitmqCtl, UniqueName
from tests.faults.fault_proxy import FaultProxy


def free_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- connect and close ------------------------------------------------------------------------


async def test_connect_and_close(amqp_url: str, loop_kind: str) -> None:
    client = await within(puka_asyncio.connect(amqp_url))
    assert isinstance(client, puka_asyncio.AsyncClient)
    assert client.loop is asyncio.get_running_loop()
    assert client.engine.is_open
    assert client.server_properties["product"] == "RabbitMQ"
    assert client.blocked is False
    assert "guest:***@" in repr(client)
    result = await within(client.close())
    assert result.name == "connection.close_ok"
    assert client.engine.closed
    assert client._protocol.transport is None  # the transport is closed and gone
    with pytest.raises(puka.ClientClosed):
        await client.queue_declare(exclusive=True)
    with pytest.raises(puka.ClientClosed):
        await client.basic_publish(exchange="", routing_key="x", body=b"x")
    # closing again is harmless
    await within(client.close())


async def test_async_with_closes(amqp_url: str) -> None:
    client = await within(puka_asyncio.connect(amqp_url))
    async with client as entered:
        assert entered is client
        queue = await exclusive_queue(client)
        assert await within(client.basic_publish(exchange="", routing_key=queue, body=b"x")) == {}
    assert client.engine.closed
    with pytest.raises(puka.ClientClosed):
        client.queue_declare(exclusive=True)


async def test_async_with_closes_on_exception(amqp_url: str) -> None:
    client = await within(puka_asyncio.connect(amqp_url))

    async def use_and_fail() -> None:
        async with client:
            await exclusive_queue(client)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await use_and_fail()
    assert client.engine.closed


async def test_close_waits_for_what_was_sent_before(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = await exclusive_queue(client)
    publishes = [
        client.basic_publish(exchange="", routing_key=queue, body=b"%d" % i) for i in range(200)
    ]
    await within(client.close())
    assert all(p.done() for p in publishes)
    assert [p.result() for p in publishes] == [{}] * 200


# --- failing to connect -----------------------------------------------------------------------


async def test_wrong_password_is_access_refused(amqp_url: str) -> None:
    with pytest.raises(puka.AccessRefused) as caught:
        await within(puka_asyncio.connect(url_with(amqp_url, password="not-the-password")))
    assert caught.value.reply_code == 403


async def test_missing_vhost_is_not_allowed(amqp_url: str, unique_name: UniqueName) -> None:
    with pytest.raises(puka.NotAllowed) as caught:
        await within(puka_asyncio.connect(url_with(amqp_url, vhost=unique_name("no-vhost"))))
    assert caught.value.reply_code == 530


async def test_refused_port_is_connect_failed_quickly(amqp_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(puka.ConnectFailed) as caught:
        await within(puka_asyncio.connect(url_with(amqp_url, port=free_port())))
    assert time.monotonic() - started < 2
    assert not isinstance(caught.value, puka.ConnectTimeout)


async def test_unknown_host_fails_as_with_the_blocking_client() -> None:
    """One mapping of a failed connect for both drivers (`puka.tls.connect_error`)."""
    with pytest.raises(puka.ConnectFailed, match=r"cannot resolve 'no-such-host\.invalid'"):
        await within(puka_asyncio.connect("amqp://guest:guest@no-such-host.invalid:5672/"))


async def test_silent_server_is_connect_timeout() -> None:
    """A TCP peer that never speaks AMQP: the handshake times out with ConnectTimeout."""
    accepted: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    url = f"amqp://guest:guest@127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        started = time.monotonic()
        with pytest.raises(puka.ConnectTimeout):
            await within(puka_asyncio.connect(url, connection_timeout=0.5))
        assert 0.4 < time.monotonic() - started < 3
        assert await within(accepted[0][0].read()) == PROTOCOL_HEADER  # then it hung up
        # a connect the caller gives up on (a timeout of its own) does not leave its socket open
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(puka_asyncio.connect(url), 0.3)
        assert len(accepted) == 2
        assert await within(accepted[1][0].read(), 1) == PROTOCOL_HEADER  # closed at once
    finally:
        for _, writer in accepted:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_first_reachable_address_of_a_list(amqp_url: str) -> None:
    dead = url_with(amqp_url, port=free_port())
    client = await within(puka_asyncio.connect([dead, amqp_url]))
    try:
        assert client.params.port != urlsplit(dead).port
        assert await within(client.queue_declare(exclusive=True))
    finally:
        await within(client.close())


# --- losing the connection ----------------------------------------------------------------------


async def test_connection_closed_by_broker_fails_everything_pending(
    make_client: ClientFactory, rabbitmqctl: RabbitmqCtl, unique_name: UniqueName
) -> None:
    name = unique_name("killed")
    client = await make_client(connection_name=name, client_properties={"x-test": "ünï"})
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue, prefetch_count=10)
    received: list[bytes] = []

    async def consume_forever() -> None:
        async for message in consume:
            received.append(message["body"])

    async def publish_forever() -> None:
        # each publish is awaited: whenever the broker's close arrives, one is in flight
        while True:
            await client.basic_publish(exchange="", routing_key="nowhere", body=b"x")

    consuming = asyncio.ensure_future(consume_forever())
    publishing = asyncio.ensure_future(publish_forever())
    waiting_declare = client.queue_declare(queue=queue, passive=True)
    await within(waiting_declare)
    pid = await connection_pid(rabbitmqctl, name)
    await asyncio.to_thread(rabbitmqctl, "close_connection", pid, "test")
    for task in (consuming, publishing):
        with pytest.raises((puka.ConnectionForced, puka.ConnectionLost)) as caught:
            await within(task)
        if isinstance(caught.value, puka.ConnectionForced):
            assert caught.value.reply_code == 320
            assert "test" in caught.value.reply_text
    assert received == []
    assert client.engine.closed
    assert isinstance(client.engine.error, puka.ConnectionForced)
    # later calls raise ClientClosed at once
    with pytest.raises(puka.ClientClosed):
        client.queue_declare(exclusive=True)
    with pytest.raises(puka.ClientClosed):
        client.basic_publish(exchange="", routing_key=queue, body=b"late")
    with pytest.raises(puka.ClientClosed):
        client.tx_select()
    # nothing left over, and close() / async with are harmless
    assert client.pending_handles == 0
    assert client.engine.promises.live == {} and not client.engine.promises.bare
    await within(client.close())
    await within(client.__aexit__(None, None, None))
    await within(asyncio.shield(client._protocol.closed))


async def test_tcp_connection_dropped_fails_everything_pending(
    amqp_url: str, fault_proxy: FaultProxy
) -> None:
    client = await within(puka_asyncio.connect(fault_proxy.url(amqp_url)))
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue)
    assert await within(client.basic_publish(exchange="", routing_key=queue, body=b"1")) == {}
    assert (await next_message(consume))["body"] == b"1"
    fault_proxy.stall("s2c")  # the broker's replies are held: none can come before the cut
    waiting = asyncio.ensure_future(next_message(consume))
    declare = client.queue_declare(queue=queue, passive=True)
    publish = client.basic_publish(exchange="", routing_key=queue, body=b"2")
    await asyncio.sleep(0)  # the frames are written
    fault_proxy.rst()
    for pending in (waiting, declare, publish):
        with pytest.raises(puka.ConnectionLost):
            await within(pending)
    assert client.engine.closed
    with pytest.raises(puka.ClientClosed):
        client.queue_declare(exclusive=True)
    await within(client.close())
    assert client.pending_handles == 0


async def test_late_events_of_a_replaced_transport_do_not_reach_the_engine(
    make_client: ClientFactory,
) -> None:
    """After a recovery, what the old transport still reports is dropped, not taken for the
    loss of the new connection (or fed to it as bytes)."""
    client = await make_client(reconnect=puka.Recovery(initial_delay=0.05, max_delay=0.2))
    engine, protocol = client.engine, client._protocol
    old = protocol._link
    assert old is not None and old.current
    assert protocol.transport is not None
    protocol.transport.abort()

    async def recovered() -> bool:
        return engine.recoveries == 1 and engine.is_open

    await eventually(recovered, what="the recovery")
    assert not old.current and protocol._link is not old
    old.connection_lost(ConnectionResetError(104, "a late reset of the old transport"))
    garbage = old.get_buffer(-1)
    garbage[:8] = b"garbage!"
    old.buffer_updated(8)
    old.pause_writing()
    assert engine.is_open and engine.recoveries == 1
    assert protocol.transport is not None and not protocol._paused
    await exclusive_queue(client)  # the new connection works
    assert engine.recoveries == 1


# --- abort -----------------------------------------------------------------------------------------


async def test_abort_drops_the_connection_without_closing_it(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The transport goes at once, with no connection.close; what was in flight has failed
    with ConnectionLost (caused by the abort) when abort() returns, a later call with
    ClientClosed; leaving the client's `async with` then waits for nothing."""
    client = await make_client()
    queue = await exclusive_queue(client)
    consume = client.basic_consume(queue=queue)
    caplog.set_level(logging.DEBUG, logger="puka.frames")
    pending = client.queue_declare(queue=queue, passive=True)
    client.abort()
    assert isinstance(pending, asyncio.Future) and pending.done()
    with pytest.raises(puka.ConnectionLost) as caught:
        await pending
    assert isinstance(caught.value.__cause__, puka.ClientClosed)
    with pytest.raises(puka.ConnectionLost):
        await next_message(consume)
    with pytest.raises(StopAsyncIteration):
        await next_message(consume)
    with pytest.raises(puka.ClientClosed):
        client.queue_declare(exclusive=True)
    client.abort()  # again: nothing more to do
    async with client:
        pass
    assert client.engine.closed and client._protocol.transport is None
    assert "connection.close" not in caplog.text
    assert_no_leaks(client)


async def test_abort_is_not_recovered(make_client: ClientFactory) -> None:
    """Recovery is for a connection lost against the user's will, not for one dropped."""
    client = await make_client(reconnect=puka.Recovery(initial_delay=0.01, jitter=0))
    client.abort()
    await asyncio.sleep(0.3)  # a recovery would reconnect meanwhile
    assert client.engine.closed and client._protocol.transport is None


# --- heartbeats -------------------------------------------------------------------------------------


async def test_heartbeat_keeps_an_idle_connection_alive(make_client: ClientFactory) -> None:
    client = await make_client(heartbeat=1)
    assert client.engine.heartbeat == 1
    queue = await exclusive_queue(client)
    await asyncio.sleep(4)  # the broker drops a connection silent for two intervals
    assert client.engine.is_open
    assert await within(client.basic_publish(exchange="", routing_key=queue, body=b"x")) == {}
    assert (await within(client.basic_get(queue=queue, no_ack=True)))["body"] == b"x"
    assert_no_leaks(client)


async def test_silent_broker_is_heartbeat_timeout(amqp_url: str, fault_proxy: FaultProxy) -> None:
    client = await within(puka_asyncio.connect(fault_proxy.url(amqp_url), heartbeat=1))
    try:
        await exclusive_queue(client)
        fault_proxy.stall("s2c")  # the broker's bytes (replies, heartbeats) no longer arrive
        started = time.monotonic()
        with pytest.raises(puka.HeartbeatTimeout):
            await within(client.queue_declare(exclusive=True), SOON)
        assert 1.5 < time.monotonic() - started < 5
        assert client.engine.closed
        with pytest.raises(puka.ClientClosed):
            client.queue_declare(exclusive=True)
    finally:
        with contextlib.suppress(Exception):
            await within(client.close())


async def test_an_idle_connection_holds_no_read_buffer_of_its_own(
    make_client: ClientFactory,
) -> None:
    """20 connected clients (each after a round trip) cost well under 64 KiB each: the read
    buffer is the loop's (before, each held 64 KiB: 79 KiB per client in all)."""
    await make_client()  # the loop's buffer, and what the first client sets up once
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        clients = [await make_client() for _ in range(20)]
        for client in clients:
            await client.queue_declare(exclusive=True)
        gc.collect()
        each = (tracemalloc.get_traced_memory()[0] - before) / len(clients)
    finally:
        tracemalloc.stop()
    assert each < 32 * 1024, f"{each / 1024:.1f} KiB per idle client"
