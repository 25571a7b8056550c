"""Puka's performance targets, checked against one benchmark run.

The machine's speed drifts during a run (on a shared two-core machine, the ceiling's rate can
move by a fifth between two of its repetitions), so a ratio between two clients is taken
repetition by repetition, from runs made back to back (`run.py` runs the raw clients, Puka's
clients and their variants, `PUKA_CLIENTS`, one after the other in every repetition), and the
median of those paired ratios is what a target is checked against. CPU time per operation
drifts much less and is compared by medians, as are the declare rates of two different
workloads.

`evaluate(cells)` gives one `Verdict` per target that the run has the data for; `table`
formats them for the report.
"""

from __future__ import annotations

import itertools
import operator
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from bench.clients import (
    PUKA,
    PUKA_ASYNCIO,
    PUKA_ASYNCIO_IDIOMS,
    PUKA_CALLBACKS,
    PUKA_RETRY,
    PUKA_TRIO,
    RAW,
    RAW_BATCH,
)
from bench.common import LARGE_SIZE, WORKLOADS_BY_KEY
from bench.outcomes import Cell, Outcome

PUKA_CLIENTS = frozenset(
    {RAW, PUKA, PUKA_ASYNCIO, PUKA_TRIO, RAW_BATCH, PUKA_CALLBACKS, PUKA_ASYNCIO_IDIOMS, PUKA_RETRY}
)
"""The ceilings and Puka's clients: not "other clients" for the CPU target; `run.py` runs them
back to back in every repetition."""

THROUGHPUT_ROWS = ("publish", "confirm-pipelined", "consume-ack", "consume-noack")
LATENCY_ROWS = ("confirm-each", "rpc")
LARGE_ROWS = ("large", "large-consume")
MERGED_ACK_ROWS = ("consume-ack",)
"""Held against the ceiling that acks with `multiple` once per read (`raw-batch`)."""
CPU_TARGETS = (
    ("CPU per message ÷ best other client's", 0.5),  # issue 8
    ("CPU per message ÷ best other client's (issue 22)", 0.25),
)
"""Puka's CPU per message against the best other client's: the first bound, and the later one."""
IDIOMS: tuple[tuple[str, str, str, float], ...] = (
    # (client, workload, what it is, the least rate it must reach over the blocking client's)
    (PUKA_ASYNCIO_IDIOMS, "confirm-pipelined", "asyncio gather (windows of 1,000)", 0.8),
    (PUKA_ASYNCIO_IDIOMS, "consume-ack", "asyncio async for + basic_ack", 0.9),
    (PUKA_CALLBACKS, "confirm-pipelined", "callbacks + loop()", 0.9),
    (PUKA_CALLBACKS, "consume-noack", "callbacks + loop()", 0.9),
    (PUKA_RETRY, "confirm-pipelined", "at-least-once (retry=True)", 0.9),  # issue 23
)
"""The idioms users write, each against Puka's blocking client (`wait_for_all`, `wait`); and
the at-least-once publisher, against the same client's plain confirmed publishes."""

Cells = dict[tuple[str, str], Cell]


@dataclass(frozen=True)
class Verdict:
    """One target on one workload: what was measured, the bound, and whether it holds."""

    target: str
    workload: str
    bound: str
    measured: float
    spread: tuple[float, ...]  # the values the measure is the median of (or the measure alone)
    met: bool


def paired(
    cell: Cell, base: Cell, value: Callable[[Outcome], float | None] = lambda r: r.rate
) -> list[float]:
    """`value` of `cell` over `value` of `base`, repetition by repetition.

    A repetition counts only where both runs passed and both values are there (and the base's
    is not zero).
    """
    ratios = []
    for mine, theirs in zip(cell.runs, base.runs, strict=False):
        if not (mine.ok and theirs.ok):
            continue
        top, bottom = value(mine), value(theirs)
        if top is not None and bottom:
            ratios.append(top / bottom)
    return ratios


def _measured(cells: Cells, workload: str, client: str) -> Cell | None:
    """The cell of `client` on `workload`, if it has a run that passed."""
    found = cells.get((workload, client))
    return found if found is not None and found.good else None


def _cpu(cell: Cell) -> float | None:
    """The median CPU seconds of a cell's runs (`None` if one failed): every client runs the
    same count of a workload, so two cells' CPU per operation compare as these do."""
    if cell.failure:
        return None
    return cell.median("cpu")


def _verdict(
    target: str, workload: str, bound: str, values: list[float], ok: Callable[[float], bool]
) -> Verdict | None:
    if not values:
        return None
    measured = statistics.median(values)
    return Verdict(target, workload, bound, measured, tuple(values), ok(measured))


def evaluate(cells: Cells) -> list[Verdict]:
    """Every target the cells have the data for, in the order of the issue's list."""
    verdicts: list[Verdict | None] = []

    for key in THROUGHPUT_ROWS + LARGE_ROWS:  # 4 MiB messages: the same bound, in MB/s
        puka, raw = _measured(cells, key, PUKA), _measured(cells, key, RAW)
        if puka and raw:
            ratios = paired(puka, raw)
            verdicts.append(_verdict("rate ÷ ceiling", key, ">= 0.9x", ratios, lambda v: v >= 0.9))
    for key in MERGED_ACK_ROWS:
        puka, raw = _measured(cells, key, PUKA), _measured(cells, key, RAW_BATCH)
        if puka and raw:
            verdicts.append(
                _verdict(
                    "rate ÷ multiple-ack ceiling",
                    key,
                    ">= 0.9x",
                    paired(puka, raw),
                    lambda v: v >= 0.9,
                )
            )
    for key in THROUGHPUT_ROWS:
        puka = _measured(cells, key, PUKA)
        puka_cpu = _cpu(puka) if puka else None
        other_cpus = [
            cpu
            for (workload, client), c in cells.items()
            if workload == key and client not in PUKA_CLIENTS and (cpu := _cpu(c)) is not None
        ]
        if puka_cpu is not None and other_cpus:
            share = puka_cpu / min(other_cpus)
            for target, limit in CPU_TARGETS:
                verdicts.append(
                    _verdict(target, key, f"<= {limit}x", [share], lambda v, b=limit: v <= b)
                )
    for key in LATENCY_ROWS:
        puka, raw = _measured(cells, key, PUKA), _measured(cells, key, RAW)
        if puka and raw:
            ratios = paired(puka, raw, lambda r: r.p50_us)
            verdicts.append(_verdict("p50 ÷ ceiling's", key, "<= 1.2x", ratios, lambda v: v <= 1.2))
    for key in LARGE_ROWS:
        puka = _measured(cells, key, PUKA)
        growths = [r.rss_growth_mib for r in puka.good] if puka else []
        sizes = [g * 1024 * 1024 / LARGE_SIZE for g in growths if g is not None]
        if sizes:  # the largest repetition's, not the median: memory is bounded or it is not
            verdicts.append(
                Verdict(
                    "consumer RSS growth ÷ message size",
                    key,
                    "< 3x",
                    max(sizes),
                    tuple(sizes),
                    max(sizes) < 3,
                )
            )
    seq = _measured(cells, "declare-seq", PUKA)
    pipelined = _measured(cells, "declare-pipelined", PUKA)
    if seq and pipelined and seq.rate and pipelined.rate:
        speedup = pipelined.rate / seq.rate
        verdicts.append(
            _verdict(
                "pipelined ÷ one by one",
                "declare-pipelined",
                ">= 3x",
                [speedup],
                lambda v: v >= 3,
            )
        )
    verdicts += _asyncio_verdicts(cells)
    verdicts += _idiom_verdicts(cells)
    return [v for v in verdicts if v is not None]


ASYNC_CLIENTS = ((PUKA_ASYNCIO, "asyncio"), (PUKA_TRIO, "trio"))
"""The async clients held to the blocking one's rate and CPU, and their names in a verdict."""


def _asyncio_verdicts(cells: Cells) -> Iterable[Verdict | None]:
    """The async clients (asyncio; trio through puka-anyio) against the blocking one, on every
    workload both ran."""
    for (client, name), workload in itertools.product(ASYNC_CLIENTS, WORKLOADS_BY_KEY):
        puka, aio = _measured(cells, workload, PUKA), _measured(cells, workload, client)
        if not (puka and aio):
            continue
        yield _verdict(
            f"{name} rate ÷ blocking", workload, ">= 0.8x", paired(aio, puka), lambda v: v >= 0.8
        )
        puka_cpu, aio_cpu = _cpu(puka), _cpu(aio)
        if puka_cpu and aio_cpu is not None:
            yield _verdict(
                f"{name} CPU ÷ blocking",
                workload,
                "<= 2x",
                [aio_cpu / puka_cpu],
                lambda v: v <= 2,
            )


def _idiom_verdicts(cells: Cells) -> Iterable[Verdict | None]:
    """Each idiom against the blocking client's style, paired repetition by repetition."""
    for client, workload, idiom, least in IDIOMS:
        puka, mine = _measured(cells, workload, PUKA), _measured(cells, workload, client)
        if puka and mine:
            yield _verdict(
                f"{idiom} rate ÷ blocking",
                workload,
                f">= {least}x",
                paired(mine, puka),
                partial(operator.le, least),  # least <= v
            )


def table(verdicts: list[Verdict]) -> str:
    """The verdicts as a Markdown table."""
    lines = [
        "| target | workload | bound | measured | per repetition | met |",
        "|---|---|---|---:|---|---|",
    ]
    for v in verdicts:
        spread = ", ".join(f"{x:.2f}" for x in v.spread) if len(v.spread) > 1 else ""
        lines.append(
            f"| {v.target} | {WORKLOADS_BY_KEY[v.workload].title} | {v.bound} "
            f"| {v.measured:.2f}x | {spread} | {'yes' if v.met else '**no**'} |"
        )
    return "\n".join(lines)
