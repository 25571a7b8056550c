"""`puka perf`: a load generator that measures throughput, latency, loss, duplicates, reorders.

Producers and consumers are connections of their own, all driven from one thread. Every
message carries its producer's number and a sequence number (headers `x-perf-producer`,
`x-perf-seq`) and the time it was sent (`x-perf-ts`, nanoseconds since the epoch): consumers
measure the latency from it and count, per producer, the messages never received (lost),
received twice (duplicates) and received after a later one (reordered). A line per second
shows the rates; the summary has the rates and the latency percentiles.
"""

from __future__ import annotations

import math
import secrets
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import puka

from puka_cli.context import Context, Interrupt, close
from puka_cli.errors import CliError, UsageError
from puka_cli.options import add_common, non_negative_float, non_negative_int, positive_int, seconds
from puka_cli.output import json_dumps

__all__ = ["Stats", "percentile", "register", "run"]

_PRODUCER = "x-perf-producer"
_SEQ = "x-perf-seq"
_TS = "x-perf-ts"
_BURST = 500  # most messages one producer publishes before the loop reads the sockets again

EXAMPLES = """\
examples:
  puka perf                                   1 producer, 1 consumer, 10 s, as fast as possible
  puka perf -x 2 -y 4 --rate 5000 -s 1024 -z 30
  puka perf --confirm 0 --no-ack -z 5         no confirms, no acks: the raw ceiling
  puka perf -z 3 --json | jq .latency_ms
"""


def register(subparsers: Any) -> None:
    """Add `perf` to the command line."""
    parser = add_common(
        subparsers,
        "perf",
        help="load test: producers and consumers, rates, latency percentiles, loss",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog=EXAMPLES,
    )
    parser.add_argument(
        "-x",
        "--producers",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="producers (default: 1)",
    )
    parser.add_argument(
        "-y",
        "--consumers",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="consumers (default: 1)",
    )
    parser.add_argument(
        "-z",
        "--time",
        type=seconds,
        default=10.0,
        metavar="SEC",
        help="how long to publish (default: 10)",
    )
    parser.add_argument(
        "-c",
        "--count",
        type=positive_int,
        metavar="N",
        help="stop each producer after N messages (before --time if sooner)",
    )
    parser.add_argument(
        "-s",
        "--size",
        type=non_negative_int,
        default=12,
        metavar="BYTES",
        help="body size (default: 12)",
    )
    parser.add_argument(
        "--rate",
        type=non_negative_float,
        default=0.0,
        metavar="MSG/S",
        help="total publish rate limit, shared by the producers (default: none)",
    )
    parser.add_argument(
        "--confirm",
        type=non_negative_int,
        default=200,
        metavar="N",
        help="unconfirmed messages each producer may have in flight; 0 turns confirms off "
        "(default: 200)",
    )
    parser.add_argument(
        "--prefetch",
        type=non_negative_int,
        default=200,
        metavar="N",
        help="prefetch of each consumer, 0 for no limit (default: 200)",
    )
    parser.add_argument(
        "--no-ack", action="store_true", help="consume without acknowledgements (auto-ack)"
    )
    parser.add_argument(
        "--persistent", action="store_true", help="publish persistent messages (delivery_mode 2)"
    )
    parser.add_argument(
        "--queue",
        metavar="NAME",
        help="use this existing queue (default: a temporary one, deleted at the end)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=seconds,
        default=10.0,
        metavar="SEC",
        help="after publishing, wait this long at most for consumers to catch up (default: 10)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON (same as -F json)"
    )
    parser.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def percentile(ordered: Any, fraction: float) -> float:
    """The nearest-rank percentile of sorted values (0.0 when there are none)."""
    if not len(ordered):
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def latency_summary(values: Any) -> dict[str, float]:
    """min, p50, p95, p99, max and mean of latencies in milliseconds."""
    ordered = sorted(values)
    if not ordered:
        return {"min": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {
        "min": round(ordered[0], 3),
        "p50": round(percentile(ordered, 0.50), 3),
        "p95": round(percentile(ordered, 0.95), 3),
        "p99": round(percentile(ordered, 0.99), 3),
        "max": round(ordered[-1], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
    }


@dataclass
class Stats:
    """Counters of a run (totals, and those of the current one-second interval)."""

    published: int = 0
    confirmed: int = 0
    nacked: int = 0
    received: int = 0
    duplicates: int = 0
    reordered: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    seen: dict[int, bytearray] = field(default_factory=dict)
    last_seq: dict[tuple[int, int], int] = field(default_factory=dict)
    error: BaseException | None = None
    # the current interval
    tick_published: int = 0
    tick_confirmed: int = 0
    tick_received: int = 0
    tick_latencies: list[float] = field(default_factory=list)

    def record(self, consumer: int, producer: int, seq: int, sent_ns: int, now_ns: int) -> None:
        """A message was received."""
        self.received += 1
        self.tick_received += 1
        latency = (now_ns - sent_ns) / 1e6
        self.latencies.append(latency)
        self.tick_latencies.append(latency)
        seen = self.seen.get(producer)
        if seen is None:
            seen = self.seen[producer] = bytearray(1024)
        if seq >= len(seen):
            seen.extend(bytes(max(seq + 1 - len(seen), len(seen))))
        if seen[seq]:
            self.duplicates += 1
        else:
            seen[seq] = 1
        key = (consumer, producer)
        last = self.last_seq.get(key, -1)
        if seq < last:
            self.reordered += 1
        else:
            self.last_seq[key] = seq

    @property
    def unique(self) -> int:
        """Distinct messages received."""
        return sum(seen.count(1) for seen in self.seen.values())

    def take_interval(self) -> dict[str, Any]:
        """The counters of the interval that just ended (and start a new one)."""
        data = {
            "published": self.tick_published,
            "confirmed": self.tick_confirmed,
            "received": self.tick_received,
            "latency_ms": latency_summary(self.tick_latencies),
        }
        self.tick_published = self.tick_confirmed = self.tick_received = 0
        self.tick_latencies = []
        return data


# ---------------------------------------------------------------------------------------------
# Producers and consumers
# ---------------------------------------------------------------------------------------------


class Producer:
    """One publishing connection."""

    def __init__(
        self,
        number: int,
        client: puka.Client,
        args: Any,
        stats: Stats,
        rate: float,
        wake: Callable[[], None],
    ) -> None:
        self.number = number
        self.client = client
        self.stats = stats
        self.wake = wake  # ends the loop's wait: called when a full window has room again
        self.queue: str = args.queue_name
        self.body = bytes(args.size)
        self.window: int = args.confirm
        self.persistent: bool = args.persistent
        self.limit: int | None = args.count
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.seq = 0
        self.in_flight = 0

    @property
    def finished(self) -> bool:
        """Whether it published its `--count`."""
        return self.limit is not None and self.seq >= self.limit

    def on_confirm(self, promise: int, result: puka.Result) -> None:
        """A publish settled (confirmed, nacked, or written when there are no confirms)."""
        self.in_flight -= 1
        if self.in_flight == self.window // 2:
            self.wake()  # half the window is free again: publish now, not when the wait ends
        if result.is_error:
            self.stats.nacked += 1
            if not isinstance(result.exception, puka.PublishNacked) and self.stats.error is None:
                self.stats.error = result.exception
        else:
            self.stats.confirmed += 1
            self.stats.tick_confirmed += 1

    def ready_in(self, now: float) -> float | None:
        """Seconds until it may publish again (0: now; None: it waits for confirms or is done)."""
        if self.finished or (self.window and self.in_flight >= self.window):
            return None
        if self.interval:
            return max(0.0, self.next_at - now)
        return 0.0

    def publish_due(self, now: float) -> None:
        """Publish what the rate and the confirm window allow now."""
        client, stats = self.client, self.stats
        for _ in range(_BURST):
            if self.finished or (self.window and self.in_flight >= self.window):
                return
            if self.interval:
                if now < self.next_at:
                    return
                self.next_at = max(self.next_at + self.interval, now - 1.0)
            headers: dict[str, Any] = {
                _PRODUCER: self.number,
                _SEQ: self.seq,
                _TS: time.time_ns(),
            }
            if self.persistent:
                headers["delivery_mode"] = 2
            client.basic_publish(
                exchange="",
                routing_key=self.queue,
                headers=headers,
                body=self.body,
                callback=self.on_confirm,
            )
            self.seq += 1
            self.in_flight += 1
            stats.published += 1
            stats.tick_published += 1


class Consumer:
    """One consuming connection."""

    def __init__(self, number: int, client: puka.Client, args: Any, stats: Stats) -> None:
        self.number = number
        self.client = client
        self.stats = stats
        self.no_ack: bool = args.no_ack
        self.promise = client.basic_consume(
            queue=args.queue_name,
            prefetch_count=args.prefetch,
            no_ack=args.no_ack,
            callback=self.on_message,
        )

    def on_message(self, promise: int, result: puka.Result) -> None:
        """A delivery: record it, acknowledge it."""
        if result.is_error:
            if self.stats.error is None:
                self.stats.error = result.exception
            return
        now = time.time_ns()
        headers = result["headers"]
        try:
            producer, seq, sent = headers[_PRODUCER], headers[_SEQ], headers[_TS]
        except KeyError:
            producer, seq, sent = -1, 0, now  # not one of ours: counted, no sequence check
        self.stats.record(self.number, producer, seq, sent, now)
        if not self.no_ack:
            self.client.basic_ack(result)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class Run:
    """A perf run: the connections, the clock, the per-second report."""

    def __init__(self, ctx: Context, interrupt: Interrupt) -> None:
        self.ctx = ctx
        self.args = ctx.args
        self.interrupt = interrupt
        self.stats = Stats()
        self.clients: list[puka.Client] = []
        self.producers: list[Producer] = []
        self.consumers: list[Consumer] = []
        self.intervals: list[dict[str, Any]] = []
        self.json = bool(self.args.json or ctx.output.is_json)
        self._last_tick = 0.0

    def _connect(self, role: str, pubacks: bool | None = None) -> puka.Client:
        client = self.ctx.client(role=role, pubacks=pubacks)
        self.clients.append(client)
        return client

    def _check(self) -> None:
        if self.stats.error is not None:
            raise self.stats.error

    def _pump(self, timeout: float) -> None:
        # with timeout 0, puka.loop still writes, polls and reads the sockets once
        puka.loop(self.clients, timeout=timeout)
        self._check()

    def _wake(self) -> None:
        """End the current `_pump` early: a producer can publish again."""
        for client in self.clients:
            client.loop_break()

    def _tick(self, elapsed: float, *, draining: bool = False) -> None:
        interval = self.stats.take_interval()
        seconds = max(elapsed - self._last_tick, 1e-9)
        self._last_tick = elapsed
        interval["t"] = round(elapsed, 3)
        interval["seconds"] = round(seconds, 3)
        interval["phase"] = "drain" if draining else "run"
        self.intervals.append(interval)
        latency = interval["latency_ms"]
        line = (
            f"{elapsed:6.1f}s  sent {interval['published'] / seconds:>8.0f} msg/s  "
            f"confirmed {interval['confirmed'] / seconds:>8.0f} msg/s  "
            f"received {interval['received'] / seconds:>8.0f} msg/s  "
            f"latency p50 {latency['p50']:.2f} p95 {latency['p95']:.2f} "
            f"p99 {latency['p99']:.2f} ms"
        )
        if draining:
            line = (
                f"{elapsed:6.1f}s  drain: confirmed {interval['confirmed']}, received "
                f"{interval['received']} in {seconds:.2f} s"
            )
        if self.json:
            if getattr(self.ctx.stderr, "isatty", lambda: False)():
                self.ctx.stderr.write(line + "\n")
                self.ctx.stderr.flush()
        else:
            self.ctx.output.line(line)

    def execute(self) -> dict[str, Any]:
        """Set up, publish for `--time`, drain, summarise."""
        args = self.args
        admin = self._connect("admin")
        temporary = args.queue is None
        if temporary:
            args.queue_name = f"puka-perf-{secrets.token_hex(4)}"
            expires = int((args.time + args.drain_timeout + 60) * 1000)
            admin.wait(admin.queue_declare(queue=args.queue_name, arguments={"x-expires": expires}))
        else:
            args.queue_name = args.queue
            admin.wait(admin.queue_declare(queue=args.queue_name, passive=True))
        try:
            return self._measure()
        finally:
            for consumer in self.consumers:
                if not consumer.client.engine.closed:
                    consumer.client.basic_cancel(consumer.promise)
            if temporary and not admin.engine.closed:
                admin.wait(admin.queue_delete(queue=args.queue_name), raise_errors=False)
            for client in self.clients:
                close(client)

    def _measure(self) -> dict[str, Any]:
        args, stats = self.args, self.stats
        pubacks = args.confirm > 0
        rate_each = args.rate / args.producers if args.rate and args.producers else 0.0
        for number in range(args.consumers):
            self.consumers.append(
                Consumer(number, self._connect(f"consumer {number}"), args, stats)
            )
        for number in range(args.producers):
            client = self._connect(f"producer {number}", pubacks=None if pubacks else False)
            self.producers.append(Producer(number, client, args, stats, rate_each, self._wake))
        for consumer in self.consumers:  # consuming before the clock starts
            consumer.client.wait(consumer.client.basic_qos(consumer.promise, args.prefetch))
        start = time.monotonic()
        end = start + args.time
        next_tick = start + 1.0
        while not self.interrupt.requested:
            now = time.monotonic()
            if now >= end or (self.producers and all(p.finished for p in self.producers)):
                break
            waits = []
            for producer in self.producers:
                producer.publish_due(now)
                wait = producer.ready_in(time.monotonic())
                if wait is not None:
                    waits.append(wait)
            timeout = min([0.005, *waits, max(0.0, next_tick - now), max(0.0, end - now)])
            self._pump(timeout)
            now = time.monotonic()
            if now >= next_tick:
                self._tick(now - start)
                next_tick += 1.0
        produced = time.monotonic() - start
        settled: float | None = None  # when the last confirm of the run arrived
        # drain: confirms of what is in flight, then consumers catch up
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and not self.interrupt.requested:
            accepted = stats.confirmed if pubacks else stats.published
            confirms_done = all(p.in_flight <= 0 for p in self.producers) or not pubacks
            if confirms_done and settled is None:
                settled = time.monotonic() - start
            if confirms_done and (not self.consumers or stats.unique >= accepted):
                break
            self._pump(0.01)
        if not pubacks:
            self._pump(0.0)
        last = time.monotonic() - start
        if self.stats.tick_published or self.stats.tick_confirmed or self.stats.tick_received:
            self._tick(last, draining=True)
        return self._summary(produced, settled or last, last)

    def _summary(self, produced: float, settled: float, elapsed: float) -> dict[str, Any]:
        """The run's figures: `produced` is how long the producers published, `settled` when
        the last of their publishes was confirmed (or written, without confirms), `elapsed` the
        whole run with the drain."""
        args, stats = self.args, self.stats
        pubacks = args.confirm > 0
        accepted = stats.confirmed if pubacks else stats.published
        unique = stats.unique
        return {
            "duration_s": round(produced, 3),
            "producers": args.producers,
            "consumers": args.consumers,
            "size": args.size,
            "rate_limit": args.rate or None,
            "confirm": args.confirm,
            "prefetch": args.prefetch,
            "published": stats.published,
            "sent": accepted,
            "confirmed": stats.confirmed if pubacks else None,
            "nacked": stats.nacked,
            "received": stats.received,
            "unique_received": unique,
            "lost": max(0, accepted - unique) if args.consumers else None,
            "duplicates": stats.duplicates,
            "reordered": stats.reordered,
            "send_rate": round(accepted / settled, 1) if settled else 0.0,
            "receive_rate": round(stats.received / elapsed, 1) if elapsed else 0.0,
            "latency_ms": latency_summary(stats.latencies),
            "intervals": self.intervals,
        }


def _text_summary(summary: dict[str, Any]) -> str:
    latency = summary["latency_ms"]
    lines = [
        f"summary: {summary['duration_s']} s, {summary['producers']} producer(s), "
        f"{summary['consumers']} consumer(s), {summary['size']}-byte bodies",
        f"  sent      {summary['sent']} ({summary['send_rate']} msg/s)"
        + (f", {summary['nacked']} nacked" if summary["nacked"] else ""),
        f"  received  {summary['received']} ({summary['receive_rate']} msg/s)",
        f"  latency   min {latency['min']} / p50 {latency['p50']} / p95 {latency['p95']} / "
        f"p99 {latency['p99']} / max {latency['max']} ms",
        f"  lost {summary['lost']}, duplicates {summary['duplicates']}, "
        f"reordered {summary['reordered']}",
    ]
    return "\n".join(lines)


def run(ctx: Context) -> int:
    """Run the load test and print the summary."""
    args = ctx.args
    if args.producers == 0 and args.consumers == 0:
        raise UsageError("nothing to do: no producers and no consumers")
    if args.producers == 0 and args.queue is None:
        raise UsageError("consumers only: give --queue with messages to consume")
    with Interrupt() as interrupt:
        perf = Run(ctx, interrupt)
        summary = perf.execute()
    if perf.json:
        ctx.output.line(json_dumps(summary, indent=ctx.output.format == "json"))
    else:
        ctx.output.line(_text_summary(summary))
    if interrupt.requested:
        return 130
    if summary["lost"]:
        raise CliError(f"{summary['lost']} message(s) lost")
    return 0
