"""One run in a fresh process: one client doing one workload, timed, checked on the client side.

The orchestrator (`run.py`) prepares the broker (queues, pre-filled messages, the RPC
responder) before starting this process and checks the broker's side afterwards, so that this
process holds nothing but the client under test: its peak RSS and CPU time are the client's.
This process imports the client module, lets it connect (untimed) and run the workload between
`Context.start()` and `Context.stop()`, then checks what the client saw — every message
published or confirmed, every message consumed with the right bodies in order, every reply
echoing its request, every declare-ok naming the right queue — and writes a JSON report
(rate, CPU time, latencies, and how far the client's peak RSS rose above its idle RSS during
the timed section, `rss_growth_mib`):

    python -m bench.child CLIENT WORKLOAD COUNT PREFIX URL REPORT.json

`ok` is false, with `error`, when the client failed or its results were wrong; no rate is
reported then.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import traceback
from pathlib import Path
from typing import Any

from bench.clients import CLIENTS_BY_KEY
from bench.common import (
    CONSUMING,
    DECLARING,
    LARGE_SIZE,
    PUBLISHING,
    WORKLOADS_BY_KEY,
    Broker,
    Context,
    expected_crc,
    failure_text,
)

MIB = 1024 * 1024


class WrongResult(Exception):
    """The client finished, but what it did or saw is not what the workload requires."""


def check(ctx: Context) -> None:
    """Client-side correctness: counts, bodies, names, latencies."""
    key, n = ctx.workload.key, ctx.count
    if ctx.elapsed <= 0:
        raise WrongResult("the client never called start()/stop()")
    if key in PUBLISHING and ctx.published != n:
        raise WrongResult(f"published {ctx.published} of {n}")
    if key in CONSUMING or key == "rpc":
        if ctx.received != n:
            raise WrongResult(f"received {ctx.received} of {n}")
        if ctx.crc != expected_crc(n):
            raise WrongResult("bodies differ from what was published (CRC mismatch)")
    if ctx.workload.size == LARGE_SIZE:  # large (publish + consume), large-consume
        if key == "large" and ctx.published != n:
            raise WrongResult(f"published {ctx.published} of {n}")
        if ctx.received != n:
            raise WrongResult(f"received {ctx.received} of {n}")
        if ctx.bad_bodies:
            raise WrongResult(f"{ctx.bad_bodies} bodies differ from what was published")
    if key in DECLARING:
        if len(ctx.declared) != n:
            raise WrongResult(f"{len(ctx.declared)} declare-ok of {n}")
        if sorted(ctx.declared) != sorted(ctx.declare_names):
            raise WrongResult("declare-ok named other queues than those declared")
    if ctx.workload.latency and len(ctx.latencies) != n:
        raise WrongResult(f"{len(ctx.latencies)} latencies recorded for {n} operations")


def report(ctx: Context) -> dict[str, Any]:
    """The measurements of a checked run."""
    workload = ctx.workload
    rate = ctx.count / ctx.elapsed
    if workload.size == LARGE_SIZE:
        rate = ctx.count * LARGE_SIZE / ctx.elapsed / 1e6
    result: dict[str, Any] = {
        "ok": True,
        "elapsed": ctx.elapsed,
        "rate": rate,
        "cpu": ctx.cpu,
        "rss_growth_mib": ctx.rss_growth / MIB,
        "rss_peak_before_mib": ctx.rss_peak_before / MIB,
        "notes": ctx.notes,
    }
    if ctx.latencies:
        cuts = statistics.quantiles(ctx.latencies, n=100, method="inclusive")
        result["p50_us"] = cuts[49] * 1e6
        result["p99_us"] = cuts[98] * 1e6
    return result


def main(argv: list[str]) -> int:
    client_key, workload_key, count, prefix, url, out = argv
    result: dict[str, Any] = {"ok": False}
    try:
        info = CLIENTS_BY_KEY[client_key]
        module = importlib.import_module(info.module)
        runner = module.RUNNERS.get(workload_key)
        if runner is None:
            raise WrongResult(f"{client_key} has no {workload_key} runner")
        ctx = Context(WORKLOADS_BY_KEY[workload_key], Broker.from_url(url), int(count), prefix)
        runner(ctx)
        check(ctx)
        result = report(ctx)
    except Exception as exc:
        traceback.print_exc()
        result["error"] = failure_text(exc)
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
