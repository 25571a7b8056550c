"""perf: a short run against the local broker gives sane numbers and loses nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import puka
import pytest
from puka_cli.commands.perf import Stats, latency_summary, percentile

from tests.cli.helpers import Names, Run, declare


def test_perf_for_three_seconds_as_json(cli_process: Callable[..., Run]) -> None:
    run = cli_process("perf", "--time", "3", "--json", "-x", "2", "-y", "2", timeout=60)
    assert run.code == 0, run.stderr
    summary = json.loads(run.stdout)
    for key in (
        "duration_s", "producers", "consumers", "size", "sent", "published", "confirmed",
        "received", "lost", "duplicates", "reordered", "send_rate", "receive_rate",
        "latency_ms", "intervals",
    ):  # fmt: skip
        assert key in summary, key
    assert 2.9 <= summary["duration_s"] < 4
    assert summary["sent"] > 1000
    assert summary["sent"] == summary["received"] == summary["confirmed"]
    assert summary["lost"] == summary["duplicates"] == summary["nacked"] == 0
    latency = summary["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["p99"] <= latency["max"] < 5000
    assert summary["send_rate"] > 300
    running = [i for i in summary["intervals"] if i["phase"] == "run"]
    assert len(running) == 3
    assert sum(i["published"] for i in summary["intervals"]) == summary["published"]


def test_perf_rate_limit_and_text_output(cli: Callable[..., Run]) -> None:
    run = cli("perf", "-z", "1", "--rate", "400", "-s", "100", "--persistent")
    assert run.code == 0, run.stderr
    lines = run.text.splitlines()
    assert lines[0].lstrip().startswith("1.0s  sent")
    assert any(line.startswith("summary: ") for line in lines)
    assert "lost 0, duplicates 0, reordered 0" in run.text
    sent = next(line for line in lines if line.strip().startswith("sent "))
    count = int(sent.split()[1])
    assert 300 <= count <= 500


def test_perf_on_an_existing_queue_with_a_count(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    run = cli("perf", "--queue", queue, "-c", "200", "-z", "10", "-F", "json")
    assert run.code == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["sent"] == summary["received"] == 200
    assert summary["duration_s"] < 5


def test_perf_usage_errors(cli: Callable[..., Run]) -> None:
    assert cli("perf", "-x", "0", "-y", "0").code == 64
    assert cli("perf", "-x", "0").code == 64


def test_statistics() -> None:
    assert percentile([], 0.5) == 0.0
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile(values, 1.0) == 100
    assert latency_summary([3.0, 1.0, 2.0])["p50"] == 2.0
    stats = Stats()
    for seq in (0, 1, 3, 2, 2):
        stats.record(0, 7, seq, 0, 1_000_000)
    assert (stats.received, stats.unique, stats.duplicates, stats.reordered) == (5, 4, 1, 2)
    stats.record(0, 8, 5000, 0, 0)  # far beyond the first bitmap
    assert stats.unique == 5
    interval = stats.take_interval()
    assert interval["received"] == 6 and stats.tick_received == 0


@pytest.mark.parametrize("size", [0, 10_000])
def test_perf_body_sizes(cli: Callable[..., Run], size: int) -> None:
    run = cli("perf", "-z", "0.5", "-s", str(size), "-F", "jsonl")
    assert run.code == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["size"] == size and summary["lost"] == 0
