"""One scale measurement in a fresh process: one client, one dimension, one size.

    python -m bench.scale_child DIMENSION CLIENT VALUE PREFIX URL QUICK REPORT.json

`bench/scale.py` runs this once per client, dimension and value, so that RSS and CPU time are
the client's alone (the harness's own work — declaring and deleting queues — happens in the
parent). Each runner sets itself up untimed, measures, checks what it saw (every connection
open, every publish confirmed, every message delivered with its size) and returns its numbers;
a failure writes `{"ok": false, "error": ...}`. The dimensions:

- `connections` (VALUE connections): open them all at once from one thread (the burst a
  service makes at start), each one's connect time from its start to its open; RSS per idle
  connection ((RSS after - RSS before) / N, after `gc.collect()`, with one connection open
  before, idle throughout, so that the first one's one-off costs are left out); then every
  connection publishes its share of `CONN_TOTAL` messages with confirms, all driven from this
  thread: CPU per confirmed publish. One warm-up publish per connection first (untimed) opens its
  channel in confirm mode. The messages go to the default exchange with a routing key no
  queue has: the broker confirms them and drops them, so no queue fills up.
- `inflight` (VALUE publishes): one connection publishes VALUE messages with confirms without
  waiting, then waits for every confirm. Bytes per publish in flight: (RSS right after the
  last publish call returned - idle RSS) / VALUE, everything the process holds for them: the
  client's state, its unsent frames, and the caller's list of handles (promise numbers for
  both Puka clients, tasks for aio-pika); the one 100-byte body object is shared by every
  publish and counted once, before the idle RSS. Also the peak over the whole run (`VmHWM`)
  and CPU per message.
- `consumers` (VALUE queues, declared by the parent): one connection consumes every queue
  (a consumer each, prefetch 1000, ack each). Once every consumer is set up (pika, aio-pika
  and the raw client wait for each consume-ok; for Puka, whose consume does not, the broker
  is asked until each queue has its consumer, then 0.2 s more lets the last consume-oks be
  read), a raw-socket publisher in a thread of this process spreads `CONSUMER_TOTAL`
  messages round robin over the queues; the client's CPU per delivered, acked message is
  the main thread's CPU time (`time.thread_time`, which leaves out the publisher thread's).
  The raw client (`consumers_raw`) is the ceiling: what the broker's way of delivering
  costs any client. With `BENCH_SCALE_IO` set, the main thread's socket calls are counted
  too (`SocketCounts`).
- `bodies` (VALUE bytes per body, queue declared by the parent): publish N bodies with
  confirms, then consume them (ack each); MB/s over both, and the consumer's RSS growth
  (peak during the consume phase over the RSS before it) divided by the body size.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import socket
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from puka_spec import encode_content, methods

from bench.common import (
    PREFETCH,
    Broker,
    _cpu,
    _peak_rss,
    _reset_peak_rss,
    _rss,
    failure_text,
)
from bench.rawamqp import RawConnection, batched, read_deliveries, wait_confirms

CONN_TOTAL = 50_000  # confirmed publishes spread over the connections (quick: 10,000)
DRAIN_EVERY = 4096  # publishes between two `await client.drain()` (asyncio, in flight)
CONSUMER_TOTAL = 20_000  # messages spread over the consumers' queues (quick: 5,000)
BODY = bytes(range(100))  # the one 100-byte body every small publish shares
Numbers = dict[str, Any]


class WrongResult(Exception):
    """The client finished, but what it did or saw is not what the run requires."""


def conn_total(quick: bool) -> int:
    """Confirmed publishes in a `connections` run."""
    return 10_000 if quick else CONN_TOTAL


def consumer_total(quick: bool) -> int:
    """Messages delivered in a `consumers` run."""
    return 5_000 if quick else CONSUMER_TOTAL


def body_count(size: int, quick: bool) -> int:
    """Messages in a `bodies` run: about 64 MiB (quick: 16 MiB) in all, 4 to 20,000 of them."""
    total = (16 if quick else 64) * 1024 * 1024
    return max(4, min(5_000 if quick else 20_000, total // size))


def body_prefetch(size: int) -> int:
    """The consumer's prefetch for a body size: about 1 MiB unacked, 1 to 1000 messages."""
    return max(1, min(PREFETCH, (1024 * 1024) // size))


def queue_names(dimension: str, value: int, prefix: str) -> list[str]:
    """The queues the parent declares (and deletes) for a run."""
    if dimension == "consumers":
        return [f"{prefix}.c{i}" for i in range(value)]
    if dimension == "bodies":
        return [f"{prefix}.b"]
    return []


def _quantiles(latencies: list[float]) -> Numbers:
    """p50 / p99 / max of the connect times, in ms."""
    ordered = sorted(latencies)
    cut = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "connect_p50_ms": statistics.median(ordered) * 1e3,
        "connect_p99_ms": cut * 1e3,
        "connect_max_ms": ordered[-1] * 1e3,
        "connect_ms_all": [round(x * 1e3, 3) for x in ordered],
    }


class SocketCounts:
    """The socket calls of one thread (the one that installs it), when `BENCH_SCALE_IO` is set.

    `install` replaces `socket.socket` with a subclass whose receiving and sending methods count
    the calls made from that thread: `reads` (calls that returned bytes), `read_bytes`, `empty`
    (calls that found nothing: `EAGAIN`) and `writes` (send, sendall, sendmsg). Every client
    here (Puka, asyncio, pika, the raw socket) makes its sockets through `socket.socket`, so
    each is counted alike; the raw publisher's thread is not counted. A Python call more per
    socket call costs the client a little CPU, so the CPU numbers of a counted run are not
    those of the plain one: `bench.scale --io` runs it apart.
    """

    def __init__(self) -> None:
        self.on = False
        self.reads = self.read_bytes = self.empty = self.writes = 0

    def snapshot(self) -> tuple[int, int, int, int]:
        return self.reads, self.read_bytes, self.empty, self.writes

    def install(self) -> None:
        counts, me, base = self, threading.get_ident(), socket.socket

        def received(size: int) -> None:
            if threading.get_ident() == me:
                if size:
                    counts.reads += 1
                    counts.read_bytes += size
                else:
                    counts.empty += 1

        class Counted(base):  # type: ignore[misc, valid-type]
            __slots__ = ()

            def recv(self, *args: Any) -> bytes:
                try:
                    data: bytes = super().recv(*args)
                except (BlockingIOError, InterruptedError):
                    received(0)
                    raise
                received(len(data))
                return data

            def recv_into(self, *args: Any) -> int:
                try:
                    size: int = super().recv_into(*args)
                except (BlockingIOError, InterruptedError):
                    received(0)
                    raise
                received(size)
                return size

            def send(self, *args: Any) -> int:
                if threading.get_ident() == me:
                    counts.writes += 1
                sent: int = super().send(*args)
                return sent

            def sendall(self, *args: Any) -> None:
                if threading.get_ident() == me:
                    counts.writes += 1
                super().sendall(*args)

            def sendmsg(self, *args: Any) -> int:
                if threading.get_ident() == me:
                    counts.writes += 1
                sent: int = super().sendmsg(*args)
                return sent

        socket.socket = Counted  # type: ignore[misc]
        self.on = True


SOCKETS = SocketCounts()


def _thread_times() -> tuple[float, float, int]:
    """This thread's user and system CPU time (seconds), and its context switches."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime, usage.ru_stime, usage.ru_nvcsw + usage.ru_nivcsw


class Meter:
    """CPU (process, or this thread with `thread=True`) and wall time of a timed section, and
    the socket calls made meanwhile (`SOCKETS`, when counted). A thread's CPU is also split
    into user and system time (`getrusage(RUSAGE_THREAD)`, at a tick's resolution): the
    system time is what the kernel spent on its socket calls and waits. Its context switches
    (waits for the socket, and preemptions: each may leave the caches to the broker) too."""

    def __init__(self, thread: bool = False) -> None:
        self._clock = time.thread_time if thread else _cpu
        self._thread = thread
        self.cpu = self.wall = self.user = self.system = 0.0
        self.switches = 0
        self._cpu0 = self._wall0 = 0.0
        self._times0: tuple[float, float, int] = (0.0, 0.0, 0)
        self._io0 = self.io = (0, 0, 0, 0)

    def start(self) -> None:
        self._io0 = SOCKETS.snapshot()
        if self._thread:
            self._times0 = _thread_times()
        self._cpu0, self._wall0 = self._clock(), time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._wall0
        self.cpu = self._clock() - self._cpu0
        if self._thread:
            user, system, switches = _thread_times()
            self.user, self.system = user - self._times0[0], system - self._times0[1]
            self.switches = switches - self._times0[2]
        self.io = tuple(b - a for a, b in zip(self._io0, SOCKETS.snapshot(), strict=True))  # type: ignore[assignment]

    def per_message(self, count: int) -> Numbers:
        """CPU per message (a thread's: and its system part) and messages/s; the socket
        calls per message, when counted."""
        numbers: Numbers = {"cpu_us_msg": self.cpu / count * 1e6, "msg_s": count / self.wall}
        if self._thread:
            numbers["sys_us_msg"] = self.system / count * 1e6
            numbers["switches_msg"] = self.switches / count
        if SOCKETS.on:
            reads, read_bytes, empty, writes = self.io
            numbers.update(
                reads_msg=reads / count,
                bytes_read=read_bytes / reads if reads else 0.0,
                empty_reads_msg=empty / count,
                writes_msg=writes / count,
            )
        return numbers


def idle_rss() -> int:
    """The RSS once garbage is collected, with the peak mark lowered to it."""
    gc.collect()
    _reset_peak_rss()
    return _rss()


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files to the hard one; returns both."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ---------------------------------------------------------------------------------------------
# The raw publisher of the `consumers` runs, and the raw ceiling of the `bodies` runs
# ---------------------------------------------------------------------------------------------


def spread(broker: Broker, queues: list[str], count: int, body: bytes) -> None:
    """Publish `count` messages round robin over `queues`, with confirms (raw socket)."""
    with RawConnection(broker) as conn:
        conn.rpc(1, methods.ConfirmSelect())
        encoded = [methods.BasicPublish(exchange="", routing_key=q).encode() for q in queues]
        frames = (
            encode_content(1, encoded[i % len(queues)], b"\x00\x00", body, conn.frame_max)
            for i in range(count)
        )
        for chunk in batched(frames):
            conn.send(chunk)
        wait_confirms(conn, count)


class Publisher(threading.Thread):
    """`spread` in a thread; `error` holds what it raised."""

    def __init__(self, broker: Broker, queues: list[str], count: int) -> None:
        super().__init__(daemon=True)
        self.args_ = (broker, queues, count)
        self.error: BaseException | None = None

    def run(self) -> None:
        broker, queues, count = self.args_
        try:
            spread(broker, queues, count, BODY)
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(60)
        if self.error is not None:
            raise WrongResult(f"the publisher failed: {self.error!r}")


REGISTERED_WAIT = 300.0  # seconds the broker may take to register every consumer
SETTLE = 0.2  # seconds for the last consume-oks to be read once the broker sent them


class Registered:
    """Whether the broker has registered a consumer on each queue, asked on a connection of
    its own: a Puka consume does not wait for its consume-oks, and what it does with them
    must not fall into the timed section (10,000 of them come over seconds).

    The broker registers one channel's consumers in order: until the last queue has one,
    only that queue is asked; then all of them once.
    """

    def __init__(self, broker: Broker, queues: list[str]) -> None:
        self.conn = RawConnection(broker)
        self.queues = queues
        self.deadline = time.monotonic() + REGISTERED_WAIT

    def done(self) -> bool:
        """Whether every queue has its consumer (raises once `REGISTERED_WAIT` passed)."""
        if time.monotonic() > self.deadline:
            self.conn.close()
            raise WrongResult(f"the consumers were not all registered in {REGISTERED_WAIT:g} s")
        if self.conn.consumer_counts(self.queues[-1:])[0] and all(
            self.conn.consumer_counts(self.queues)
        ):
            self.conn.close()
            return True
        return False


def bodies_raw(broker: Broker, size: int, quick: bool, queue: str) -> Numbers:
    """The raw-socket ceiling: publish with confirms, then consume with acks."""
    count, body = body_count(size, quick), b"x" * size
    sizes: list[int] = []
    with RawConnection(broker, channels=2) as conn:
        meter = Meter()
        meter.start()
        conn.publish_confirmed(queue, [body] * count, channel=2)
        rss0 = idle_rss()
        conn.consume(queue, no_ack=False, prefetch=body_prefetch(size))
        read_deliveries(conn, count, lambda b: sizes.append(len(b)), ack=True)
        meter.stop()
    return _body_numbers(size, count, sizes, meter, rss0)


def consumers_raw(broker: Broker, c: int, quick: bool, prefix: str) -> Numbers:
    """The raw-socket ceiling of the `consumers` dimension: one channel, prefetch 1000 per
    consumer and C `basic.consume` (pipelined, 500 at a time); `read_deliveries` then takes
    the messages as they come and acks each read's worth with one `multiple` ack, the frame
    Puka's coalesced acks put on the wire. What it costs per message is what the broker's
    way of delivering (how many messages each read brings) costs any client."""
    queues = queue_names("consumers", c, prefix)
    total = consumer_total(quick)
    calls: list[methods.Method] = [methods.BasicQos(0, PREFETCH, False)]
    calls += [methods.BasicConsume(queue=q) for q in queues]
    taken = [0]

    def take(_body: bytes) -> None:
        taken[0] += 1

    with RawConnection(broker) as conn:
        for start in range(0, len(calls), 500):
            conn.pipelined(1, calls[start : start + 500])
        meter = Meter(thread=True)
        publisher = Publisher(broker, queues, total)
        meter.start()
        publisher.start()
        read_deliveries(conn, total, take, ack=True, multiple=True)
        meter.stop()
        publisher.finish()
    if taken[0] != total:
        raise WrongResult(f"received {taken[0]} of {total}")
    return meter.per_message(total)


def _body_numbers(size: int, count: int, sizes: list[int], meter: Meter, rss0: int) -> Numbers:
    growth = max(0, _peak_rss() - rss0)
    if len(sizes) != count or any(s != size for s in sizes):
        raise WrongResult(f"received {len(sizes)} of {count} bodies, or some of the wrong size")
    return {
        "mb_s": size * count / meter.wall / 1e6,
        "cpu_us_msg": meter.cpu / count * 1e6,
        "rss_growth_bodies": growth / size,
        "rss_growth_mib": growth / 1024 / 1024,
        "count": count,
    }


# ---------------------------------------------------------------------------------------------
# Puka, blocking: `puka.Client`, several driven by `puka.loop`
# ---------------------------------------------------------------------------------------------


def _puka() -> Any:
    import puka

    return puka


def connections_puka(broker: Broker, n: int, quick: bool, prefix: str) -> Numbers:
    """Connect N clients at once (callbacks, `puka.loop`); each publishes its share."""
    puka = _puka()
    warm = puka.Client(broker.url)  # the first connection's one-off costs stay out of the RSS
    warm.wait(warm.connect())
    rss0 = idle_rss()
    clients = [puka.Client(broker.url) for _ in range(n)]
    started: list[float] = [0.0] * n
    latencies: list[float] = []

    def opened(i: int, client: Any) -> Callable[[int, Any], None]:
        def done(_promise: int, _result: Any) -> None:
            latencies.append(time.perf_counter() - started[i])
            client.loop_break()

        return done

    for i, client in enumerate(clients):
        started[i] = time.perf_counter()
        client.connect(callback=opened(i, client))
    puka.loop(clients, timeout=120)
    if len(latencies) != n:
        raise WrongResult(f"{len(latencies)} of {n} connections opened")
    rss1 = idle_rss()
    key = f"{prefix}.nowhere"
    for client in clients:  # warm-up: opens each client's channel in confirm mode
        client.wait(client.basic_publish(exchange="", routing_key=key, body=BODY))
    share = max(1, conn_total(quick) // n)
    confirmed = [0]

    def last_confirmed(client: Any) -> Callable[[int, Any], None]:
        def done(_promise: int, _result: Any) -> None:
            confirmed[0] += 1
            client.loop_break()

        return done

    meter = Meter()
    meter.start()
    handles = []
    for client in clients:
        promises = [
            client.basic_publish(exchange="", routing_key=key, body=BODY) for _ in range(share)
        ]
        client.set_callback(promises[-1], last_confirmed(client))
        handles.append(promises)
    puka.loop(clients, timeout=300)
    meter.stop()
    if confirmed[0] != n:
        raise WrongResult(f"{confirmed[0]} of {n} connections saw their last confirm")
    for client, promises in zip(clients, handles, strict=True):
        client.wait_for_all(promises[:-1])  # every other confirm is there, and not an error
        client.wait(client.close())
    warm.wait(warm.close())
    return _connection_numbers(latencies, rss0, rss1, n, meter, share * n)


def _connection_numbers(
    latencies: list[float], rss0: int, rss1: int, n: int, meter: Meter, published: int
) -> Numbers:
    return {
        **_quantiles(latencies),
        "connect_ms": sum(latencies) / n * 1e3,
        "rss_per_conn_kib": (rss1 - rss0) / n / 1024,
        "cpu_us_msg": meter.cpu / published * 1e6,
        "published": published,
    }


def inflight_puka(broker: Broker, k: int, quick: bool, prefix: str) -> Numbers:
    """Publish K with confirms (a list of promise numbers), then `wait_for_all`."""
    puka = _puka()
    client = puka.Client(broker.url)
    client.wait(client.connect())
    key = f"{prefix}.nowhere"
    client.wait(client.basic_publish(exchange="", routing_key=key, body=BODY))
    rss0 = idle_rss()
    meter = Meter()
    meter.start()
    promises = [client.basic_publish(exchange="", routing_key=key, body=BODY) for _ in range(k)]
    rss1 = _rss()
    results = client.wait_for_all(promises)
    meter.stop()
    peak = _peak_rss()
    if len(results) != k:
        raise WrongResult(f"{len(results)} of {k} confirmed")
    client.wait(client.close())
    return _inflight_numbers(k, rss0, rss1, peak, meter)


def _inflight_numbers(k: int, rss0: int, rss1: int, peak: int, meter: Meter) -> Numbers:
    return {
        "bytes_inflight": (rss1 - rss0) / k,
        "bytes_peak": (peak - rss0) / k,
        "cpu_us_msg": meter.cpu / k * 1e6,
        "msg_s": k / meter.wall,
    }


def consumers_puka(broker: Broker, c: int, quick: bool, prefix: str) -> Numbers:
    """`basic_consume_multi` over the C queues (one channel), a callback that acks; `loop`."""
    puka = _puka()
    queues = queue_names("consumers", c, prefix)
    total = consumer_total(quick)
    client = puka.Client(broker.url)
    client.wait(client.connect())
    left = [total]

    def on_message(_promise: int, message: Any) -> None:
        client.basic_ack(message)
        left[0] -= 1
        if not left[0]:
            client.loop_break()

    client.basic_consume_multi(queues, prefetch_count=PREFETCH, callback=on_message)
    registered = Registered(broker, queues)
    while not registered.done():
        client.loop(timeout=0.05)
    client.loop(timeout=SETTLE)
    meter = Meter(thread=True)
    publisher = Publisher(broker, queues, total)
    meter.start()
    publisher.start()
    client.loop(timeout=300)
    meter.stop()
    publisher.finish()
    if left[0]:
        raise WrongResult(f"received {total - left[0]} of {total}")
    client.wait(client.close())
    return meter.per_message(total)


def bodies_puka(broker: Broker, size: int, quick: bool, prefix: str) -> Numbers:
    """Publish N with confirms (`wait_for_all`), then consume with a callback that acks."""
    puka = _puka()
    queue = queue_names("bodies", size, prefix)[0]
    count, body = body_count(size, quick), b"x" * size
    client = puka.Client(broker.url)
    client.wait(client.connect())
    sizes: list[int] = []
    meter = Meter()
    meter.start()
    promises = [
        client.basic_publish(exchange="", routing_key=queue, body=body) for _ in range(count)
    ]
    client.wait_for_all(promises)
    del promises
    rss0 = idle_rss()

    def on_message(_promise: int, message: Any) -> None:
        sizes.append(len(message["body"]))
        client.basic_ack(message)
        if len(sizes) == count:
            client.loop_break()

    client.basic_consume(queue=queue, prefetch_count=body_prefetch(size), callback=on_message)
    client.loop(timeout=300)
    meter.stop()
    numbers = _body_numbers(size, count, sizes, meter, rss0)
    client.wait(client.close())
    return numbers


# ---------------------------------------------------------------------------------------------
# Puka, asyncio: `puka_asyncio`
# ---------------------------------------------------------------------------------------------


def _run(coroutine: Any) -> Numbers:
    result: Numbers = asyncio.run(coroutine)
    return result


def connections_puka_asyncio(broker: Broker, n: int, quick: bool, prefix: str) -> Numbers:
    """`asyncio.gather` of N connects; then each publishes its share (`wait_for_all`)."""
    import puka_asyncio

    async def main() -> Numbers:
        latencies: list[float] = []

        async def one() -> Any:
            t0 = time.perf_counter()
            client = await puka_asyncio.connect(broker.url)
            latencies.append(time.perf_counter() - t0)
            return client

        warm = await puka_asyncio.connect(broker.url)  # (one-off costs: not in the RSS)
        rss0 = idle_rss()
        clients = await asyncio.gather(*(one() for _ in range(n)))
        rss1 = idle_rss()
        key = f"{prefix}.nowhere"
        await asyncio.gather(
            *(c.basic_publish(exchange="", routing_key=key, body=BODY) for c in clients)
        )
        share = max(1, conn_total(quick) // n)
        meter = Meter()
        meter.start()
        done = await asyncio.gather(
            *(
                c.wait_for_all(
                    [c.basic_publish(exchange="", routing_key=key, body=BODY) for _ in range(share)]
                )
                for c in clients
            )
        )
        meter.stop()
        if sum(len(d) for d in done) != share * n:
            raise WrongResult("not every publish was confirmed")
        await asyncio.gather(*(c.close() for c in [*clients, warm]))
        return _connection_numbers(latencies, rss0, rss1, n, meter, share * n)

    return _run(main())


def inflight_puka_asyncio(broker: Broker, k: int, quick: bool, prefix: str) -> Numbers:
    """Publish K with confirms (`basic_publish_number`: a list of promise numbers, no future
    each; `drain` every `DRAIN_EVERY` publishes, as a loop of a million publishes must, so the
    unsent frames do not pile up), then `wait_for_all`."""
    import puka_asyncio

    async def main() -> Numbers:
        client = await puka_asyncio.connect(broker.url)
        key = f"{prefix}.nowhere"
        await client.basic_publish(exchange="", routing_key=key, body=BODY)
        rss0 = idle_rss()
        meter = Meter()
        meter.start()
        publish, drain = client.basic_publish_number, client.drain
        numbers = []
        for i in range(k):
            numbers.append(publish(exchange="", routing_key=key, body=BODY))
            if not i % DRAIN_EVERY:
                await drain()
        rss1 = _rss()
        results = await client.wait_for_all(numbers)
        meter.stop()
        peak = _peak_rss()
        if len(results) != k:
            raise WrongResult(f"{len(results)} of {k} confirmed")
        await client.close()
        return _inflight_numbers(k, rss0, rss1, peak, meter)

    return _run(main())


def consumers_puka_asyncio(broker: Broker, c: int, quick: bool, prefix: str) -> Numbers:
    """`basic_consume_multi` over the C queues with a callback that acks."""
    import puka_asyncio

    queues = queue_names("consumers", c, prefix)
    total = consumer_total(quick)

    async def main() -> Numbers:
        client = await puka_asyncio.connect(broker.url)
        done = asyncio.Event()
        left = [total]

        def on_message(_promise: int, message: Any) -> None:
            client.basic_ack(message)
            left[0] -= 1
            if not left[0]:
                done.set()

        client.basic_consume_multi(queues, prefetch_count=PREFETCH, callback=on_message)
        registered = Registered(broker, queues)
        while not registered.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(SETTLE)
        meter = Meter(thread=True)
        publisher = Publisher(broker, queues, total)
        meter.start()
        publisher.start()
        await asyncio.wait_for(done.wait(), 300)
        meter.stop()
        publisher.finish()
        await client.close()
        return meter.per_message(total)

    return _run(main())


def bodies_puka_asyncio(broker: Broker, size: int, quick: bool, prefix: str) -> Numbers:
    """Publish N with confirms (`wait_for_all`), then consume with a callback that acks."""
    import puka_asyncio

    queue = queue_names("bodies", size, prefix)[0]
    count, body = body_count(size, quick), b"x" * size

    async def main() -> Numbers:
        client = await puka_asyncio.connect(broker.url)
        sizes: list[int] = []
        done = asyncio.Event()
        meter = Meter()
        meter.start()
        await client.wait_for_all(
            [client.basic_publish(exchange="", routing_key=queue, body=body) for _ in range(count)]
        )
        rss0 = idle_rss()

        def on_message(_promise: int, message: Any) -> None:
            sizes.append(len(message["body"]))
            client.basic_ack(message)
            if len(sizes) == count:
                done.set()

        client.basic_consume(queue=queue, prefetch_count=body_prefetch(size), callback=on_message)
        await asyncio.wait_for(done.wait(), 300)
        meter.stop()
        numbers = _body_numbers(size, count, sizes, meter, rss0)
        await client.close()
        return numbers

    return _run(main())


# ---------------------------------------------------------------------------------------------
# pika: SelectConnection for many connections and publishes in flight (BlockingConnection
# confirms each publish before the next), BlockingConnection for consumers and bodies
# ---------------------------------------------------------------------------------------------


class PikaSelect:
    """N `SelectConnection`s on one `IOLoop`, each with a channel in confirm mode."""

    def __init__(self, broker: Broker, n: int) -> None:
        import pika
        from pika.adapters.select_connection import IOLoop, SelectConnection

        self.ioloop = IOLoop()
        self.latencies: list[float] = []
        self.channels: list[Any] = []
        self.acked: list[int] = []
        self.expected: list[int] = []
        self.error: str = ""
        self._n = n
        params = pika.URLParameters(broker.url)
        self.connections: list[Any] = []
        for _ in range(n):
            started = time.perf_counter()
            self.connections.append(
                SelectConnection(
                    params,
                    on_open_callback=self._opened(started),
                    on_open_error_callback=self._failed,
                    custom_ioloop=self.ioloop,
                )
            )
        self._run(120)
        if len(self.latencies) != n:
            raise WrongResult(self.error or f"{len(self.latencies)} of {n} connections opened")

    def _run(self, timeout: float) -> None:
        timer = self.ioloop.call_later(timeout, self.ioloop.stop)
        self.ioloop.start()
        self.ioloop.remove_timeout(timer)

    def _opened(self, started: float) -> Callable[[Any], None]:
        def done(_connection: Any) -> None:
            self.latencies.append(time.perf_counter() - started)
            if len(self.latencies) == self._n:
                self.ioloop.stop()

        return done

    def _failed(self, _connection: Any, error: Any) -> None:
        self.error = f"connect failed: {error!r}"
        self.ioloop.stop()

    def open_channels(self) -> None:
        """A channel each, in confirm mode; an ack callback counting its confirms."""

        def on_open(channel: Any) -> None:
            index = len(self.channels)
            self.channels.append(channel)
            self.acked.append(0)
            self.expected.append(0)
            channel.confirm_delivery(self._on_ack(index), callback=on_confirm)

        ready = [0]

        def on_confirm(_frame: Any) -> None:
            ready[0] += 1
            if ready[0] == self._n:
                self.ioloop.stop()

        for connection in self.connections:
            connection.channel(on_open_callback=on_open)
        self._run(120)
        if ready[0] != self._n:
            raise WrongResult(f"{ready[0]} of {self._n} channels in confirm mode")

    def _on_ack(self, index: int) -> Callable[[Any], None]:
        def on_ack(frame: Any) -> None:
            method = frame.method
            if method.NAME != "Basic.Ack":
                self.error = "nacked"
                self.ioloop.stop()
                return
            tag = method.delivery_tag
            self.acked[index] = tag if method.multiple else self.acked[index] + 1
            if all(a >= e for a, e in zip(self.acked, self.expected, strict=True)):
                self.ioloop.stop()

        return on_ack

    def publish(self, count: int, key: str, after: Callable[[], None] | None = None) -> None:
        """Publish `count` on every channel, then run the loop until all are confirmed."""
        for index, channel in enumerate(self.channels):
            self.expected[index] += count
            for _ in range(count):
                channel.basic_publish("", key, BODY)
        if after is not None:
            after()
        self._run(300)
        if self.error or any(a < e for a, e in zip(self.acked, self.expected, strict=True)):
            raise WrongResult(self.error or f"confirmed {sum(self.acked)} of {sum(self.expected)}")

    def close(self) -> None:
        """Close every connection (politely, within 10 s)."""
        closed = [0]
        for connection in self.connections:

            def on_close(_c: Any, _reason: Any) -> None:
                closed[0] += 1
                if closed[0] == self._n:
                    self.ioloop.stop()

            connection.add_on_close_callback(on_close)
            connection.close()
        self._run(10)


def connections_pika(broker: Broker, n: int, quick: bool, prefix: str) -> Numbers:
    """N `SelectConnection`s on one IOLoop; each publishes its share with confirms."""
    warm = PikaSelect(broker, 1)  # the first connection's one-off costs stay out of the RSS
    rss0 = idle_rss()
    pika = PikaSelect(broker, n)
    rss1 = idle_rss()
    pika.open_channels()
    key = f"{prefix}.nowhere"
    pika.publish(1, key)
    share = max(1, conn_total(quick) // n)
    meter = Meter()
    meter.start()
    pika.publish(share, key)
    meter.stop()
    pika.close()
    warm.close()
    return _connection_numbers(pika.latencies, rss0, rss1, n, meter, share * n)


def inflight_pika(broker: Broker, k: int, quick: bool, prefix: str) -> Numbers:
    """One `SelectConnection`: publish K in confirm mode, then run the loop until confirmed."""
    pika = PikaSelect(broker, 1)
    pika.open_channels()
    key = f"{prefix}.nowhere"
    pika.publish(1, key)
    rss0 = idle_rss()
    rss1 = [0]

    def after() -> None:
        rss1[0] = _rss()

    meter = Meter()
    meter.start()
    pika.publish(k, key, after)
    meter.stop()
    peak = _peak_rss()
    pika.close()
    return _inflight_numbers(k, rss0, rss1[0], peak, meter)


def _pika_blocking(broker: Broker) -> Any:
    import pika

    return pika.BlockingConnection(pika.URLParameters(broker.url))


def consumers_pika(broker: Broker, c: int, quick: bool, prefix: str) -> Numbers:
    """`BlockingConnection`, one channel, prefetch 1000 per consumer, C `basic_consume`;
    `process_data_events` until every message is acked."""
    queues = queue_names("consumers", c, prefix)
    total = consumer_total(quick)
    connection = _pika_blocking(broker)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    received = [0]

    def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        received[0] += 1

    for queue in queues:
        channel.basic_consume(queue, on_message)
    meter = Meter(thread=True)
    publisher = Publisher(broker, queues, total)
    meter.start()
    publisher.start()
    deadline = time.monotonic() + 300
    while received[0] < total and time.monotonic() < deadline:
        connection.process_data_events(time_limit=1)
    meter.stop()
    publisher.finish()
    if received[0] != total:
        raise WrongResult(f"received {received[0]} of {total}")
    connection.close()
    return meter.per_message(total)


def bodies_pika(broker: Broker, size: int, quick: bool, prefix: str) -> Numbers:
    """`BlockingConnection`: publish N in confirm mode (each confirmed before the next returns),
    then consume with a callback that acks."""
    queue = queue_names("bodies", size, prefix)[0]
    count, body = body_count(size, quick), b"x" * size
    connection = _pika_blocking(broker)
    channel = connection.channel()
    channel.confirm_delivery()
    sizes: list[int] = []
    meter = Meter()
    meter.start()
    for _ in range(count):
        channel.basic_publish("", queue, body)
    rss0 = idle_rss()
    channel.basic_qos(prefetch_count=body_prefetch(size))

    def on_message(ch: Any, method: Any, _properties: Any, data: bytes) -> None:
        sizes.append(len(data))
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    deadline = time.monotonic() + 300
    while len(sizes) < count and time.monotonic() < deadline:
        connection.process_data_events(time_limit=1)
    meter.stop()
    numbers = _body_numbers(size, count, sizes, meter, rss0)
    connection.close()
    return numbers


# ---------------------------------------------------------------------------------------------
# aio-pika
# ---------------------------------------------------------------------------------------------


def connections_aio_pika(broker: Broker, n: int, quick: bool, prefix: str) -> Numbers:
    """`asyncio.gather` of N `connect`s; a confirming channel each; gathered publishes."""
    import aio_pika

    async def main() -> Numbers:
        latencies: list[float] = []

        async def one() -> Any:
            t0 = time.perf_counter()
            connection = await aio_pika.connect(broker.url)
            latencies.append(time.perf_counter() - t0)
            return connection

        warm = await aio_pika.connect(broker.url)  # (one-off costs: not in the RSS)
        rss0 = idle_rss()
        connections = await asyncio.gather(*(one() for _ in range(n)))
        rss1 = idle_rss()
        channels = await asyncio.gather(*(c.channel() for c in connections))
        key = f"{prefix}.nowhere"
        await asyncio.gather(
            *(ch.default_exchange.publish(aio_pika.Message(BODY), key) for ch in channels)
        )
        share = max(1, conn_total(quick) // n)
        meter = Meter()
        meter.start()
        await asyncio.gather(
            *(
                ch.default_exchange.publish(aio_pika.Message(BODY), key)
                for ch in channels
                for _ in range(share)
            )
        )
        meter.stop()
        await asyncio.gather(*(c.close() for c in [*connections, warm]))
        return _connection_numbers(latencies, rss0, rss1, n, meter, share * n)

    return _run(main())


def inflight_aio_pika(broker: Broker, k: int, quick: bool, prefix: str) -> Numbers:
    """K publish tasks created at once (a list of tasks), then gathered."""
    import aio_pika

    async def main() -> Numbers:
        connection = await aio_pika.connect(broker.url)
        channel = await connection.channel()
        exchange, key = channel.default_exchange, f"{prefix}.nowhere"
        await exchange.publish(aio_pika.Message(BODY), key)
        rss0 = idle_rss()
        meter = Meter()
        meter.start()
        tasks = [
            asyncio.ensure_future(exchange.publish(aio_pika.Message(BODY), key)) for _ in range(k)
        ]
        rss1 = _rss()
        results = await asyncio.gather(*tasks)
        meter.stop()
        peak = _peak_rss()
        if len(results) != k:
            raise WrongResult(f"{len(results)} of {k} confirmed")
        await connection.close()
        return _inflight_numbers(k, rss0, rss1, peak, meter)

    return _run(main())


def consumers_aio_pika(broker: Broker, c: int, quick: bool, prefix: str) -> Numbers:
    """One channel, prefetch 1000 per consumer, C `queue.consume` with a callback that acks."""
    import aio_pika

    queues = queue_names("consumers", c, prefix)
    total = consumer_total(quick)

    async def main() -> Numbers:
        connection = await aio_pika.connect(broker.url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        done = asyncio.Event()
        left = [total]

        async def on_message(message: Any) -> None:
            await message.ack()
            left[0] -= 1
            if not left[0]:
                done.set()

        handles = [await channel.get_queue(q, ensure=False) for q in queues]
        await asyncio.gather(*(q.consume(on_message) for q in handles))
        meter = Meter(thread=True)
        publisher = Publisher(broker, queues, total)
        meter.start()
        publisher.start()
        await asyncio.wait_for(done.wait(), 300)
        meter.stop()
        publisher.finish()
        await connection.close()
        return meter.per_message(total)

    return _run(main())


def bodies_aio_pika(broker: Broker, size: int, quick: bool, prefix: str) -> Numbers:
    """Gathered publishes on a confirming channel, then `queue.consume` that acks."""
    import aio_pika

    queue_name = queue_names("bodies", size, prefix)[0]
    count, body = body_count(size, quick), b"x" * size

    async def main() -> Numbers:
        connection = await aio_pika.connect(broker.url)
        channel = await connection.channel()
        sizes: list[int] = []
        done = asyncio.Event()
        meter = Meter()
        meter.start()
        exchange = channel.default_exchange
        await asyncio.gather(
            *(exchange.publish(aio_pika.Message(body), queue_name) for _ in range(count))
        )
        rss0 = idle_rss()
        await channel.set_qos(prefetch_count=body_prefetch(size))

        async def on_message(message: Any) -> None:
            sizes.append(len(message.body))
            await message.ack()
            if len(sizes) == count:
                done.set()

        queue = await channel.get_queue(queue_name, ensure=False)
        await queue.consume(on_message)
        await asyncio.wait_for(done.wait(), 300)
        meter.stop()
        numbers = _body_numbers(size, count, sizes, meter, rss0)
        await connection.close()
        return numbers

    return _run(main())


def bodies_raw_runner(broker: Broker, size: int, quick: bool, prefix: str) -> Numbers:
    """The raw-socket ceiling of the `bodies` dimension."""
    return bodies_raw(broker, size, quick, queue_names("bodies", size, prefix)[0])


Runner = Callable[[Broker, int, bool, str], Numbers]
RUNNERS: dict[tuple[str, str], Runner] = {
    ("connections", "puka"): connections_puka,
    ("connections", "puka-asyncio"): connections_puka_asyncio,
    ("connections", "pika"): connections_pika,
    ("connections", "aio-pika"): connections_aio_pika,
    ("inflight", "puka"): inflight_puka,
    ("inflight", "puka-asyncio"): inflight_puka_asyncio,
    ("inflight", "pika"): inflight_pika,
    ("inflight", "aio-pika"): inflight_aio_pika,
    ("consumers", "puka"): consumers_puka,
    ("consumers", "puka-asyncio"): consumers_puka_asyncio,
    ("consumers", "pika"): consumers_pika,
    ("consumers", "aio-pika"): consumers_aio_pika,
    ("consumers", "raw"): consumers_raw,
    ("bodies", "puka"): bodies_puka,
    ("bodies", "puka-asyncio"): bodies_puka_asyncio,
    ("bodies", "pika"): bodies_pika,
    ("bodies", "aio-pika"): bodies_aio_pika,
    ("bodies", "raw"): bodies_raw_runner,
}


def main(argv: list[str]) -> int:
    dimension, client, value, prefix, url, quick, out = argv
    result: Numbers = {"ok": False}
    try:
        soft, _hard = raise_fd_limit()
        if os.environ.get("BENCH_SCALE_IO"):
            SOCKETS.install()
        numbers = RUNNERS[dimension, client](Broker.from_url(url), int(value), quick == "1", prefix)
        result = {"ok": True, "fd_limit": soft, **numbers}
    except Exception as exc:
        traceback.print_exc()
        result["error"] = failure_text(exc)
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
