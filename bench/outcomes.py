"""What a benchmark run gives: one `Outcome` per run, gathered per client and workload in a `Cell`.

`Cell.runs` holds one outcome per repetition, in order (a failed run too), so two cells of
the same workload can be compared repetition by repetition (`targets.paired`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.clients import ClientInfo
from bench.common import Workload


@dataclass
class Outcome:
    """One run of one client on one workload."""

    ok: bool
    error: str = ""
    rate: float = 0.0
    cpu: float = 0.0
    process_cpu: float = 0.0
    maxrss_mib: float = 0.0
    rss_growth_mib: float | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Cell:
    """Every run of one client on one workload, and what the table shows for it."""

    client: ClientInfo
    workload: Workload
    runs: list[Outcome] = field(default_factory=list)
    skipped: str = ""

    @property
    def good(self) -> list[Outcome]:
        return [r for r in self.runs if r.ok]

    @property
    def failure(self) -> str:
        """Why there is no number ('' when every run passed)."""
        if self.skipped:
            return self.skipped
        bad = [r for r in self.runs if not r.ok]
        return bad[0].error if bad else ""

    @property
    def rate(self) -> float | None:
        if self.failure or not self.good:
            return None
        return statistics.median(r.rate for r in self.good)

    def median(self, attribute: str) -> float | None:
        values = [getattr(r, attribute) for r in self.good if getattr(r, attribute) is not None]
        return statistics.median(values) if values else None
