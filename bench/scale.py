"""Scale curves: how Puka's cost grows with connections, publishes in flight, consumers and
body size, side by side with pika and aio-pika (issue 22).

Four dimensions, each measured for Puka blocking (`puka.Client`, many driven by `puka.loop`),
Puka asyncio (`puka_asyncio`), pika and aio-pika in the same batch (`scale_child.py` says
exactly what each run does and counts):

- connections from one process, 1 to 1000 (quick: to 100): connect time, RSS per idle
  connection, CPU per confirmed publish;
- publishes in flight with confirms, 1k to 1M (quick: to 50k): bytes per publish in flight,
  CPU per message;
- consumers on one connection, a queue each, 1 to 10,000 (quick: to 1000): CPU per
  delivered, acked message (and its part in the kernel), against a raw-socket ceiling that
  shows what the broker's way of delivering many queues costs any client; `--io` counts
  each client's reads and writes per message too;
- body size, 1 B to 16 MiB: MB/s against the raw-socket ceiling, the consumer's RSS growth
  over the body.

Every run is a fresh process (`python -m bench.scale_child`), reaped with its own resource
usage (`run._wait`); the parent declares the queues a run needs and deletes them afterwards,
whatever happened. Repetitions rotate the clients' order; the report gives medians, one table
and one plot (log x axis) per dimension, and checks Puka's growth against the issue's bounds.

    python -m bench.scale [--quick] [--repeat R] [--dimensions a,b] [--clients a,b] [--io]
                          [--out PATH] [--plots DIR] [--json PATH]

or ``hatch run bench:scale [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from puka_spec import methods

from bench import scale_child
from bench.common import DEFAULT_URL, Broker
from bench.rawamqp import RawConnection
from bench.run import _loadavg, _select, _wait, batch_info, versions
from tests import broker_node

KIB, MIB = 1024, 1024 * 1024
CLIENTS = ("puka", "puka-asyncio", "pika", "aio-pika")
LABELS = {
    "puka": "Puka (blocking)",
    "puka-asyncio": "Puka (asyncio)",
    "pika": "pika",
    "aio-pika": "aio-pika",
    "raw": "raw socket",
}
PUKA = ("puka", "puka-asyncio")
SKIPPED = {  # (dimension, value, client): why it is not run
    ("inflight", 1_000_000, "aio-pika"): "not run: at ~200 µs of CPU and ~4.7 KB per publish "
    "(its 100k row) 1M takes minutes and ~5 GB",
}


@dataclass(frozen=True)
class Metric:
    """One number a dimension reports: its key in the child's report, its label and unit."""

    key: str
    label: str
    log_y: bool = True
    counted: bool = False  # only in runs with the socket calls counted (`--io`)


@dataclass(frozen=True)
class Dimension:
    """One scale dimension: its values (full and quick), its metrics, its extra clients."""

    key: str
    title: str
    axis: str
    values: tuple[int, ...]
    quick_values: tuple[int, ...]
    metrics: tuple[Metric, ...]
    extra_clients: tuple[str, ...] = ()


DIMENSIONS: dict[str, Dimension] = {
    d.key: d
    for d in (
        Dimension(
            "connections",
            "Connections from one process",
            "connections",
            (1, 10, 100, 1000),
            (1, 10, 100),
            (
                Metric("connect_p50_ms", "connect ms, p50"),
                Metric("connect_p99_ms", "connect ms, p99"),
                Metric("rss_per_conn_kib", "KiB RSS per idle connection"),
                Metric("cpu_us_msg", "µs CPU per confirmed publish"),
            ),
        ),
        Dimension(
            "inflight",
            "Publishes in flight (confirms on)",
            "publishes in flight",
            (1_000, 10_000, 100_000, 1_000_000),
            (1_000, 10_000, 50_000),
            (
                Metric("bytes_inflight", "bytes per publish in flight"),
                Metric("bytes_peak", "bytes per publish, peak"),
                Metric("cpu_us_msg", "µs CPU per message"),
            ),
        ),
        Dimension(
            "consumers",
            "Consumers on one connection (a queue each)",
            "consumers",
            (1, 10, 100, 1_000, 10_000),
            (1, 10, 100, 1_000),
            (
                Metric("cpu_us_msg", "µs CPU per delivered message"),
                Metric("sys_us_msg", "of which µs in the kernel", log_y=False),
                Metric("msg_s", "messages/s"),
                Metric("switches_msg", "context switches per message", log_y=False),
                Metric("reads_msg", "reads with data per message", counted=True),
                Metric("bytes_read", "bytes per read", counted=True),
                Metric("empty_reads_msg", "reads finding nothing per message", counted=True),
                Metric("writes_msg", "writes per message", counted=True),
            ),
            extra_clients=("raw",),
        ),
        Dimension(
            "bodies",
            "Body size (publish with confirms, then consume)",
            "body bytes",
            (1, KIB, 64 * KIB, MIB, 16 * MIB),
            (1, KIB, 64 * KIB, MIB, 16 * MIB),
            (
                Metric("mb_s", "MB/s"),
                Metric("rss_growth_bodies", "consumer RSS growth ÷ body"),
            ),
            extra_clients=("raw",),
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def broker_sockets() -> tuple[int, int] | None:
    """(sockets in use, socket limit) from `rabbitmqctl status`, or None if it cannot tell."""
    try:
        status = subprocess.run(
            ["rabbitmqctl", "status"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"Sockets: (\d+), limit: (\d+)", status.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


def declare(broker: Broker, names: list[str]) -> None:
    """Declare the queues of a run, pipelined 500 at a time."""
    with RawConnection(broker) as conn:
        for start in range(0, len(names), 500):
            conn.pipelined(1, [methods.QueueDeclare(queue=n) for n in names[start : start + 500]])


def delete(broker: Broker, names: list[str]) -> None:
    """Delete the queues of a run (a warning, not an error, when it fails)."""
    if not names:
        return
    try:
        with RawConnection(broker) as conn:
            conn.delete_queues(names)
    except Exception as exc:
        print(f"warning: could not delete {len(names)} queues: {exc!r}", file=sys.stderr)


def run_once(
    dimension: str,
    client: str,
    value: int,
    quick: bool,
    broker: Broker,
    timeout: float,
    tmp: Path,
    io: bool = False,
) -> dict[str, Any]:
    """One child: declare its queues, run it, reap it, delete its queues; its report.

    `io`: the child counts its socket calls (`scale_child.SocketCounts`)."""
    prefix = f"scale-{uuid.uuid4().hex[:12]}"
    names = scale_child.queue_names(dimension, value, prefix)
    report, log = tmp / f"{prefix}.json", tmp / f"{prefix}.log"
    command = [
        sys.executable,
        "-m",
        "bench.scale_child",
        dimension,
        client,
        str(value),
        prefix,
        broker.url,
        "1" if quick else "0",
        str(report),
    ]
    try:
        declare(broker, names)
        with log.open("wb") as out:
            env = {**os.environ, "BENCH_SCALE_IO": "1"} if io else None
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
            status, _usage, timed_out = _wait(process, timeout)
        if timed_out:
            return {"ok": False, "error": f"timeout after {timeout:g} s"}
        try:
            result: dict[str, Any] = json.loads(report.read_text())
        except (OSError, ValueError):
            lines = log.read_text(errors="replace").strip().splitlines()
            return {"ok": False, "error": "crashed: " + (lines[-1][:160] if lines else "")}
        if result.get("ok") and status != 0:
            return {"ok": False, "error": f"child exited with status {status}"}
        return result
    except Exception as exc:
        return {"ok": False, "error": f"set-up failed: {type(exc).__name__}: {exc}"}
    finally:
        delete(broker, names)
        report.unlink(missing_ok=True)
        if os.environ.get("BENCH_KEEP_LOGS") is None:
            log.unlink(missing_ok=True)


Results = dict[tuple[str, int, str], list[dict[str, Any]]]


def median(results: Results, dimension: str, value: int, client: str, key: str) -> float | None:
    """The median of one metric over a cell's good runs (None: no good run)."""
    good = [r[key] for r in results.get((dimension, value, client), []) if r.get("ok") and key in r]
    return statistics.median(good) if good else None


def metrics_of(results: Results, dim: Dimension) -> tuple[Metric, ...]:
    """The dimension's metrics, less the counted ones that no run counted (no `--io`)."""
    runs = [r for (d, _v, _c), rs in results.items() if d == dim.key for r in rs]
    return tuple(m for m in dim.metrics if not m.counted or any(m.key in r for r in runs))


def failure(results: Results, dimension: str, value: int, client: str) -> str:
    """Why a cell has no number."""
    runs = results.get((dimension, value, client), [])
    return next((str(r.get("error")) for r in runs if not r.get("ok")), "not run")


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _size(value: int) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", KIB)):
        if value >= scale and value % scale == 0:
            return f"{value // scale} {unit}"
    if value >= 1_000_000 and value % 1_000_000 == 0:
        return f"{value // 1_000_000}M"
    if value >= 1000 and value % 1000 == 0:
        return f"{value // 1000:,}k"
    return str(value)


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def dimension_table(results: Results, dim: Dimension, values: list[int], clients: list[str]) -> str:
    """Rows: value x metric; a column per client."""
    lines = [
        f"| {dim.axis} | metric | " + " | ".join(LABELS[c] for c in clients) + " |",
        "|---:|---|" + "---:|" * len(clients),
    ]
    notes: list[str] = []
    for value in values:
        for metric in metrics_of(results, dim):
            cells = []
            for client in clients:
                number = median(results, dim.key, value, client, metric.key)
                if number is None:
                    reason = failure(results, dim.key, value, client)
                    if reason not in notes:
                        notes.append(reason)
                    cells.append(f"n/a[^{notes.index(reason) + 1}]" if reason else "n/a")
                else:
                    cells.append(_fmt(number))
            lines.append(f"| {_size(value)} | {metric.label} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    if notes:
        table += "\n\n" + "\n".join(
            f"[^{i + 1}]: {n.replace('|', '/')}" for i, n in enumerate(notes)
        )
    return table


@dataclass
class Check:
    """One of the issue's bounds, checked on the medians."""

    dimension: str
    client: str
    what: str
    value: float | None
    bound: str
    ok: bool | None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def checks(results: Results, values: dict[str, list[int]]) -> list[Check]:
    """Puka's growth against the issue's bounds, on the largest value that was measured."""
    found: list[Check] = []

    def m(dim: str, value: int, client: str, key: str) -> float | None:
        return median(results, dim, value, client, key)

    def add(dim: str, client: str, what: str, value: float | None, bound: str, ok: Any) -> None:
        found.append(Check(dim, client, what, value, bound, None if value is None else bool(ok)))

    conns = values.get("connections", [])
    if conns:
        top, base = conns[-1], 10 if 10 in conns else conns[0]
        for client in PUKA:
            growth = _ratio(
                m("connections", top, client, "cpu_us_msg"),
                m("connections", base, client, "cpu_us_msg"),
            )
            add(
                "connections",
                client,
                f"CPU/publish at {top} ÷ at {base}",
                growth,
                "≤ 1.2",
                growth is not None and growth <= 1.2,
            )
            rss = m("connections", top, client, "rss_per_conn_kib")
            pika = m("connections", top, "pika", "rss_per_conn_kib")
            ratio = _ratio(rss, pika)
            add(
                "connections",
                client,
                f"KiB per idle connection at {top} ÷ pika's",
                ratio,
                "≤ 1",
                ratio is not None and ratio <= 1,
            )
    flight = values.get("inflight", [])
    if flight:
        top, base = flight[-1], flight[0]
        for client in PUKA:
            size = m("inflight", top, client, "bytes_inflight")
            bound = "≤ 100"  # (both hand out numbers: asyncio's basic_publish_number)
            add(
                "inflight",
                client,
                f"bytes per publish in flight at {_size(top)}",
                size,
                bound,
                size is not None and size <= 100,
            )
            growth = _ratio(
                m("inflight", top, client, "cpu_us_msg"), m("inflight", base, client, "cpu_us_msg")
            )
            add(
                "inflight",
                client,
                f"CPU/message at {_size(top)} ÷ at {_size(base)}",
                growth,
                "≤ 1.2",
                growth is not None and growth <= 1.2,
            )
    cons = values.get("consumers", [])
    if cons:
        top, base = cons[-1], cons[0]
        raw_top, raw_base = (m("consumers", v, "raw", "cpu_us_msg") for v in (top, base))
        raw_growth = _ratio(raw_top, raw_base)
        for client in PUKA:
            at_top = m("consumers", top, client, "cpu_us_msg")
            at_base = m("consumers", base, client, "cpu_us_msg")
            growth = _ratio(at_top, at_base)
            add(
                "consumers",
                client,
                f"CPU/message at {_size(top)} ÷ at {base}",
                growth,
                "≤ 1.2",
                growth is not None and growth <= 1.2,
            )
            # against the raw-socket ceiling: the broker delivers 10,000 queues in smaller
            # bursts (fewer messages per read and per write of acks), which every client pays
            relative = _ratio(growth, raw_growth)
            add(
                "consumers",
                client,
                f"the same, ÷ raw's ({_fmt(raw_growth)})",
                relative,
                "≤ 1.2",
                relative is not None and relative <= 1.2,
            )
            own = None
            if None not in (at_top, at_base, raw_top, raw_base):
                own = _ratio(at_top - raw_top, at_base - raw_base)  # type: ignore[operator]
            add(
                "consumers",
                client,
                f"CPU/message less raw's, at {_size(top)} ÷ at {base}",
                own,
                "≤ 1.2",
                own is not None and own <= 1.2,
            )
    for size in values.get("bodies", []):
        for client in PUKA:
            if size >= 64 * KIB:
                ratio = _ratio(m("bodies", size, client, "mb_s"), m("bodies", size, "raw", "mb_s"))
                add(
                    "bodies",
                    client,
                    f"MB/s at {_size(size)} ÷ raw",
                    ratio,
                    "≥ 0.9",
                    ratio is not None and ratio >= 0.9,
                )
            if size >= MIB:
                rss = m("bodies", size, client, "rss_growth_bodies")
                add(
                    "bodies",
                    client,
                    f"consumer RSS growth ÷ body at {_size(size)}",
                    rss,
                    "< 3",
                    rss is not None and rss < 3,
                )
    return found


def checks_table(found: list[Check]) -> str:
    """The checks as a Markdown table."""
    lines = ["| dimension | client | measured | value | bound | |", "|---|---|---|---:|---|---|"]
    for c in found:
        mark = "n/a" if c.ok is None else ("ok" if c.ok else "**missed**")
        lines.append(
            f"| {c.dimension} | {LABELS[c.client]} | {c.what} | {_fmt(c.value)} "
            f"| {c.bound} | {mark} |"
        )
    return "\n".join(lines)


def connect_distribution(results: Results, values: list[int], clients: list[str]) -> str:
    """Connect times in buckets: a listen backlog that overflows shows as a second mode."""
    edges = (1, 2, 5, 10, 50, 200, 1000, 3000)
    lines = [
        "| connections | client | " + " | ".join(f"≤ {e} ms" for e in edges) + " | more |",
        "|---:|---|" + "---:|" * (len(edges) + 1),
    ]
    for value in values:
        for client in clients:
            runs = [r for r in results.get(("connections", value, client), []) if r.get("ok")]
            if not runs:
                continue
            times = [t for r in runs for t in r["connect_ms_all"]]
            counts, low = [], 0.0
            for edge in edges:
                counts.append(sum(1 for t in times if low < t <= edge))
                low = edge
            counts.append(sum(1 for t in times if t > edges[-1]))
            share = [f"{100 * n / len(times):.0f}%" if n else "" for n in counts]
            lines.append(f"| {value} | {LABELS[client]} | " + " | ".join(share) + " |")
    return "\n".join(lines)


def plot(
    results: Results, dim: Dimension, values: list[int], clients: list[str], out: Path
) -> None:
    """One PNG per dimension: a panel per metric, log x axis, a line per client."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = metrics_of(results, dim)
    count = len(metrics)
    columns = 2 if count == 4 else min(count, 3)
    rows = (count + columns - 1) // columns
    fig, grid = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[count:]:
        ax.set_visible(False)
    for ax, metric in zip(axes, metrics, strict=False):
        for client in clients:
            points = [(v, median(results, dim.key, v, client, metric.key)) for v in values]
            xs = [v for v, y in points if y is not None]
            ys = [y for _, y in points if y is not None]
            if xs:
                ax.plot(xs, ys, marker="o", label=LABELS[client])
        ax.set_xscale("log")
        if metric.log_y:
            ax.set_yscale("log")
        ax.set_xlabel(dim.axis)
        ax.set_title(metric.label, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(dim.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


NOTES = """\
How to read it: every number is the median over the repetitions of one fresh process per run
(`bench/scale_child.py` describes each run). CPU is the client process's user+sys time over the
timed section (for consumers: the consuming thread's alone, the raw publisher thread left out),
divided by the messages; "of which µs in the kernel" is that thread's system time
(`getrusage(RUSAGE_THREAD)`): its socket calls and waits. The consumers' raw-socket ceiling
(`scale_child.consumers_raw`) reads and acks with `bench/rawamqp.py`'s hand-parsed loop, one
`multiple` ack per read (the frame Puka's coalesced acks put on the wire): its instructions per
message do not change with the number of queues, so its growth is what the broker's delivery
(10,000 queues hold 2 messages each, delivered in smaller bursts) and the machine cost any
client. The checks give Puka's growth plain (the issue's bound), over raw's growth, and with
raw's CPU per message taken off both ends. RSS is resident pages (`/proc/self/statm`) after
`gc.collect()`; "bytes per publish in flight" is the RSS right after the last publish call
returned, less the idle RSS before the first, over the publishes: the client's state for them,
its unsent frames and the caller's list of handles (promise numbers for both Puka clients, the
asyncio one through `basic_publish_number` with an `await client.drain()` every 4,096
publishes; tasks for aio-pika); the one 100-byte body is shared by every publish. "Peak"
is the kernel's high-water mark (`VmHWM`) over the whole publish-and-confirm, less the same idle
RSS. Consumer RSS growth is the peak during the consume phase over the RSS before it, divided by
the body (prefetch: about 1 MiB of bodies unacked, at least one).
pika runs as a competent user would: `SelectConnection`s sharing one `IOLoop` for many
connections and for publishes in flight (a `BlockingConnection` in confirm mode waits for each
confirm, so it never has more than one in flight), `BlockingConnection` for consumers and bodies
(whose publishes are thus confirmed one by one).
Caveats: the raw-socket ceiling (`bench/rawamqp.py`) joins each read onto what is left of its
buffer, which costs it more than Puka above 1 MiB, so a ratio to it above 1 says only that
Puka is not the bottleneck there. The consumer's RSS growth starts after the publishing phase
in the same process: a client whose publishing freed more than its consuming needs (aio-pika)
shows 0. A blocking Puka call waits for the socket once 4 MiB are queued for it, and can read
confirms meanwhile: with the largest counts, fewer than all the publishes are unconfirmed when
the last call returns."""


def write_report(
    results: Results, values: dict[str, list[int]], clients: list[str], info: dict[str, Any]
) -> str:
    """The Markdown report."""
    found = info["versions"]
    lines = [
        "# Scale curves",
        "",
        f"Produced by `hatch run bench:scale{' --quick' if info['quick'] else ''}` "
        f"(`bench/scale.py`) on {info['date']} at commit {info['revision']}: "
        f"{info['repeat']} repetition(s), {info['minutes']:.1f} minutes.",
        "",
        f"- Machine: {info['machine']['nproc']} CPUs ({info['machine']['cpu']}), "
        f"{info['machine']['ram']} RAM; the broker shares them; load {info['load']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in found.items()) + ".",
        f"- Open files: this process may open {info['fd_limit']}; "
        f"the broker: {info['broker_sockets']}.",
    ]
    lines += [f"- {note}" for note in info["notes"]]
    lines += [
        "",
        "## Puka against the issue's bounds",
        "",
        checks_table(checks(results, values)),
        "",
    ]
    for key, vals in values.items():
        dim = DIMENSIONS[key]
        shown = clients + [c for c in dim.extra_clients if c not in clients]
        lines += [f"## {dim.title}", "", dimension_table(results, dim, vals, shown), ""]
        if key == "connections":
            lines += [
                "Connect times, all runs:",
                "",
                connect_distribution(results, vals, shown),
                "",
            ]
    lines += [NOTES, ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> tuple[Results, dict[str, Any]] | None:
    """Run every child of the batch; the results and what the report says about the batch."""
    repeat = args.repeat or (1 if args.quick else 3)
    dims = _select(args.dimensions, list(DIMENSIONS), "dimensions")
    clients = _select(args.clients, CLIENTS, "clients")
    broker = Broker.from_url(args.url)
    try:
        found = versions(broker)
    except Exception as exc:
        print(f"error: no broker at {broker.host}:{broker.port}: {exc}", file=sys.stderr)
        return None
    fd_limit, _hard = scale_child.raise_fd_limit()
    sockets = broker_sockets()
    notes: list[str] = []
    if args.io:
        notes.append(
            "socket calls counted (`--io`): each counted call costs the client a Python call "
            "more, so these CPU numbers are a little above those of an uncounted run"
        )
    values: dict[str, list[int]] = {}
    brokers: dict[str, Broker] = {}  # a dimension's own broker, where it needs one
    stack = contextlib.ExitStack()
    for key in dims:
        dim = DIMENSIONS[key]
        vals = list(dim.quick_values if args.quick else dim.values)
        if key == "connections":
            room = min(fd_limit - 100, (sockets[1] - sockets[0] - 100) if sockets else 10**9)
            if vals[-1] > room and vals[-1] < fd_limit - 100 and broker_node.rabbitmq_installed():
                node = stack.enter_context(broker_node.PrivateBrokerNode(open_files=4 * vals[-1]))
                brokers[key] = Broker.from_url(node.url)
                notes.append(
                    f"{vals[-1]} connections do not fit in the shared broker (sockets "
                    f"{sockets}): the connections runs use a private node of the same RabbitMQ "
                    f"with a limit of {4 * vals[-1]} open files (tests/broker_node.py)"
                )
            elif vals[-1] > room:
                fit = max(1, room // 100 * 100)
                notes.append(
                    f"{vals[-1]} connections do not fit (broker sockets {sockets}, "
                    f"our fd limit {fd_limit}): measured up to {fit} instead"
                )
                vals = sorted({min(v, fit) for v in vals})
        values[key] = vals
    began, load = time.monotonic(), _loadavg()
    results: Results = {}
    with stack, tempfile.TemporaryDirectory(prefix="puka-scale-") as tmp:
        for key in dims:
            dim = DIMENSIONS[key]
            everyone = clients + [c for c in dim.extra_clients if c not in clients]
            for value in values[key]:
                for rep in range(repeat):
                    shift = rep % len(everyone)
                    for client in everyone[shift:] + everyone[:shift]:
                        if (key, value, client) in SKIPPED:
                            reason = SKIPPED[key, value, client]
                            results.setdefault((key, value, client), []).append(
                                {"ok": False, "error": reason}
                            )
                            continue
                        result = run_once(
                            key,
                            client,
                            value,
                            args.quick,
                            brokers.get(key, broker),
                            args.timeout,
                            Path(tmp),
                            args.io,
                        )
                        results.setdefault((key, value, client), []).append(result)
                        shown = (
                            ", ".join(
                                f"{m.key}={_fmt(result.get(m.key))}"
                                for m in dim.metrics
                                if m.key in result
                            )
                            if result.get("ok")
                            else f"FAILED: {result.get('error')}"
                        )
                        print(
                            f"[{time.monotonic() - began:5.0f}s] {key} {_size(value)} {client} "
                            f"{rep + 1}/{repeat}: {shown}",
                            flush=True,
                        )
    info = {
        **batch_info(args.quick, repeat, began, load, found),
        "fd_limit": fd_limit,
        "broker_sockets": f"{sockets[0]} sockets in use of {sockets[1]}" if sockets else "unknown",
        "notes": notes,
        "values": values,
        "clients": clients,
    }
    return results, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer values and messages, once")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3, --quick 1)")
    parser.add_argument("--dimensions", help="comma-separated: " + ",".join(DIMENSIONS))
    parser.add_argument("--clients", help="comma-separated: " + ",".join(CLIENTS))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument(
        "--io",
        action="store_true",
        help="count each child's socket calls (consumers: reads, bytes and writes per message); "
        "the counting costs CPU, so compare these runs' CPU only with each other",
    )
    parser.add_argument("--url", default=os.environ.get("BENCH_AMQP_URL", DEFAULT_URL))
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print)")
    parser.add_argument("--plots", type=Path, help="write scale-<dimension>.png here")
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    parser.add_argument(
        "--from-json", type=Path, help="no runs: the report and plots of a saved --json"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        info = saved["info"]
        results: Results = {
            (r["dimension"], r["value"], r["client"]): r["runs"] for r in saved["runs"]
        }
    else:
        measured = measure(args)
        if measured is None:
            return 2
        results, info = measured
    values: dict[str, list[int]] = info["values"]
    clients: list[str] = info["clients"]
    text = write_report(results, values, clients, info)
    if args.out:
        args.out.write_text(text)
    print(text)
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        for key, vals in values.items():
            dim = DIMENSIONS[key]
            shown = clients + [c for c in dim.extra_clients if c not in clients]
            plot(results, dim, vals, shown, args.plots / f"scale-{key}.png")
    if args.json and not args.from_json:
        runs = [
            {"dimension": k[0], "value": k[1], "client": k[2], "runs": v}
            for k, v in results.items()
        ]
        args.json.write_text(json.dumps({"info": info, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
