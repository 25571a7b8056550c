"""Helpers of the cluster scenarios: queues, counting what arrived, the report's rows."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import puka

from tests.broker_node import PrivateBrokerNode
from tests.cli.helpers import process_env

#: The arguments of a quorum queue (replicated on the three nodes, leader where declared).
QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}

#: The driver parameter of every scenario.
DRIVERS = ["blocking", "asyncio"]

#: The columns of the report, in order.
REPORT_COLUMNS = [
    "scenario",
    "driver",
    "published",
    "confirmed",
    "unknown",
    "republished",
    "lost",
    "duplicates",
    "replaced_channels",
    "redelivered",
    "failover_s",
    "since_stop_cmd_s",
    "first_redelivery_s",
    "attempts",
    "from_node",
    "to_node",
    "seconds",
]

Row = dict[str, Any]
"""One scenario's figures (keys of :data:`REPORT_COLUMNS`, and a few more)."""

#: The failover target: from the node stop to the first successful operation on another node.
#: The stop counts from when it took effect (the client lost its connection, or for the CLI,
#: ``rabbitmqctl stop_app`` returned): stop_app itself may take seconds on a busy machine,
#: while the node still serves. ``since_stop_cmd_s`` in the report counts from the command.
FAILOVER_TARGET = 5.0


def node_label(cluster_nodes: list[PrivateBrokerNode], port: int) -> str:
    """``A``, ``B`` or ``C``: which node of the cluster listens on ``port``."""
    for index, node in enumerate(cluster_nodes):
        if node.port == port:
            return "ABC"[index] if index < 3 else str(index)
    return f"?{port}"


def connect(url: str | list[str], timeout: float = 15.0) -> puka.Client:
    """A connected blocking client without recovery."""
    client = puka.Client(url)
    result = client.wait(client.connect(), timeout=timeout)
    assert result is not None, f"no connection to {url} within {timeout} s"
    return client


def close(client: puka.Client) -> None:
    """Close a blocking client, quietly."""
    try:
        if not client.engine.closed:
            client.wait(client.close(), timeout=5, raise_errors=False)
    except Exception:
        pass
    client._close_socket()


def declare_quorum(node: PrivateBrokerNode, *queues: str) -> None:
    """Declare quorum queues through ``node``, which becomes their leader."""
    client = connect(node.url)
    try:
        for queue in queues:
            client.wait(client.queue_declare(queue=queue, durable=True, arguments=QUORUM))
    finally:
        close(client)


def fill(node: PrivateBrokerNode, queue: str, ids: Iterable[int]) -> None:
    """Publish one persistent message per id (its body) to ``queue``, each confirmed."""
    client = connect(node.url)
    try:
        promises = [
            client.basic_publish(
                exchange="",
                routing_key=queue,
                headers={"delivery_mode": 2},
                body=str(msg_id).encode(),
            )
            for msg_id in ids
        ]
        client.wait_for_all(promises)
    finally:
        close(client)


def message_count(client: puka.Client, queue: str) -> int:
    """The queue's ready messages (a passive declare)."""
    result = client.wait(client.queue_declare(queue=queue, passive=True), timeout=15)
    assert result is not None
    return int(result["message_count"])


def drain(url: str, queue: str, expect: int = 0, timeout: float = 30.0) -> list[int]:
    """Take every message of ``queue`` (the ids in their bodies, in order), then delete it.

    Not trusting the queue's message count (right after a quorum queue's leader moved, a
    passive declare may say 0): it consumes until ``expect`` messages arrived, then until
    nothing more comes for a while.
    """
    client = connect(url)
    try:
        ids: list[int] = []
        consume = client.basic_consume(queue=queue, no_ack=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            quiet = 0.5 if len(ids) >= expect else max(0.0, deadline - time.monotonic())
            message = client.wait(consume, timeout=quiet)
            if message is None:
                break
            ids.append(int(message["body"]))
        client.wait(client.basic_cancel(consume), timeout=10)
        client.wait(client.queue_delete(queue=queue), timeout=15)
        return ids
    finally:
        close(client)


def duplicates(ids: list[int]) -> int:
    """How many of ``ids`` repeat an earlier one."""
    return len(ids) - len(set(ids))


def repeated(ids: list[int]) -> dict[int, int]:
    """The ids seen more than once, with their counts."""
    return {k: n for k, n in collections.Counter(ids).items() if n > 1}


def since(start: float | None, end: float | None) -> float | None:
    """``end - start`` in seconds, or None if either is unknown."""
    return None if start is None or end is None else end - start


def count(client: puka.Client, queue: str) -> int | None:
    """The queue's ready messages, or None if the cluster cannot say right now."""
    result = client.wait(
        client.queue_declare(queue=queue, passive=True), timeout=2.0, raise_errors=False
    )
    if result is None or result.is_error:
        return None
    return int(result["message_count"])


def run_cli_watching(
    argv: list[str],
    url: str,
    watch: tuple[str, str],
    on_count: Callable[[int], None],
    limit: float,
    period: float,
) -> tuple[int, bytes, bytes]:
    """Run ``python -m puka_cli argv`` with ``AMQP_URL=url``; every `period` seconds while it
    runs, tell `on_count` how many messages queue ``watch[1]`` holds, asked through the node at
    URL ``watch[0]`` (the times it cannot say are skipped). Fails if the command runs longer
    than `limit` seconds; kills it then. Its exit status, stdout and stderr."""
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "puka_cli", *argv],
        env=process_env(url),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watcher = connect(watch[0])
    try:
        while process.poll() is None:
            assert time.monotonic() - began < limit, f"puka {argv[0]} did not finish in time"
            seen = count(watcher, watch[1])
            if seen is not None:
                on_count(seen)
            time.sleep(period)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        close(watcher)
    return process.returncode, stdout, stderr
