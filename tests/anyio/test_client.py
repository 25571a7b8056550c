"""puka-anyio's own behaviour, on trio and on asyncio: task groups, cancellation, threads,
callbacks, failed connects, heartbeats, recovery and abort.

The scenarios every client shares (publish/confirm, consume/ack, errors, RPC, connection loss)
run on it from tests/integration/test_styles.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import puka
import puka_anyio
import pytest

from tests.broker_node import UniqueName
from tests.faults.fault_proxy import FaultProxy
from tests.integration.helpers import SOON

pytestmark = pytest.mark.anyio


async def exclusive_queue(client: puka_anyio.Client) -> str:
    with anyio.fail_after(SOON):
        name: str = (await client.queue_declare(exclusive=True))["queue"]
    return name


@pytest.fixture
async def client(amqp_url: str) -> AsyncIterator[puka_anyio.Client]:
    """A client whose tasks run in a task group of its own."""
    async with puka_anyio.connect(amqp_url) as connected:
        yield connected


async def test_publish_consume_ack_and_close(amqp_url: str) -> None:
    async with puka_anyio.connect(amqp_url) as client:
        queue = await exclusive_queue(client)
        with anyio.fail_after(SOON):
            confirms = [
                client.basic_publish(exchange="", routing_key=queue, body=b"%d" % i)
                for i in range(50)
            ]
            assert await client.wait_for_all(confirms) == [{}] * 50
            bodies = []
            async for message in client.basic_consume(queue=queue, prefetch_count=10):
                client.basic_ack(message)  # a plain call: written when the task suspends
                bodies.append(message["body"])
                if len(bodies) == 50:
                    break
        assert bodies == [b"%d" % i for i in range(50)]
        with anyio.fail_after(SOON):  # leaving the loop cancels the consume (soon after)
            while (await client.queue_declare(queue=queue, passive=True))["consumer_count"]:
                await anyio.sleep(0.02)
            declared = await client.queue_declare(queue=queue, passive=True)
        assert declared["message_count"] == 0
    assert client.engine.closed
    with pytest.raises(puka.ClientClosed):
        client.queue_declare(exclusive=True)


async def test_leaving_async_for_early_requeues_what_it_never_handed_out(
    client: puka_anyio.Client,
) -> None:
    queue = await exclusive_queue(client)
    with anyio.fail_after(SOON):
        await client.wait_for_all(
            [client.basic_publish(exchange="", routing_key=queue, body=b"m") for _ in range(5)]
        )
        async for message in client.basic_consume(queue=queue, prefetch_count=5):
            client.basic_ack(message)
            break
        while (await client.queue_declare(queue=queue, passive=True))["consumer_count"]:
            await anyio.sleep(0.02)  # leaving the loop cancels the consume (soon after)
        declared = await client.queue_declare(queue=queue, passive=True)
        assert declared["message_count"] == 4  # the four it never handed out are back


async def test_a_cancelled_await_leaves_the_operation_running(client: puka_anyio.Client) -> None:
    queue = await exclusive_queue(client)
    handle = client.basic_publish(exchange="", routing_key=queue, body=b"kept")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await handle  # cancelled before it could wait
    assert scope.cancelled_caught
    with anyio.fail_after(SOON):
        assert await handle == {}  # the publish went on: its confirm is on the handle
        assert (await client.basic_get(queue=queue, no_ack=True))["body"] == b"kept"


async def test_clients_tasks_in_a_task_group_of_yours(amqp_url: str) -> None:
    async with anyio.create_task_group() as tg:
        client = await puka_anyio.connect(amqp_url, task_group=tg)
        async with client:
            await exclusive_queue(client)
    assert client.engine.closed


async def test_cancelling_your_task_group_drops_the_connection(amqp_url: str) -> None:
    async with anyio.create_task_group() as tg:
        client = await puka_anyio.connect(amqp_url, task_group=tg)
        queue = await exclusive_queue(client)
        consume = client.basic_consume(queue=queue)
        tg.cancel_scope.cancel()
    assert client.engine.closed
    with anyio.fail_after(SOON), pytest.raises(puka.ConnectionLost):
        await consume  # its outcome is unknown: the connection was dropped under it


async def test_await_without_a_task_group_is_a_type_error(amqp_url: str) -> None:
    with pytest.raises(TypeError, match="task_group"):
        await puka_anyio.connect(amqp_url)
    with pytest.raises(TypeError, match="task_group"):
        puka_anyio.connect(amqp_url, task_group=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="heartbeat"):
        puka_anyio.connect(amqp_url, heartbeat="often")  # type: ignore[arg-type]


async def test_a_call_from_another_thread_is_refused_and_can_be_handed_over(
    client: puka_anyio.Client,
) -> None:
    def from_a_worker() -> puka_anyio.PromiseHandle:
        with pytest.raises(puka.WrongThread, match="from_thread"):
            client.queue_declare(exclusive=True)
        return anyio.from_thread.run_sync(lambda: client.queue_declare(exclusive=True))

    handle = await anyio.to_thread.run_sync(from_a_worker)
    with anyio.fail_after(SOON):
        assert (await handle)["queue"].startswith("amq.gen-")


async def test_a_callback_that_raises_is_logged_and_the_client_goes_on(
    client: puka_anyio.Client, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_promise: int, _result: puka.Result) -> None:
        raise RuntimeError("a callback's bug")

    with caplog.at_level(logging.ERROR, "puka_anyio"), anyio.fail_after(SOON):
        assert (await client.queue_declare(exclusive=True, callback=broken))["queue"]
    assert "a callback's bug" in caplog.text
    await exclusive_queue(client)


async def test_a_refused_port_is_connect_failed(amqp_url: str) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with anyio.fail_after(SOON), pytest.raises(puka.ConnectFailed) as caught:
        async with puka_anyio.connect(f"amqp://guest:guest@127.0.0.1:{port}/"):
            pass
    assert not isinstance(caught.value, puka.ConnectTimeout)


async def test_a_silent_server_is_connect_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # never accepted: the TCP handshake completes, AMQP never answers
        url = f"amqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/"
        started = time.monotonic()
        with anyio.fail_after(SOON), pytest.raises(puka.ConnectTimeout):
            async with puka_anyio.connect(url, connection_timeout=0.5):
                pass
        assert time.monotonic() - started < SOON / 2


async def test_a_silent_broker_is_heartbeat_timeout(amqp_url: str, fault_proxy: FaultProxy) -> None:
    async with puka_anyio.connect(fault_proxy.url(amqp_url), heartbeat=1) as client:
        await exclusive_queue(client)
        await anyio.to_thread.run_sync(fault_proxy.stall, "s2c")
        started = time.monotonic()
        with anyio.fail_after(SOON), pytest.raises(puka.HeartbeatTimeout):
            await client.queue_declare(exclusive=True)
        elapsed = time.monotonic() - started
        assert elapsed < 10, f"a dead peer with 1 s heartbeats took {elapsed:.1f} s to notice"
        with pytest.raises(puka.ClientClosed):
            client.queue_declare(exclusive=True)


async def test_recovery_after_a_cut_link(amqp_url: str, fault_proxy: FaultProxy) -> None:
    recovery = puka.Recovery(initial_delay=0.05, max_delay=0.2, jitter=0)
    async with puka_anyio.connect(fault_proxy.url(amqp_url), reconnect=recovery) as client:
        recovered = threading.Event()
        client.on_recovered = recovered.set
        await exclusive_queue(client)
        await anyio.to_thread.run_sync(fault_proxy.rst)
        with anyio.fail_after(SOON):
            while not recovered.is_set():
                await anyio.sleep(0.02)
        assert client.engine.is_open
        assert client.engine.recoveries == 1
        await exclusive_queue(client)  # the new connection works


async def test_a_consume_goes_on_after_a_recovery(
    amqp_url: str, fault_proxy: FaultProxy, unique_name: UniqueName
) -> None:
    """The link is cut under a running `async for`: recovery consumes again, and the loop
    gets the messages published after it, as if nothing had happened."""
    recovery = puka.Recovery(initial_delay=0.05, max_delay=0.2, jitter=0)
    queue = unique_name("anyio-recovered")
    async with puka_anyio.connect(fault_proxy.url(amqp_url), reconnect=recovery) as client:
        try:
            with anyio.fail_after(SOON):
                await client.queue_declare(queue=queue)
                consume = client.basic_consume(queue=queue, no_ack=True)  # (nothing redelivered)
                await client.basic_publish(exchange="", routing_key=queue, body=b"before")
                assert (await consume)["body"] == b"before"
            await anyio.to_thread.run_sync(fault_proxy.rst)
            with anyio.fail_after(SOON):
                while client.engine.recoveries < 1 or not client.engine.is_open:
                    await anyio.sleep(0.02)
                await client.basic_publish(exchange="", routing_key=queue, body=b"after")
                assert (await consume)["body"] == b"after"
        finally:
            with anyio.fail_after(SOON):
                await client.queue_delete(queue=queue)


async def test_abort_fails_what_is_in_flight_and_is_not_recovered(amqp_url: str) -> None:
    async with puka_anyio.connect(amqp_url, reconnect=True) as client:
        queue = await exclusive_queue(client)
        consume = client.basic_consume(queue=queue)
        client.abort()
        assert client.engine.closed
        with anyio.fail_after(SOON), pytest.raises(puka.ConnectionLost):
            await consume
        with pytest.raises(puka.ClientClosed):
            client.queue_declare(exclusive=True)


async def test_writes_a_full_socket_did_not_take_keep_their_order(
    amqp_url: str, fault_proxy: FaultProxy
) -> None:
    """The broker stops reading: awaited publishes fill the socket (an await that hands bytes
    to the socket itself leaves what it did not take to the writer task), then it reads again:
    every publish is confirmed and the queue holds every body, whole and in order."""
    bodies = [bytes([i]) * 60_000 for i in range(100)]
    async with puka_anyio.connect(fault_proxy.url(amqp_url)) as client:
        queue = await exclusive_queue(client)
        await anyio.to_thread.run_sync(fault_proxy.stall, "c2s")
        handles = []
        for body in bodies:
            handles.append(client.basic_publish(exchange="", routing_key=queue, body=body))
            with anyio.move_on_after(0.005):
                await handles[-1]  # cancelled: the publish goes on
        await anyio.to_thread.run_sync(fault_proxy.passthrough)
        with anyio.fail_after(SOON):
            assert await client.wait_for_all(handles) == [{}] * len(bodies)
            for body in bodies:
                assert (await client.basic_get(queue=queue, no_ack=True))["body"] == body
