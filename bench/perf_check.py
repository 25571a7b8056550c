"""Does `puka perf` agree with `bench/` on the same workload?

The workload both can run: publish 100-byte messages with pipelined publisher confirms and no
consumer, counted until the last confirm. `bench/run.py` runs it as ``confirm-pipelined`` (the
Puka client publishes every message, then waits for all confirms); `puka perf` runs it as
``-x 1 -y 0 -s 100 -c N --confirm N`` (one producer, a confirm window as large as the run, so
nothing throttles it). `puka perf` also puts its three ``x-perf-*`` headers on every message,
which `bench/` does not: that is part of what the tool costs.

The two run in turns, each in a fresh process, `--repeat` times; the table shows each one's
median rate and the ratio `puka perf` / `bench/`. Agreement means a ratio within 0.8-1.2.

    python -m bench.perf_check [--count N] [--repeat R] [--url URL] [--out PATH]

or ``hatch run bench:perf-check``. Exit status 1 when a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import DEFAULT_URL

AGREEMENT = (0.8, 1.2)


def bench_rate(count: int, url: str) -> float:
    """One `bench/run.py` run of the Puka client on confirm-pipelined: its rate in msg/s."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "run.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.run",
                "--clients=puka",
                "--workloads=confirm-pipelined",
                "--repeat=1",
                f"--url={url}",
                f"--out={Path(tmp) / 'run.md'}",
                f"--json={report}",
                *(["--quick"] if count <= 10_000 else []),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (cell,) = json.loads(report.read_text())["cells"]
        (run,) = cell["runs"]
        if not run["ok"]:
            raise RuntimeError(f"bench/run.py failed: {run['error']}")
        return float(run["rate"])


def perf_rate(count: int, url: str) -> float:
    """One `puka perf` run of the same workload: its confirmed messages per second."""
    command = [sys.executable, "-m", "puka_cli", "-u", url, "perf", "-x", "1", "-y", "0"]
    command += ["-s", "100", "-c", str(count), "--confirm", str(count), "--json"]
    out = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    summary = json.loads(out)
    if summary["confirmed"] != count:
        raise RuntimeError(f"puka perf confirmed {summary['confirmed']} of {count}")
    return float(summary["send_rate"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", DEFAULT_URL))
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if args.count not in (10_000, 100_000):
        parser.error("--count must be bench/'s confirm-pipelined count: 100000 (or 10000, quick)")
    bench: list[float] = []
    perf: list[float] = []
    for _ in range(args.repeat):
        bench.append(bench_rate(args.count, args.url))
        perf.append(perf_rate(args.count, args.url))
    b, p = statistics.median(bench), statistics.median(perf)
    ratio = p / b
    low, high = AGREEMENT
    verdict = "agree" if low <= ratio <= high else "disagree"
    table = "\n".join(
        [
            f"publish {args.count} x 100 B, pipelined confirms; median of {args.repeat} runs each",
            "",
            "| tool | median msg/s | runs |",
            "|---|---:|---|",
            f"| bench/run.py (puka) | {b:,.0f} | {', '.join(f'{r:,.0f}' for r in bench)} |",
            f"| puka perf | {p:,.0f} | {', '.join(f'{r:,.0f}' for r in perf)} |",
            "",
            f"puka perf / bench = {ratio:.2f}: {verdict} (within {low}-{high})",
        ]
    )
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
