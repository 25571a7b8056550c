"""Issue 23: the at-least-once publisher stores 5,000 of 5,000 messages through a crash.

Each scenario publishes 5,000 persistent messages (each body an id) to a quorum queue whose
leader is on node A, with ``basic_publish(..., retry=POLICY)``, in windows of 250 awaited with
``wait_for_all`` (at most 2,500 a second, so that the stream goes on for a while after the harm), with the blocking and with the asyncio client (``reconnect`` on, every node's
URL given). The application does nothing else: no pending dict, no retry list.

* ``connected node killed`` -- the client is on A; once 1,500 are confirmed, A's Erlang VM is
  SIGKILLed (a crash: no close, no goodbye). The client loses its connection and the queue its
  leader at once.
* ``leader's node killed`` -- the client is on B; A is SIGKILLed likewise. The client keeps its
  connection, and RabbitMQ 3.10 nacks every publish on its publish channel (opened before the
  new leader was elected) for as long as that channel lives: the publisher must move to a new
  one.
* ``five resets`` -- the client is on A through a fault proxy, which resets the link (RST both
  ways) five times, every 800 confirmed messages.

Pass: every promise succeeded, every one of the 5,000 ids is in the queue afterwards
(duplicates are counted and reported, and are at most what was sent again), and nothing failed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import UniqueName
from tests.cluster.helpers import DRIVERS, Row, declare_quorum, drain, duplicates, node_label
from tests.cluster_nodes import PrivateCluster
from tests.faults.fault_proxy import FaultProxy

TOTAL = 5_000
WINDOW = 250
RATE = 2_500.0  # messages offered per second at most: the stream goes on for a while after
KILL_AFTER = 1_500  # confirmed before node A is killed
RESET_EVERY = 800  # confirmed between two resets
RESETS = 5
PERSISTENT = {"delivery_mode": 2}
RECOVERY = puka.Recovery(initial_delay=0.05, max_delay=1.0)
POLICY = puka.RetryPolicy(deadline=90.0, initial_delay=0.05, max_delay=1.0)
SCENARIOS = ["connected node killed", "leader's node killed", "five resets"]


@dataclass
class Run:
    """What one scenario's publisher saw."""

    began: float = field(default_factory=time.monotonic)
    hurts: int = 0  # kills or resets done
    confirmed: int = 0
    before: int = 0  # the port connected to first
    after: int = 0  # the port connected to at the end
    retried: int = 0
    replaced: int = 0
    recoveries: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def ended(self, port: int, engine: puka.Engine) -> None:
        """The stream is over: where the client is, and what its engine counted."""
        self.after = port
        self.retried, self.replaced = engine.retried_publishes, engine.replaced_publish_channels
        self.recoveries = engine.recoveries


class Hurt:
    """The scenario's harm: when it is due, and doing it (a kill in a thread: it returns
    once the other nodes know A is gone)."""

    def __init__(self, scenario: str, cluster: PrivateCluster, proxy: FaultProxy | None) -> None:
        self.scenario = scenario
        self.cluster = cluster
        self.proxy = proxy

    @property
    def times(self) -> int:
        return RESETS if self.proxy is not None else 1

    def due(self, run: Run) -> bool:
        if run.hurts >= self.times:
            return False
        if self.proxy is not None:
            return run.confirmed >= RESET_EVERY * (run.hurts + 1)
        return run.confirmed >= KILL_AFTER

    def __call__(self, run: Run) -> None:
        run.hurts += 1
        if self.proxy is not None:
            self.proxy.rst()
            return
        killer = threading.Thread(target=self.cluster.kill, args=(self.cluster.nodes[0],))
        killer.start()
        run.threads.append(killer)


def _body(msg_id: int) -> bytes:
    return str(msg_id).encode()


def _pause(run: Run, start: int) -> float:
    """Seconds to wait before publishing from id `start` on, at `RATE`."""
    return max(0.0, run.began + start / RATE - time.monotonic())


def _urls(scenario: str, cluster: PrivateCluster, proxy: FaultProxy | None) -> list[str]:
    a, b, c = cluster.nodes
    if proxy is not None:
        return [proxy.url(a.url)]
    if scenario == "leader's node killed":
        return [b.url, c.url]
    return [a.url, b.url, c.url]


def publish_blocking(urls: list[str], queue: str, hurt: Hurt, run: Run) -> None:
    client = puka.Client(urls, reconnect=RECOVERY)
    try:
        assert client.wait(client.connect(), timeout=15) is not None
        run.before = client.params.port
        for start in range(0, TOTAL, WINDOW):
            time.sleep(_pause(run, start))
            numbers = [
                client.basic_publish(
                    exchange="",
                    routing_key=queue,
                    headers=PERSISTENT,
                    body=_body(msg_id),
                    retry=POLICY,
                )
                for msg_id in range(start, start + WINDOW)
            ]
            if hurt.due(run):
                hurt(run)  # with this window in flight
            results = client.wait_for_all(numbers)
            assert all(not result.is_error for result in results)
            run.confirmed += len(results)
        run.ended(client.params.port, client.engine)
    finally:
        try:
            client.wait(client.close(), timeout=5, raise_errors=False)
        finally:
            client._close_socket()


async def publish_asyncio(urls: list[str], queue: str, hurt: Hurt, run: Run) -> None:
    client = await puka_asyncio.connect(urls, reconnect=RECOVERY)
    try:
        run.before = client.params.port
        for start in range(0, TOTAL, WINDOW):
            await asyncio.sleep(_pause(run, start))
            futures = [
                client.basic_publish(
                    exchange="",
                    routing_key=queue,
                    headers=PERSISTENT,
                    body=_body(msg_id),
                    retry=POLICY,
                )
                for msg_id in range(start, start + WINDOW)
            ]
            if hurt.due(run):
                hurt(run)
            results = await client.wait_for_all(futures)
            assert all(not result.is_error for result in results)
            run.confirmed += len(results)
        run.ended(client.params.port, client.engine)
    finally:
        await client.close()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_at_least_once_publisher_stores_every_message(
    driver: str,
    scenario: str,
    healthy_cluster: PrivateCluster,
    unique_name: UniqueName,
    cluster_report: Callable[[Row], None],
) -> None:
    cluster = healthy_cluster
    a, b, _ = cluster.nodes
    queue = unique_name("cluster-alo")
    declare_quorum(a, queue)
    assert cluster.queue_leader(queue) is a
    proxy = FaultProxy("127.0.0.1", a.port) if scenario == "five resets" else None
    run = Run()
    began = time.monotonic()
    try:
        if proxy is not None:
            proxy.start()
        hurt = Hurt(scenario, cluster, proxy)
        urls = _urls(scenario, cluster, proxy)
        if driver == "blocking":
            publish_blocking(urls, queue, hurt, run)
        else:
            asyncio.run(publish_asyncio(urls, queue, hurt, run))
        for thread in run.threads:
            thread.join(timeout=60)
    finally:
        if proxy is not None:
            proxy.stop()
    seconds = time.monotonic() - began
    leader = node_label(cluster.nodes, cluster.queue_leader(queue).port)
    present = drain(b.url, queue, expect=TOTAL, timeout=60)
    missing = set(range(TOTAL)) - set(present)
    ports: dict[str, Any] = {"from_node": None, "to_node": None}
    if proxy is None:
        ports = {
            "from_node": node_label(cluster.nodes, run.before),
            "to_node": node_label(cluster.nodes, run.after),
        }
    row: Row = {
        "scenario": f"at-least-once, {scenario}",
        "driver": driver,
        "published": TOTAL,
        "confirmed": run.confirmed,
        "republished": run.retried,
        "lost": len(missing),
        "duplicates": duplicates(present),
        "replaced_channels": run.replaced,
        "recoveries": run.recoveries,
        "seconds": seconds,
        "in_queue": len(present),
        "leader_after": leader,
        **ports,
    }
    cluster_report(row)
    assert run.hurts == hurt.times
    assert run.confirmed == TOTAL
    assert not missing, f"{len(missing)} ids missing, e.g. {sorted(missing)[:10]}"
    assert duplicates(present) <= run.retried
    if proxy is None:
        assert leader != "A", "node A was killed: its queue's leader moved"
    if scenario == "connected node killed":
        assert run.after != run.before and run.recoveries == 1
    elif scenario == "five resets":
        assert run.recoveries == RESETS
