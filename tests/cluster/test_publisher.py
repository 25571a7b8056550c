"""A publisher with confirms to a quorum queue on node A while A is stopped mid-stream.

The client is given the three nodes' URLs and ``reconnect=True``; it connects to A (the first),
declares a quorum queue there (so A holds its leader) and publishes a paced stream of
persistent messages, each body an id. Once enough are confirmed, A's RabbitMQ is stopped.
The client recovers onto B or C; publishes that were in flight fail with ``ConnectionLost``
(their outcome is unknown) and the application republishes them, which gives at-least-once:
every confirmed message is in the queue afterwards, and so is every other one; the unknown
ones may be there twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import UniqueName
from tests.cluster.helpers import (
    DRIVERS,
    FAILOVER_TARGET,
    QUORUM,
    Row,
    drain,
    duplicates,
    node_label,
    since,
)
from tests.cluster_nodes import PrivateCluster

RATE = 3500.0  # messages offered per second
WINDOW = 800  # publishes in flight at most
BEFORE = 500  # confirmed before node A is stopped
AFTER = 300  # confirmed on the new node before the stream ends
LIMIT = 45.0  # seconds the whole stream may take


class PublisherRun:
    """What the publisher sent and learnt, for either driver."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.next_id = 0
        self.sent = 0
        self.in_flight = 0
        self.confirmed: set[int] = set()
        self.retry: list[int] = []  # unknown outcome: to publish again
        self.unknown = 0
        self.republished = 0
        self.errors: list[BaseException] = []
        self.connected = True
        self.stop_began: float | None = None
        self.stop_done: float | None = None
        self.lost_at: float | None = None
        self.recovered_at: float | None = None
        self.first_ok: float | None = None
        self.confirmed_after = 0
        self.ending = False

    # --- the clients' callbacks ---------------------------------------------------------

    def on_connection_lost(self, error: BaseException) -> None:
        self.connected = False
        if self.lost_at is None:
            self.lost_at = time.monotonic()

    def on_recovered(self) -> None:
        self.connected = True
        if self.recovered_at is None:
            self.recovered_at = time.monotonic()

    def settled(self, msg_id: int, sent_at: float, error: BaseException | None) -> None:
        self.in_flight -= 1
        if error is None:
            self.confirmed.add(msg_id)
            if self.lost_at is not None and sent_at > self.lost_at:  # sent to the new node
                self.confirmed_after += 1
                if self.first_ok is None:
                    self.first_ok = time.monotonic()
        elif isinstance(error, puka.ConnectionLost):
            self.unknown += 1
            self.retry.append(msg_id)
        else:
            self.errors.append(error)

    # --- pacing -------------------------------------------------------------------------

    def to_send(self) -> list[int]:
        """The ids to publish now: the unknown ones again, then new ones at the pace."""
        if not self.connected:
            return []
        batch: list[int] = []
        while self.retry and self.in_flight < WINDOW:
            batch.append(self.retry.pop(0))
            self.republished += 1
            self.in_flight += 1
        allowed = int((time.monotonic() - self.began) * RATE)
        while not self.ending and self.next_id < allowed and self.in_flight < WINDOW:
            batch.append(self.next_id)
            self.next_id += 1
            self.in_flight += 1
        self.sent += len(batch)
        return batch

    @property
    def should_stop_node(self) -> bool:
        return self.stop_began is None and len(self.confirmed) >= BEFORE

    @property
    def stream_over(self) -> bool:
        if self.confirmed_after >= AFTER:
            self.ending = True
        return self.ending and not self.in_flight and not self.retry

    def check_time(self) -> None:
        assert not self.errors, f"publishes failed otherwise than ConnectionLost: {self.errors}"
        assert time.monotonic() - self.began < LIMIT, (
            f"the stream did not end within {LIMIT} s: {len(self.confirmed)} confirmed, "
            f"lost at {self.lost_at}, recovered at {self.recovered_at}"
        )


def stop_node(cluster: PrivateCluster, run: PublisherRun) -> None:
    """Stop node A (in a thread: rabbitmqctl takes about half a second)."""
    run.stop_began = time.monotonic()
    cluster.stop_app(cluster.nodes[0])
    run.stop_done = time.monotonic()


def body(msg_id: int) -> bytes:
    return str(msg_id).encode()


PERSISTENT = {"delivery_mode": 2}


def publish_blocking(cluster: PrivateCluster, queue: str, run: PublisherRun) -> tuple[int, int]:
    client = puka.Client(cluster.urls, reconnect=True)
    try:
        assert client.wait(client.connect(), timeout=15) is not None
        before = client.params.port
        client.wait(client.queue_declare(queue=queue, durable=True, arguments=QUORUM))
        assert cluster.queue_leader(queue) is cluster.nodes[0]
        client.on_connection_lost = run.on_connection_lost
        client.on_recovered = run.on_recovered

        def settle(msg_id: int) -> Callable[[int, puka.Result], None]:
            sent_at = time.monotonic()
            return lambda _promise, result: run.settled(msg_id, sent_at, result.exception)

        stopper: threading.Thread | None = None
        while not run.stream_over:
            for msg_id in run.to_send():
                client.basic_publish(
                    exchange="",
                    routing_key=queue,
                    headers=PERSISTENT,
                    body=body(msg_id),
                    callback=settle(msg_id),
                )
            if run.should_stop_node:
                stopper = threading.Thread(target=stop_node, args=(cluster, run), daemon=True)
                stopper.start()
            client.loop(timeout=0.005)
            run.check_time()
        assert stopper is not None
        stopper.join(timeout=60)
        return before, client.params.port
    finally:
        client.on_connection_lost = client.on_recovered = None
        try:
            client.wait(client.close(), timeout=5, raise_errors=False)
        finally:
            client._close_socket()


async def publish_asyncio(
    cluster: PrivateCluster, queue: str, run: PublisherRun
) -> tuple[int, int]:
    client = await puka_asyncio.connect(cluster.urls, reconnect=True)
    try:
        before = client.params.port
        await client.queue_declare(queue=queue, durable=True, arguments=QUORUM)
        assert cluster.queue_leader(queue) is cluster.nodes[0]
        client.on_connection_lost = run.on_connection_lost
        client.on_recovered = run.on_recovered

        def settle(msg_id: int) -> Callable[[asyncio.Future[Any]], None]:
            sent_at = time.monotonic()
            return lambda future: run.settled(msg_id, sent_at, future.exception())

        stopper: asyncio.Future[None] | None = None
        while not run.stream_over:
            for msg_id in run.to_send():
                future = client.basic_publish(
                    exchange="", routing_key=queue, headers=PERSISTENT, body=body(msg_id)
                )
                assert isinstance(future, asyncio.Future)
                future.add_done_callback(settle(msg_id))
            if run.should_stop_node:
                stopper = asyncio.ensure_future(asyncio.to_thread(stop_node, cluster, run))
            await asyncio.sleep(0.005)
            run.check_time()
        assert stopper is not None
        await stopper
        return before, client.params.port
    finally:
        client.on_connection_lost = client.on_recovered = None
        await client.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("driver", DRIVERS)
def test_publisher_fails_over_without_losing_a_confirmed_message(
    driver: str,
    healthy_cluster: PrivateCluster,
    unique_name: UniqueName,
    cluster_report: Callable[[Row], None],
) -> None:
    cluster = healthy_cluster
    queue = unique_name("cluster-pub")
    run = PublisherRun()
    began = time.monotonic()
    if driver == "blocking":
        before, after = publish_blocking(cluster, queue, run)
    else:
        before, after = asyncio.run(publish_asyncio(cluster, queue, run))
    survivor = next(node for node in cluster.nodes if node.port == after)
    present = drain(survivor.url, queue, expect=run.next_id)

    published = set(range(run.next_id))
    lost_confirmed = run.confirmed - set(present)
    row: Row = {
        "scenario": "publisher, node A stopped",
        "stop_app_s": (run.stop_done or 0.0) - (run.stop_began or 0.0),
        "driver": driver,
        "published": run.next_id,
        "confirmed": len(run.confirmed),
        "unknown": run.unknown,
        "republished": run.republished,
        "lost": len(lost_confirmed),
        "duplicates": duplicates(present),
        "redelivered": None,
        "failover_s": since(run.lost_at, run.first_ok),
        "since_stop_cmd_s": since(run.stop_began, run.first_ok),
        "attempts": None,
        "from_node": node_label(cluster.nodes, before),
        "to_node": node_label(cluster.nodes, after),
        "seconds": time.monotonic() - began,
        "missing": len(published - set(present)),
        "in_queue": len(present),
    }
    cluster_report(row)
    assert before == cluster.nodes[0].port
    assert after != before
    assert run.lost_at is not None and run.recovered_at is not None
    assert not lost_confirmed, f"confirmed messages lost: {sorted(lost_confirmed)[:20]}"
    assert set(present) == published, "at-least-once: every message is in the queue"
    assert run.confirmed == published
    assert duplicates(present) <= run.unknown
    assert row["failover_s"] is not None and row["failover_s"] < FAILOVER_TARGET
