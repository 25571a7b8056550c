"""``puka restore --reconnect`` into a quorum queue while the node it writes to is SIGKILLed.

The CLI gets the three nodes' URLs in ``AMQP_URL``, node A first; the queue's leader is on A
too. It restores 5,000 lines (each body an id) with a small window, so that the restore is
mid-stream when A's Erlang VM is killed, once 500 are in the queue. Its connection is lost:
it recovers to B, and what was in flight, or refused while the new leader was elected, is
sent again (puka-core's ``retry=``). It must exit 0 with ``restored 5000``, and every id must
be in the queue.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.broker_node import UniqueName
from tests.cluster.helpers import Row, declare_quorum, drain, duplicates, run_cli_watching
from tests.cluster_nodes import PrivateCluster

MESSAGES = 5_000
KILL_AFTER = 500  # messages in the queue before node A is killed
LIMIT = 90.0


@pytest.mark.timeout(150)
def test_restore_stores_every_line_while_its_node_is_killed(
    healthy_cluster: PrivateCluster,
    unique_name: UniqueName,
    cluster_report: Callable[[Row], None],
    tmp_path: Path,
) -> None:
    cluster = healthy_cluster
    node_a, node_b = cluster.nodes[0], cluster.nodes[1]
    queue = unique_name("cluster-restore")
    declare_quorum(node_a, queue)
    dump = tmp_path / "dump.jsonl"
    lines = (
        json.dumps({"properties": {"delivery_mode": 2}, "body": str(i)}) for i in range(MESSAGES)
    )
    dump.write_text("\n".join(lines) + "\n")
    began = time.monotonic()
    killer: threading.Thread | None = None

    def seen(messages: int) -> None:
        nonlocal killer
        if killer is None and messages >= KILL_AFTER:
            killer = threading.Thread(target=cluster.kill, args=(node_a,), daemon=True)
            killer.start()

    argv = ["restore", queue, "-f", str(dump), "--reconnect", "--window", "8", "-F", "jsonl"]
    returncode, stdout, stderr = run_cli_watching(
        argv, cluster.url, (node_b.url, queue), seen, LIMIT, 0.02
    )
    assert killer is not None, "node A was never killed: the restore was too quick"
    killer.join(timeout=60)
    assert returncode == 0, stderr.decode()
    summary = json.loads(stdout.decode().splitlines()[-1])
    present = drain(node_b.url, queue, expect=MESSAGES)
    row: Row = {
        "scenario": "puka restore --reconnect, node A killed",
        "driver": "cli (blocking)",
        "published": MESSAGES,
        "confirmed": summary["restored"],
        "lost": MESSAGES - len(set(present)),
        "duplicates": duplicates(present),
        "from_node": "A",
        "seconds": time.monotonic() - began,
    }
    cluster_report(row)
    assert summary["restored"] == MESSAGES and summary["failed"] == 0, summary
    assert set(present) == set(range(MESSAGES)), "nothing lost"
