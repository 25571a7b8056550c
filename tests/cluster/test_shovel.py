"""``puka shovel`` between two quorum queues while the node holding their leaders is stopped.

The CLI gets the three nodes' URLs in ``AMQP_URL`` (one comma-separated string), ``--reconnect``
and ``--until-empty``, and moves 1500 messages at 250 a second from a source to a destination
queue, both declared on node A. Once 50 have arrived, A's RabbitMQ is stopped: the shovel's
connection is cut, unacknowledged messages go back to the source, the shovel reconnects (A
refuses, B answers) and goes on. Nothing is lost; what was published but not yet acknowledged
on the source when the connection died arrives twice. (The CLI is built on the blocking
client, so this scenario has one driver.)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest

from tests.broker_node import UniqueName
from tests.cluster.helpers import (
    FAILOVER_TARGET,
    Row,
    declare_quorum,
    drain,
    duplicates,
    fill,
    run_cli_watching,
    since,
)
from tests.cluster_nodes import PrivateCluster

MESSAGES = 1500
RATE = "250"
STOP_AFTER = 50  # messages at the destination before node A is stopped
LIMIT = 60.0


@pytest.mark.timeout(120)
def test_shovel_loses_nothing_while_a_node_is_stopped(
    healthy_cluster: PrivateCluster,
    unique_name: UniqueName,
    cluster_report: Callable[[Row], None],
) -> None:
    cluster = healthy_cluster
    node_a, node_b = cluster.nodes[0], cluster.nodes[1]
    source, dest = unique_name("cluster-shovel-src"), unique_name("cluster-shovel-dst")
    began = time.monotonic()
    declare_quorum(node_a, source, dest)
    assert cluster.queue_leader(source) is node_a
    fill(node_a, source, range(MESSAGES))

    times: dict[str, float] = {}

    def stop_a() -> None:
        times["stop_began"] = time.monotonic()
        cluster.stop_app(node_a)
        times["stop_done"] = time.monotonic()

    stopper: threading.Thread | None = None
    samples: list[tuple[float, int]] = []

    def seen(messages: int) -> None:
        nonlocal stopper
        samples.append((time.monotonic(), messages))
        if stopper is None and messages >= STOP_AFTER:
            stopper = threading.Thread(target=stop_a, daemon=True)
            stopper.start()

    argv = ["shovel", source, dest, "--reconnect", "--until-empty", "--rate", RATE, "-F", "jsonl"]
    returncode, stdout, stderr = run_cli_watching(
        argv, cluster.url, (node_b.url, dest), seen, LIMIT - (time.monotonic() - began), 0.05
    )
    assert stopper is not None, "node A was never stopped: the shovel was too quick"
    stopper.join(timeout=60)
    assert returncode == 0, stderr.decode()
    summary = json.loads(stdout.decode().splitlines()[-1])

    # the first increase at the destination after A's RabbitMQ was down
    after = [(t, n) for t, n in samples if t >= times["stop_done"]]
    first_ok = next((t for t, n in after if after and n > after[0][1]), None)
    present = drain(node_b.url, dest, expect=MESSAGES)
    left = drain(node_b.url, source)
    row: Row = {
        "scenario": "puka shovel, node A stopped",
        "stop_app_s": times["stop_done"] - times["stop_began"],
        "driver": "cli (blocking)",
        "published": MESSAGES,
        "confirmed": summary["moved"],
        "unknown": None,
        "republished": None,
        "lost": MESSAGES - len(set(present)),
        "duplicates": duplicates(present),
        "redelivered": None,
        "failover_s": since(times["stop_done"], first_ok),
        "since_stop_cmd_s": since(times["stop_began"], first_ok),
        "attempts": stderr.decode().count("reconnecting in"),
        "from_node": "A",
        "to_node": None,
        "seconds": time.monotonic() - began,
        "left_in_source": len(left),
    }
    cluster_report(row)
    assert set(present) == set(range(MESSAGES)), "nothing lost"
    assert not left, "the source is empty"
    assert summary["stopped"] == "empty"
    assert row["attempts"] >= 1, "the shovel's connection was cut and it reconnected"
    assert row["failover_s"] is not None and row["failover_s"] < FAILOVER_TARGET
