"""Client benchmark: Puka against pika, aio-pika, aiormq, py-amqp and a raw-socket ceiling.

Runs every workload of `common.WORKLOADS` for every client of `clients.CLIENTS` against a live
RabbitMQ, each run in a fresh child process (`child.py`) with unique queues, and writes a
Markdown report (`bench/RESULTS.md` by default) with the machine, the versions, a summary of
every client's rate relative to Puka, and a detailed table: median rate with min-max over the
repetitions, p50/p99 latency where it applies, client CPU time of the timed section, peak RSS
of the child process, how far the client's RSS rose above its idle RSS during the timed section
(and, for the 4 MiB workloads, that growth over the message size), and each rate divided by
Puka's and by the ceiling's, then checks Puka's targets (`targets.py`).

A run is only reported if it passed both checks: the child's (what the client saw: counts,
bodies, names) and the broker's (`stage.Stage.verify`: what the queue holds afterwards). A
run that fails, times out or is not supported by a client shows as "n/a (reason)"; the queues
of every run are deleted whatever happened. Repetitions interleave the clients (in a rotating
order, `run_order`) so that machine noise spreads over all of them; the raw clients and Puka's
clients (`targets.PUKA_CLIENTS`) run back to back, so that their ratios can be taken
repetition by repetition.

    python -m bench.run [--quick] [--repeat R] [--clients a,b] [--workloads x,y] [--out PATH]

or ``hatch run bench:all [--quick]``. ``--quick`` divides the counts by ~10 and runs once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Collection
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import targets
from bench.clients import CLIENTS_BY_KEY, PUKA, RAW, ClientInfo
from bench.common import DEFAULT_URL, LARGE_SIZE, WORKLOADS, WORKLOADS_BY_KEY, Broker, Workload
from bench.outcomes import Cell, Outcome
from bench.rawamqp import RawConnection
from bench.stage import Stage
from bench.targets import PUKA_CLIENTS

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------
# Running one child
# ---------------------------------------------------------------------------------------------


def run_once(
    client: ClientInfo, workload: Workload, count: int, broker: Broker, timeout: float, tmp: Path
) -> Outcome:
    """Prepare the broker, run the child, check the broker, clean up: one measurement."""
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    stage = Stage(broker, workload.key, count, prefix)
    report_path = tmp / f"{prefix}.json"
    log_path = tmp / f"{prefix}.log"
    started = time.monotonic()
    try:
        try:
            stage.prepare()
        except Exception as exc:
            return Outcome(False, f"set-up failed: {type(exc).__name__}: {exc}")
        command = [
            sys.executable,
            "-m",
            "bench.child",
            client.key,
            workload.key,
            str(count),
            prefix,
            broker.url,
            str(report_path),
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            status, usage, timed_out = _wait(process, timeout)
        outcome = _read_report(report_path, log_path)
        outcome.wall = time.monotonic() - started
        outcome.process_cpu = usage.ru_utime + usage.ru_stime
        # the child's whole life: what wait4 saw after the exit, or the peak before start()
        # (which the child reset to measure the timed section's)
        outcome.maxrss_mib = max(usage.ru_maxrss / 1024, outcome.maxrss_mib)
        if timed_out:
            return Outcome(False, f"timeout after {timeout:g} s")
        if outcome.ok and status != 0:
            outcome = Outcome(False, f"child exited with status {status}")
        if outcome.ok:
            try:
                stage.verify()
            except Exception as exc:
                return Outcome(False, f"broker check: {type(exc).__name__}: {exc}")
        return outcome
    finally:
        problem = stage.cleanup()
        if problem:
            print(f"warning: {problem}", file=sys.stderr)
        report_path.unlink(missing_ok=True)
        if log_path.exists() and os.environ.get("BENCH_KEEP_LOGS") is None:
            log_path.unlink()


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any, bool]:
    """Reap the child with its own resource usage (`os.wait4`); kill its group on timeout."""
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                timed_out = True
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
    except BaseException:  # interrupted: take the child (and its group) down with us
        os.killpg(process.pid, signal.SIGKILL)
        os.wait4(process.pid, 0)
        process.returncode = -signal.SIGKILL
        raise
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage, timed_out


def _read_report(report_path: Path, log_path: Path) -> Outcome:
    try:
        data = json.loads(report_path.read_text())
    except (OSError, ValueError):
        lines = (
            log_path.read_text(errors="replace").strip().splitlines() if log_path.exists() else []
        )
        return Outcome(False, "crashed: " + (lines[-1][:160] if lines else "no output"))
    if not data.get("ok"):
        return Outcome(False, str(data.get("error", "failed")))
    return Outcome(
        True,
        rate=float(data["rate"]),
        cpu=float(data["cpu"]),
        maxrss_mib=float(data.get("rss_peak_before_mib", 0.0)),
        rss_growth_mib=data.get("rss_growth_mib"),
        p50_us=data.get("p50_us"),
        p99_us=data.get("p99_us"),
        notes=list(data.get("notes", [])),
    )


# ---------------------------------------------------------------------------------------------
# Machine and versions
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, OS."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ram = "unknown"
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions(broker: Broker) -> dict[str, str]:
    """Python, RabbitMQ (from the server properties) and every library's version."""
    found = {"Python": f"{platform.python_version()} ({platform.python_implementation()})"}
    with RawConnection(broker) as conn:
        props = conn.server_properties
        found["RabbitMQ"] = _text(props.get("version", "?"))
        found["on"] = _text(props.get("platform", "?"))
    for name in (
        "puka-core", "puka-asyncio", "puka-anyio", "puka-spec", "trio",
        "pika", "aio-pika", "aiormq", "amqp",
    ):  # fmt: skip
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = _module_version(name)
    return found


def batch_info(
    quick: bool, repeat: int, began: float, load_before: str, found: dict[str, str]
) -> dict[str, Any]:
    """What a report says about its batch: mode, repetitions, date, duration (since `began`, a
    `time.monotonic()`), machine, versions, source revision and load before and after."""
    return {
        "quick": quick,
        "repeat": repeat,
        "date": time.strftime("%Y-%m-%d"),
        "minutes": (time.monotonic() - began) / 60,
        "machine": machine(),
        "versions": found,
        "revision": revision(),
        "load": f"{load_before} before, {_loadavg()} after",
    }


def _loadavg() -> str:
    """The 1-minute load average (other work on the machine skews every number)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def revision() -> str:
    """The work tree's commit, and whether it has uncommitted changes."""
    try:
        head = ["git", "rev-parse", "--short", "HEAD"]
        changes = ["git", "status", "--porcelain", "--", "packages"]
        root = HERE.parent
        commit = subprocess.run(head, capture_output=True, text=True, check=False, cwd=root)
        dirty = subprocess.run(changes, capture_output=True, text=True, check=False, cwd=root)
    except OSError:
        return "unknown"
    if not commit.stdout.strip():
        return "unknown"
    suffix = " + uncommitted changes in packages/" if dirty.stdout.strip() else ""
    return commit.stdout.strip() + suffix


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _module_version(name: str) -> str:
    """A workspace package run from source (PYTHONPATH) has no metadata: ask the module."""
    module = {
        "puka-core": "puka",
        "puka-asyncio": "puka_asyncio",
        "puka-anyio": "puka_anyio",
        "puka-spec": "puka_spec",
    }.get(name)
    if module is None:
        return "not installed"
    try:
        imported = __import__(module)
    except ImportError:
        return "not installed"
    return f"{getattr(imported, '__version__', '?')} (source)"


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _growth(cell: Cell) -> str:
    """The median RSS growth in MiB; for a 4 MiB workload, also over the message size."""
    growth = cell.median("rss_growth_mib")
    if growth is None:
        return ""
    if cell.workload.size != LARGE_SIZE:
        return f"{growth:.1f}"
    return f"{growth:.1f} ({growth * 1024 * 1024 / LARGE_SIZE:.2f}x msg)"


def _title(workload: Workload, quick: bool) -> str:
    return f"{workload.title} ({_count(workload.count_for(quick))})"


def summary_table(
    cells: dict[tuple[str, str], Cell], clients: list[ClientInfo], quick: bool
) -> str:
    """Workloads x clients: Puka's median rate, every other client's divided by it."""
    lines = [
        "| workload | " + " | ".join(c.label for c in clients) + " |",
        "|---|" + "---:|" * len(clients),
    ]
    for workload in WORKLOADS:
        if not any(key == workload.key for key, _ in cells):
            continue
        puka = cells.get((workload.key, PUKA))
        base = puka.rate if puka else None
        row = []
        for client in clients:
            cell = cells.get((workload.key, client.key))
            if cell is None or (cell.skipped and client.variant_of):
                row.append("")
            elif cell.rate is None:
                row.append("n/a")
            elif client.key == PUKA:
                row.append(f"{_fmt(cell.rate)} {workload.unit}")
            else:
                row.append(_ratio(cell.rate, base))
        lines.append(f"| {_title(workload, quick)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def detail_table(cells: dict[tuple[str, str], Cell], clients: list[ClientInfo], quick: bool) -> str:
    """Every cell: rate, spread, latency, CPU, RSS, ratios."""
    lines = [
        "| workload | client | rate (median) | min-max | p50 / p99 µs | CPU s (µs/op) "
        "| peak RSS MiB | RSS growth MiB | ÷ puka | ÷ ceiling |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workload in WORKLOADS:
        puka = cells.get((workload.key, PUKA))
        raw = cells.get((workload.key, RAW))
        for client in clients:
            cell = cells.get((workload.key, client.key))
            if cell is None or (cell.skipped and client.variant_of):
                continue  # (a variant runs a few workloads only)
            name = _title(workload, quick)
            if cell.rate is None:
                reason = cell.failure.replace("|", "/")
                lines.append(f"| {name} | {client.label} | n/a ({reason}) | | | | | | | |")
                continue
            rates = [r.rate for r in cell.good]
            p50, p99 = cell.median("p50_us"), cell.median("p99_us")
            latency = f"{p50:,.0f} / {p99:,.0f}" if p50 is not None and p99 is not None else ""
            rss = max(r.maxrss_mib for r in cell.good)
            cpu = cell.median("cpu") or 0.0
            per_op = cpu / workload.count_for(quick) * 1e6
            lines.append(
                f"| {name} | {client.label} | {_fmt(cell.rate)} {workload.unit} "
                f"| {_fmt(min(rates))}-{_fmt(max(rates))} | {latency} "
                f"| {cpu:.3f} ({_fmt(per_op)}) | {rss:.0f} | {_growth(cell)} "
                f"| {_ratio(cell.rate, puka.rate if puka else None)} "
                f"| {_ratio(cell.rate, raw.rate if raw else None)} |"
            )
    return "\n".join(lines)


TARGETS_NOTE = """\
Puka's targets (issues 8 and 22), checked by `bench/targets.py`. A rate or p50 ratio is the
median of paired ratios: in each repetition the raw clients, Puka and Puka's asyncio client
(and the variants of these: the ceiling that acks with `multiple` once per read, the idioms)
run back to back, and their ratio is taken within that repetition (the machine's speed drifts
more between repetitions). CPU ratios compare median CPU time; the 4 MiB consumer's RSS growth
is the largest of its repetitions. The idioms are held against Puka's blocking client:
`asyncio.gather` over windows of 1,000 publishes and `async for` with `basic_ack`
(`puka-asyncio-idioms`), callbacks run by `loop()` (`puka-callbacks`); so is the at-least-once
publisher, `basic_publish(..., retry=True)` (`puka-retry`), against plain pipelined confirms."""

NOTES = """\
How to read it: each rate is the median over the repetitions (min-max beside it) of one
fresh process per run; ÷ puka and ÷ ceiling divide a client's median rate by Puka's (blocking)
and by the raw-socket ceiling's, so above 1x is faster. CPU s is the client process's user+sys
time during the timed section only (`getrusage` in the child), and per operation (message,
round trip, declare) in brackets; peak RSS is the child process's `ru_maxrss` over its whole
life (interpreter and imports included; it never reads below the orchestrator's own peak, which
a child inherits across fork and exec). RSS growth is how far the client's peak RSS during the
timed section rose above its RSS at the start of it (connected, idle), median over the
repetitions: `VmHWM` at the end (the kernel's peak mark, lowered to the current RSS at the
start) minus the resident pages of /proc/self/statm at the start; for the 4 MiB workloads it
is also shown over the message size ("x msg"). Every number passed the checks first: the
client saw every message, confirm, reply or declare-ok with the right bodies
in order, and the broker held exactly what it should afterwards.

What is timed:
- publish, no confirms: from the first publish until a passive declare sees all N messages in
  the queue (polled every millisecond).
- pipelined confirms: every publish issued at once, until the last is confirmed.
- confirm each: publish, wait for its confirm, next (p50/p99 per message).
- consume: the queue is pre-filled by the harness before the child starts; from basic.consume
  until the N-th message is received (and, with acks, acked: prefetch 1000 cannot run dry).
- request/reply: publish a 100-byte request (reply_to, correlation_id; no confirms) and wait
  for its reply on an auto-ack consume of a reply queue; the responder is the same raw-socket
  echo process for every client (`responder.py`), so differences are the client's.
- queue.declare: N new queues, each waited for, or all issued before waiting. RabbitMQ runs a
  channel's methods one at a time, so pipelining only pays across channels: Puka runs each
  declare on a pooled channel of its own (opening up to N), the ceiling spreads them over 128
  channels, pika Select, aio-pika and aiormq queue them on their one channel, and py-amqp
  sends them with nowait=True and one synchronous declare at the end.
- 4 MiB messages: publish N with pipelined confirms, then consume them (prefetch 16, ack
  each); MB/s = N x 4 MiB / total time (10^6 bytes).
- 4 MiB messages, consume only: the harness pre-fills the queue with N copies of the 4 MiB
  body; from basic.consume (prefetch 1: one message in flight, the next comes once it is
  acked) until the N-th is received. It is there for the consumer's memory: the target is
  a peak RSS less than 3 x the message size (12 MiB) above the idle RSS (RSS growth < 3x msg).
  MB/s as above.
"""


def write_report(
    path: Path,
    cells: dict[tuple[str, str], Cell],
    clients: list[ClientInfo],
    info: dict[str, Any],
) -> str:
    """Write the Markdown report; returns its text."""
    quick = bool(info["quick"])
    host = info["machine"]
    found = info["versions"]
    mode = "quick (--quick)" if quick else "full"
    lines = [
        "# Client benchmark results",
        "",
        f"Produced by `hatch run bench:all{' --quick' if quick else ''}` (`bench/run.py`) on "
        f"{info['date']}: {mode} mode, {info['repeat']} repetition(s) per client and workload, "
        f"{info['minutes']:.1f} minutes in all.",
        "",
        f"- Machine: {host['nproc']} CPUs ({host['cpu']}), {host['ram']} RAM, {host['os']}; "
        "the broker runs on the same machine and shares its CPUs; 1-minute load average "
        f"{info['load']} the run.",
        "- Versions: " + ", ".join(f"{name} {v}" for name, v in found.items()) + ".",
        f"- Puka's source: commit {info['revision']}.",
        "- Clients: " + "; ".join(f"**{c.label}**: {c.style}" for c in clients) + ".",
        "",
        "## Summary: each client's rate relative to Puka (blocking)",
        "",
        summary_table(cells, clients, quick),
        "",
        "## Targets",
        "",
        TARGETS_NOTE,
        "",
        targets.table(targets.evaluate(cells)),
        "",
        "## Details",
        "",
        detail_table(cells, clients, quick),
        "",
        NOTES,
    ]
    notes = sorted({n for cell in cells.values() for r in cell.good for n in r.notes})
    if notes:
        lines += ["Notes from the runs:", ""] + [f"- {n}" for n in notes] + [""]
    text = "\n".join(lines)
    path.write_text(text)
    return text


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def run_order(clients: list[ClientInfo], rep: int) -> list[ClientInfo]:
    """The clients in the order of repetition `rep`.

    The raw clients and Puka's clients (`targets.PUKA_CLIENTS`) run back to back, so that the
    targets' paired ratios (`targets.paired`) compare runs made within a minute of each other; their
    order rotates every repetition, so that each takes each place in turn (a place can
    matter: the run after another one may meet the broker still busy with it). The other
    clients, one by one, and that block take turns at going first, so that machine noise
    spreads over all of them.
    """
    block = [c for c in clients if c.key in PUKA_CLIENTS]
    groups = [[c] for c in clients if c.key not in PUKA_CLIENTS]
    if block:
        turn = rep % len(block)
        groups.insert(0, block[turn:] + block[:turn])
    shift = rep % len(groups)
    return [client for group in groups[shift:] + groups[:shift] for client in group]


def _select(names: str | None, known: Collection[str], what: str) -> list[str]:
    """The names in `names` (comma-separated; all of `known` when empty), each one known."""
    if not names:
        return list(known)
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="counts / ~10, one repetition")
    parser.add_argument("--repeat", type=int, help="repetitions (default 3, --quick 1)")
    parser.add_argument("--clients", help="comma-separated: " + ",".join(CLIENTS_BY_KEY))
    parser.add_argument("--workloads", help="comma-separated: " + ",".join(WORKLOADS_BY_KEY))
    parser.add_argument("--timeout", type=float, help="seconds per run (default 180, quick 60)")
    parser.add_argument("--url", default=os.environ.get("BENCH_AMQP_URL", DEFAULT_URL))
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="Markdown report")
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    args = parser.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    timeout = args.timeout or (60.0 if args.quick else 180.0)
    client_keys = _select(args.clients, CLIENTS_BY_KEY, "clients")
    workload_keys = _select(args.workloads, WORKLOADS_BY_KEY, "workloads")
    clients = [CLIENTS_BY_KEY[k] for k in client_keys]
    broker = Broker.from_url(args.url)
    try:
        found = versions(broker)
    except Exception as exc:
        print(f"error: no broker at {broker.host}:{broker.port}: {exc}", file=sys.stderr)
        return 2

    began = time.monotonic()
    load_before = _loadavg()
    cells: dict[tuple[str, str], Cell] = {}
    with tempfile.TemporaryDirectory(prefix="puka-bench-") as tmp:
        for key in workload_keys:
            workload = WORKLOADS_BY_KEY[key]
            count = workload.count_for(args.quick)
            for client in clients:
                cell = Cell(client, workload)
                cell.skipped = client.unsupported.get(key, "")
                cells[key, client.key] = cell
            for rep in range(repeat):
                for client in run_order(clients, rep):
                    cell = cells[key, client.key]
                    if cell.skipped:
                        continue
                    outcome = run_once(client, workload, count, broker, timeout, Path(tmp))
                    cell.runs.append(outcome)
                    shown = (
                        f"{_fmt(outcome.rate)} {workload.unit}"
                        if outcome.ok
                        else f"FAILED: {outcome.error}"
                    )
                    print(
                        f"[{time.monotonic() - began:6.0f}s] {key:<18} {client.key:<13} "
                        f"run {rep + 1}/{repeat}: {shown}",
                        flush=True,
                    )

    info = batch_info(args.quick, repeat, began, load_before, found)
    text = write_report(args.out, cells, clients, info)
    print()
    print(text)
    if args.json:
        runs = [
            {
                "workload": k[0],
                "client": k[1],
                "skipped": c.skipped,
                "runs": [vars(r) for r in c.runs],
            }
            for k, c in cells.items()
        ]
        args.json.write_text(json.dumps({"info": info, "cells": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
