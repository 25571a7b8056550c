"""All three nodes down, then one back: recovery keeps trying, backs off, and succeeds.

The client is given the three URLs and ``reconnect=True`` (the default back-off: 0.2 s doubling
up to 5 s, ±10 % jitter). A, B and C are stopped one after the other (the client may hop to B
or C on the way), held down for a few seconds, and C -- the last one stopped, which RabbitMQ
starts without waiting for the others -- is started again. The client must recover onto C,
having made only as many connection attempts as the back-off allows (no hammering), and its
first operation there must succeed. Connection attempts are counted from the client's log
(``puka`` logger: one ``reconnection to ... failed`` line per failed attempt); a round of
attempts tries each node once, and the back-off runs between rounds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator

import puka
import puka_asyncio
import pytest

from tests.cluster.helpers import DRIVERS, Row, node_label
from tests.cluster_nodes import PrivateCluster

DOWN = 5.0  # seconds every node stays down
ROUND_GAP = 0.1  # attempts closer than this belong to one round (one try of each node)
LIMIT = 45.0


class Attempts(logging.Handler):
    """Counts the client's failed reconnection attempts (and when they were made)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.failed: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("reconnection to "):
            self.failed.append(time.monotonic())


@pytest.fixture
def attempts() -> Iterator[Attempts]:
    handler = Attempts()
    logger = logging.getLogger("puka")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class OutageRun:
    """The outage's milestones, for either driver."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.stop_began: float | None = None
        self.all_down: float | None = None
        self.start_began: float | None = None  # rabbitmqctl start_app on C
        self.back: float | None = None  # start_app returned
        self.recovered_at: float | None = None
        self.first_ok: float | None = None
        self.losses = 0
        self.recoveries = 0
        self.error: BaseException | None = None

    def on_connection_lost(self, error: BaseException) -> None:
        self.losses += 1

    def on_recovered(self) -> None:
        self.recoveries += 1
        if self.all_down is not None and self.recovered_at is None:
            self.recovered_at = time.monotonic()

    @property
    def waiting(self) -> bool:
        return self.recovered_at is None and self.error is None

    def check_time(self) -> None:
        assert time.monotonic() - self.began < LIMIT, f"no recovery within {LIMIT} s"


def outage(cluster: PrivateCluster, run: OutageRun) -> None:
    """Stop A, B and C in turn, wait, start C again (runs in a thread)."""
    try:
        run.stop_began = time.monotonic()
        for node in cluster.nodes:
            cluster.stop_app(node)
        run.all_down = time.monotonic()
        time.sleep(DOWN)
        run.start_began = time.monotonic()
        cluster.start_app(cluster.nodes[-1])
        run.back = time.monotonic()
    except BaseException as exc:
        run.error = exc


def outage_blocking(cluster: PrivateCluster, queue: str, run: OutageRun) -> tuple[int, int]:
    client = puka.Client(cluster.urls, reconnect=True)
    try:
        assert client.wait(client.connect(), timeout=15) is not None
        before = client.params.port
        client.on_connection_lost = run.on_connection_lost
        client.on_recovered = run.on_recovered
        thread = threading.Thread(target=outage, args=(cluster, run), daemon=True)
        thread.start()
        while run.waiting:
            client.loop(timeout=0.05)
            run.check_time()
        thread.join(timeout=60)
        client.wait(client.queue_declare(queue=queue, exclusive=True), timeout=10)
        run.first_ok = time.monotonic()
        client.wait(client.basic_publish(exchange="", routing_key=queue, body=b"back"), timeout=10)
        message = client.wait(client.basic_get(queue=queue, no_ack=True), timeout=10)
        assert message is not None and message["body"] == b"back"
        return before, client.params.port
    finally:
        client.on_connection_lost = client.on_recovered = None
        try:
            client.wait(client.close(), timeout=5, raise_errors=False)
        finally:
            client._close_socket()


async def outage_asyncio(cluster: PrivateCluster, queue: str, run: OutageRun) -> tuple[int, int]:
    client = await puka_asyncio.connect(cluster.urls, reconnect=True)
    try:
        before = client.params.port
        client.on_connection_lost = run.on_connection_lost
        client.on_recovered = run.on_recovered
        thread = asyncio.ensure_future(asyncio.to_thread(outage, cluster, run))
        while run.waiting:
            await asyncio.sleep(0.05)
            run.check_time()
        await thread
        await client.queue_declare(queue=queue, exclusive=True)
        run.first_ok = time.monotonic()
        await client.basic_publish(exchange="", routing_key=queue, body=b"back")
        message = await client.basic_get(queue=queue, no_ack=True)
        assert message["body"] == b"back"
        return before, client.params.port
    finally:
        client.on_connection_lost = client.on_recovered = None
        await client.close()


def most_attempts(seconds: float, recovery: puka.Recovery) -> int:
    """The most attempts the back-off allows in ``seconds``: the delays at their shortest."""
    elapsed = 0.0
    count = 0
    while True:
        elapsed += min(recovery.max_delay, recovery.initial_delay * recovery.multiplier**count) * (
            1 - recovery.jitter
        )
        if elapsed > seconds:
            return count
        count += 1


@pytest.mark.timeout(120)
@pytest.mark.parametrize("driver", DRIVERS)
def test_recovery_outlasts_a_whole_cluster_outage(
    driver: str,
    healthy_cluster: PrivateCluster,
    attempts: Attempts,
    cluster_report: Callable[[Row], None],
) -> None:
    cluster = healthy_cluster
    queue = f"puka-test-cluster-down-{driver}"
    run = OutageRun()
    if driver == "blocking":
        before, after = outage_blocking(cluster, queue, run)
    else:
        before, after = asyncio.run(outage_asyncio(cluster, queue, run))
    assert run.error is None, run.error
    assert run.stop_began is not None and run.all_down is not None and run.back is not None
    assert run.start_began is not None
    assert run.recovered_at is not None and run.first_ok is not None
    down = [t for t in attempts.failed if run.all_down <= t <= run.start_began]
    window = run.start_began - run.all_down
    # a round tries every node once, one after the other; the back-off is between rounds
    starts = [t for i, t in enumerate(down) if i == 0 or t - down[i - 1] > ROUND_GAP]
    allowed = 1 + most_attempts(window, puka.Recovery())
    row: Row = {
        "scenario": "all nodes down, C back",
        "driver": driver,
        "published": 1,
        "confirmed": 1,
        "unknown": None,
        "republished": None,
        "lost": 0,
        "duplicates": 0,
        "redelivered": None,
        "failover_s": run.first_ok - run.start_began,  # from start_app on C (boot included)
        "since_stop_cmd_s": run.first_ok - run.stop_began,
        "attempts": len(attempts.failed) + 1,
        "from_node": node_label(cluster.nodes, before),
        "to_node": node_label(cluster.nodes, after),
        "seconds": time.monotonic() - run.began,
        "attempts_while_all_down": len(down),
        "rounds_while_all_down": len(starts),
        "all_down_s": round(window, 2),
        "c_boot_s": round(run.back - run.start_began, 2),
        "round_gaps_s": [round(b - a, 2) for a, b in itertools.pairwise(starts)],
    }
    cluster_report(row)
    assert after == cluster.nodes[-1].port
    assert len(starts) >= 3, "recovery kept trying while every node was down"
    assert len(starts) <= allowed, f"{len(starts)} rounds in {window:.1f} s: hammering"
    assert len(down) <= len(cluster.nodes) * len(starts), "one attempt per node and round"
    # C boots in a few seconds; the client needs at most one back-off delay more
    boot = run.back - run.start_began
    assert row["failover_s"] < boot + puka.Recovery().max_delay * (1 + puka.Recovery().jitter) + 1
