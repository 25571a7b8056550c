"""Fixtures of the cluster suite: a real three-node RabbitMQ cluster on loopback.

* ``cluster`` -- the session's :class:`~tests.cluster_nodes.PrivateCluster`, started once
  (about 20 s), stopped and removed at the end of the session whatever happens.
* ``healthy_cluster`` -- the same cluster, healed before the test: every node an earlier test
  stopped is started again, so each scenario begins with three running nodes.
* ``cluster_report`` -- ``cluster_report(row)`` records a scenario's figures; they are printed
  as they come (``-s``) and all together at the end of the run, as JSON lines and a Markdown
  table (set ``PUKA_CLUSTER_REPORT=path`` to also write the table to a file).

As for ``private_node``: without RabbitMQ installed the tests are skipped, except under CI,
where that is a failure. A cluster that does not start is always an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker_node import rabbitmq_installed
from tests.cluster.helpers import REPORT_COLUMNS, Row
from tests.cluster_nodes import PrivateCluster

_ROWS = pytest.StashKey[list[Row]]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``cluster`` mark."""
    config.addinivalue_line(
        "markers", "cluster: the test runs on the private three-node RabbitMQ cluster"
    )
    config.stash[_ROWS] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this directory hurts a broker (its cluster) and runs on the cluster."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.hurts_broker)


@pytest.fixture(scope="session")
def cluster() -> Iterator[PrivateCluster]:
    """The session's private three-node cluster (stopped and removed at the end)."""
    if not rabbitmq_installed():
        reason = "rabbitmq-server is not installed: no private RabbitMQ cluster"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: missing infrastructure is a failure, not a skip)")
        pytest.skip(reason)
    cluster = PrivateCluster(3)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def healthy_cluster(cluster: PrivateCluster) -> PrivateCluster:
    """The cluster with its three nodes running: nodes stopped by an earlier test are restarted.

    (Healing before each test rather than after it spares the last one's: the session's end
    stops every node anyway.)
    """
    cluster.heal()
    return cluster


@pytest.fixture
def cluster_report(request: pytest.FixtureRequest) -> Callable[[Row], None]:
    """``cluster_report(row)``: record (and print) one scenario's figures."""
    rows = request.config.stash[_ROWS]

    def record(row: Row) -> None:
        rows.append(row)
        print(f"\nCLUSTER-REPORT {json.dumps(row, sort_keys=False)}")

    return record


def _markdown(rows: list[Row]) -> list[str]:
    lines = [
        "| " + " | ".join(REPORT_COLUMNS) + " |",
        "|" + "---|" * len(REPORT_COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(col)) for col in REPORT_COLUMNS) + " |")
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The figures of every cluster scenario that ran, as JSON lines and a Markdown table."""
    rows = config.stash.get(_ROWS, [])
    if not rows:
        return
    terminalreporter.section("cluster failover report")
    for row in rows:
        terminalreporter.write_line(json.dumps(row))
    terminalreporter.write_line("")
    table = _markdown(rows)
    for line in table:
        terminalreporter.write_line(line)
    target = os.environ.get("PUKA_CLUSTER_REPORT")
    if target:
        Path(target).write_text("\n".join(table) + "\n")
