"""What the client benchmarks measure: the workloads, their messages and the per-run context.

Shared by the orchestrator (`run.py`), the per-run child process (`child.py`) and every client
implementation in `clients/`. A `Workload` says what is timed and how its rate is expressed;
a `Context` is what a client implementation gets for one run: the broker address, the queue
names, the messages to publish, and the hooks that time the run (`start`/`stop`), record
latencies and check what was consumed.

Message bodies are deterministic: body *i* of a 100-byte workload is the ten-digit number *i*
followed by 90 filler bytes, so what a consumer receives can be checked against what was
published, in order, with a CRC-32 chained over the bodies (cheap enough to run in the timed
loop, and it keeps no bodies in memory). The 4 MiB workloads publish one fixed pseudo-random
body, compared byte for byte on receipt.

`Context` also measures the client's memory over the timed section: its RSS at `start()` (the
idle RSS, connected but not yet working) and its peak RSS between `start()` and `stop()`. The
peak is the kernel's high-water mark of this process's own memory (`VmHWM`), lowered to the
current RSS at `start()`; not `ru_maxrss`, which also holds the peak of the process that
started this one (the orchestrator's, across fork and exec) and every transient before
`start()`.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import time
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
SMALL_SIZE = 100
LARGE_SIZE = 4 * 1024 * 1024
PREFETCH = 1000
LARGE_PREFETCH = 16
LARGE_CONSUME_PREFETCH = 1
POLL_INTERVAL = 0.001  # seconds between passive declares while waiting for a queue to fill
_FILLER = bytes(range(33, 123)) * 2


@dataclass(frozen=True)
class Workload:
    """One benchmark workload."""

    key: str
    title: str
    count: int
    quick_count: int
    unit: str  # what the rate counts per second
    latency: bool = False  # whether p50/p99 of each operation are reported
    size: int = SMALL_SIZE

    def count_for(self, quick: bool) -> int:
        """How many operations a run does."""
        return self.quick_count if quick else self.count


WORKLOADS: tuple[Workload, ...] = (
    Workload("publish", "publish, no confirms", 200_000, 20_000, "msg/s"),
    Workload("confirm-pipelined", "publish, pipelined confirms", 100_000, 10_000, "msg/s"),
    Workload("confirm-each", "publish, confirm each", 5_000, 500, "msg/s", latency=True),
    Workload("consume-ack", "consume, prefetch 1000, ack each", 200_000, 20_000, "msg/s"),
    Workload("consume-noack", "consume, auto-ack", 200_000, 20_000, "msg/s"),
    Workload("rpc", "request/reply round trips", 5_000, 500, "rt/s", latency=True),
    Workload("declare-seq", "queue.declare, one by one", 1_000, 100, "decl/s", latency=True),
    Workload("declare-pipelined", "queue.declare, pipelined", 1_000, 100, "decl/s"),
    Workload("large", "4 MiB messages, publish + consume", 200, 20, "MB/s", size=LARGE_SIZE),
    Workload(
        "large-consume",
        "4 MiB messages, consume only (prefetch 1)",
        200,
        20,
        "MB/s",
        size=LARGE_SIZE,
    ),
)
WORKLOADS_BY_KEY = {w.key: w for w in WORKLOADS}
PUBLISHING = frozenset({"publish", "confirm-pipelined", "confirm-each"})
CONSUMING = frozenset({"consume-ack", "consume-noack"})
DECLARING = frozenset({"declare-seq", "declare-pipelined"})


def small_body(i: int) -> bytes:
    """Body *i* of a 100-byte workload."""
    return b"%010d" % i + _FILLER[: SMALL_SIZE - 10]


def small_bodies(count: int) -> list[bytes]:
    """The bodies a 100-byte workload publishes, in order."""
    return [small_body(i) for i in range(count)]


def expected_crc(count: int) -> int:
    """The CRC-32 chained over bodies 0..count-1, in order (what a consumer must compute)."""
    crc = 0
    for i in range(count):
        crc = zlib.crc32(small_body(i), crc)
    return crc


def large_body() -> bytes:
    """The 4 MiB body of the large-message workload (pseudo-random, the same every run)."""
    return random.Random(4).randbytes(LARGE_SIZE)


@dataclass(frozen=True)
class Broker:
    """Where the broker is, split out of an AMQP URL."""

    url: str
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def from_url(cls, url: str) -> Broker:
        """Parse `amqp://user:password@host:port/vhost`."""
        parts = urlsplit(url)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(
            url=url,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5672,
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=vhost,
        )


def queue_names(workload: str, prefix: str, count: int) -> list[str]:
    """Every queue a run of `workload` may create (the parent deletes them all afterwards)."""
    names = [f"{prefix}.q", f"{prefix}.reply"]
    if workload in DECLARING:
        names.extend(f"{prefix}.d{i}" for i in range(count))
    return names


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    """This process's resident set size now, in bytes (resident pages in /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_SIZE


def _peak_rss() -> int:
    """This process's peak RSS in bytes (`VmHWM` in /proc/self/status; what `ru_maxrss`
    reports, less the peak it inherits from the parent across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss() -> None:
    """Lower the peak-RSS mark to the current RSS (Linux 4.0+; left as it is where refused)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


@dataclass
class Context:
    """One run of one workload by one client: its inputs, its timing hooks and its outcome.

    A client implementation connects (untimed), calls `start()` right before the first
    operation it times and `stop()` right after the last, and reports what it did: `published`
    (messages published, or confirmed where confirms are on), `take(body)` for each message it
    consumes, `latencies` (seconds per operation) and `declared` (queue names from declare-ok).
    """

    workload: Workload
    broker: Broker
    count: int
    prefix: str
    queue: str = ""
    reply_queue: str = ""
    declare_names: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    big: bytes = b""
    # outcome
    published: int = 0
    received: int = 0
    crc: int = 0
    bad_bodies: int = 0
    latencies: list[float] = field(default_factory=list)
    declared: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0
    cpu_start: float = 0.0
    cpu: float = 0.0
    rss_peak_before: int = 0  # bytes: the peak RSS before start() (which start() resets)
    rss_idle: int = 0  # bytes: the RSS at start()
    rss_peak: int = 0  # bytes: the peak RSS between start() and stop()

    def __post_init__(self) -> None:
        self.queue = f"{self.prefix}.q"
        self.reply_queue = f"{self.prefix}.reply"
        key = self.workload.key
        if key in DECLARING:
            self.declare_names = queue_names(key, self.prefix, self.count)[2:]
        elif self.workload.size == LARGE_SIZE:
            self.big = large_body()
        elif key in PUBLISHING or key == "rpc":
            self.bodies = small_bodies(self.count)

    def start(self) -> None:
        """The timed section begins (the idle RSS is taken first, outside the timing)."""
        self.rss_peak_before = _peak_rss()
        _reset_peak_rss()
        self.rss_idle = _rss()
        self.cpu_start = _cpu()
        self.started = time.perf_counter()

    def stop(self) -> None:
        """The timed section ends (the peak RSS is read after the timing)."""
        self.elapsed = time.perf_counter() - self.started
        self.cpu = _cpu() - self.cpu_start
        self.rss_peak = _peak_rss()

    @property
    def rss_growth(self) -> int:
        """Bytes the peak RSS of the timed section rose above the idle RSS."""
        return max(0, self.rss_peak - self.rss_idle)

    def take(self, body: bytes) -> None:
        """Check one consumed message (call it from the consume loop, in delivery order)."""
        self.received += 1
        if self.big:
            if body != self.big:
                self.bad_bodies += 1
        else:
            self.crc = zlib.crc32(body, self.crc)

    @property
    def done(self) -> bool:
        """Whether every expected message was consumed."""
        return self.received >= self.count


def failure_text(exc: BaseException) -> str:
    """How a child's report names the exception its run failed with: one line, 200 characters."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


AsyncRunner = Callable[["Context"], Coroutine[Any, Any, None]]
"""A workload written for an event loop: `async def run(ctx)`."""


def run_sync(
    fn: AsyncRunner, run_loop: Callable[[AsyncRunner, Context], None]
) -> Callable[[Context], None]:
    """`fn` as a client module's runner: `run_loop(fn, ctx)` runs it on an event loop of its
    own (`asyncio.run(fn(ctx))`, `trio.run(fn, ctx)`); the runner keeps `fn`'s docstring."""

    def run(ctx: Context) -> None:
        run_loop(fn, ctx)

    run.__doc__ = fn.__doc__
    return run


def on_asyncio(fn: AsyncRunner, ctx: Context) -> None:
    """Run workload `fn` in a new asyncio event loop (`run_sync`'s `run_loop`)."""
    import asyncio

    asyncio.run(fn(ctx))
