"""Issue 7 rows F1 and F2: a publisher and a consumer that survive their connection being killed.

Both run on the shared broker through a :class:`FaultProxy`, with automatic recovery on; the
kills touch only this test's own connection (found by its unique ``connection_name``) and the
proxy's links. Each row runs with the blocking ``puka.Client`` and with ``puka_asyncio``.

* **F1** -- 10,000 persistent messages with confirms (window 256) to a durable queue of a unique
  name (deleted after). A killer thread ends the connection five times: twice with
  ``rabbitmqctl close_connection`` (320 CONNECTION_FORCED), three times with a proxy RST. The
  application republishes every publish whose promise failed. Pass: 0 lost, duplicates
  <= 5 x 256, every promise settled (acked, or failed with ``ConnectionLost``), none pending.
* **F2** -- 5,000 messages consumed with manual acks and prefetch 50 through the proxy, which
  resets the connection three times mid-stream. The application acks each message a few
  deliveries late, so acks of pre-kill deliveries happen after the recovery. Pass: every id
  processed at least once, every repeated delivery carries ``redelivered=True``, stale acks are
  dropped locally (counted, no 406), the consume resumes <= 2 s after each kill, and the queue
  ends empty (the post-recovery acks reached the broker).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import RabbitmqCtl, UniqueName
from tests.faults.clients import close, connect, delete_queue
from tests.faults.fault_proxy import FaultProxy, record_figures

DRIVERS = ["blocking", "asyncio"]
#: Fast reconnection: the kills are ours, the broker is up.
RECOVERY = puka.Recovery(initial_delay=0.05, max_delay=0.5, jitter=0.1)

F1_TOTAL = 10_000
F1_WINDOW = 256
#: A kill happens once this many distinct ids have been handed to publish (first two:
#: rabbitmqctl close_connection, last three: proxy RST).
F1_GATES = (1_500, 3_500, 5_500, 7_000, 8_500)
F1_KINDS = ("close_connection", "close_connection", "rst", "rst", "rst")
#: While a kill is due but has not happened yet, publish at most one message per this many
#: seconds (rabbitmqctl takes a second or two: the kill must land mid-stream, not after it).
F1_TRICKLE = 0.01

F2_TOTAL = 5_000
F2_PREFETCH = 50
F2_KILLS_AT = (1_000, 2_500, 4_000)  # deliveries seen when the proxy resets the link
F2_ACK_LAG = 10  # the application acks a message this many deliveries after it arrived


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _drain_ids(amqp_url: str, queue: str) -> collections.Counter[int]:
    """Every message of ``queue`` (taken with no_ack), counted by id."""
    admin = connect(amqp_url)
    try:
        declared = admin.wait(admin.queue_declare(queue, passive=True), timeout=10)
        assert declared is not None
        expected = int(declared["message_count"])
        seen: collections.Counter[int] = collections.Counter()
        consume = admin.basic_consume(queue, no_ack=True, prefetch_count=2000)
        deadline = time.monotonic() + 30
        while sum(seen.values()) < expected:
            message = admin.wait(consume, timeout=max(0.0, deadline - time.monotonic()))
            assert message is not None, f"drained {sum(seen.values())} of {expected}"
            seen[int(message["body"])] += 1
        return seen
    finally:
        close(admin)


def _connection_pid(rabbitmqctl: RabbitmqCtl, marker: str, exclude: set[str]) -> str:
    """The broker pid of the (one live) connection named ``marker``, not one of ``exclude``."""
    deadline = time.monotonic() + 20
    while True:
        out = rabbitmqctl("-q", "list_connections", "pid", "client_properties")
        for line in out.splitlines():
            pid = line.split("\t", 1)[0].strip()
            if f'"{marker}"' in line and pid not in exclude:
                return pid
        if time.monotonic() > deadline:
            raise AssertionError(f"no broker connection named {marker!r} besides {exclude}")
        time.sleep(0.1)


class Killer(threading.Thread):
    """Ends the client's connection once per gate; records when and how."""

    def __init__(
        self, proxy: FaultProxy, rabbitmqctl: RabbitmqCtl, marker: str, kinds: tuple[str, ...]
    ) -> None:
        super().__init__(name="puka-fault-killer", daemon=True)
        self.proxy = proxy
        self.rabbitmqctl = rabbitmqctl
        self.marker = marker
        self.kinds = kinds
        self.gates = [threading.Event() for _ in kinds]
        self.killed = [threading.Event() for _ in kinds]
        self.recovered = threading.Event()
        self.kill_times: list[float] = []
        self.recover_times: list[float] = []
        self.error: BaseException | None = None
        self._pids: set[str] = set()

    def on_recovered(self) -> None:
        """The client's `on_recovered` hook (called in the client's thread)."""
        self.recover_times.append(time.monotonic())
        self.recovered.set()

    def due(self, index: int) -> bool:
        """Whether kill ``index`` was asked for and has not happened yet."""
        return self.gates[index].is_set() and not self.killed[index].is_set()

    def run(self) -> None:
        try:
            for index, kind in enumerate(self.kinds):
                pid = ""
                if kind == "close_connection":  # look it up early: rabbitmqctl is slow
                    pid = _connection_pid(self.rabbitmqctl, self.marker, self._pids)
                    self._pids.add(pid)
                if not self.gates[index].wait(60):
                    raise AssertionError(f"kill {index + 1} was never due")
                self.recovered.clear()
                self.kill_times.append(time.monotonic())
                if kind == "close_connection":
                    self.rabbitmqctl("close_connection", pid, "puka fault test F1")
                else:
                    self.proxy.rst()
                self.killed[index].set()
                if not self.recovered.wait(15):
                    raise AssertionError(f"no recovery within 15 s of kill {index + 1} ({kind})")
        except BaseException as exc:
            self.error = exc
            for event in self.killed:
                event.set()


class Ledger:
    """The application's side of F1: what to publish, what is in flight, what happened."""

    def __init__(self, killer: Killer) -> None:
        self.killer = killer
        self.todo: collections.deque[int] = collections.deque(range(F1_TOTAL))
        self.fresh = 0  # distinct ids handed to publish so far
        self.in_flight: dict[int, int] = {}  # promise number -> id
        self.issued = self.acked = self.failed = 0
        self.acked_ids: set[int] = set()
        self.unexpected: list[BaseException] = []
        self.last_trickle = 0.0
        self.up = True

    def may_publish(self) -> bool:
        if not self.up or not self.todo or len(self.in_flight) >= F1_WINDOW:
            return False
        for index, gate in enumerate(self.killer.gates):
            if not gate.is_set() and self.fresh >= F1_GATES[index]:
                gate.set()
            if self.killer.due(index):
                now = time.monotonic()
                if now - self.last_trickle < F1_TRICKLE:
                    return False
                self.last_trickle = now
        return True

    def take(self) -> int:
        ident = self.todo.popleft()
        if ident >= self.fresh:
            self.fresh = ident + 1
        self.issued += 1
        return ident

    def settle(self, number: int, error: BaseException | None) -> None:
        ident = self.in_flight.pop(number)
        if error is None:
            self.acked += 1
            self.acked_ids.add(ident)
            return
        self.failed += 1
        if not isinstance(error, puka.ConnectionLost):
            self.unexpected.append(error)
        self.todo.appendleft(ident)  # republish it first

    @property
    def done(self) -> bool:
        return len(self.acked_ids) == F1_TOTAL and not self.in_flight


def _f1_blocking(url: str, queue: str, marker: str, ledger: Ledger) -> dict[str, Any]:
    client = puka.Client(url, reconnect=RECOVERY, connection_name=marker, heartbeat=5)

    def lost(_error: BaseException) -> None:
        ledger.up = False

    def recovered() -> None:
        ledger.up = True
        ledger.killer.on_recovered()

    client.on_connection_lost = lost
    client.on_recovered = recovered
    assert client.wait(client.connect(), timeout=10) is not None
    client.wait(client.queue_declare(queue, durable=True), timeout=10)
    ledger.killer.start()

    def settled(number: int, result: puka.Result) -> None:
        ledger.settle(number, result.exception if result.is_error else None)
        client.loop_break()

    deadline = time.monotonic() + 90
    try:
        while not ledger.done:
            assert time.monotonic() < deadline, "F1 (blocking) did not finish in 90 s"
            while ledger.may_publish():
                ident = ledger.take()
                number = client.basic_publish(
                    "", queue, headers={"delivery_mode": 2}, body=b"%d" % ident, callback=settled
                )
                ledger.in_flight[number] = ident
            client.loop(timeout=0.01 if ledger.up else 0.05)
        live = [p for p in client.engine.promises.live.values() if not p.done and not p.multi]
        return {"pending_promises": len(live), "recoveries": client.engine.recoveries}
    finally:
        close(client)


async def _f1_asyncio(url: str, queue: str, marker: str, ledger: Ledger) -> dict[str, Any]:
    client = await puka_asyncio.connect(
        url, reconnect=RECOVERY, connection_name=marker, heartbeat=5
    )
    wake = asyncio.Event()

    def lost(_error: BaseException) -> None:
        ledger.up = False

    def recovered() -> None:
        ledger.up = True
        ledger.killer.on_recovered()
        wake.set()

    client.on_connection_lost = lost
    client.on_recovered = recovered
    await client.queue_declare(queue, durable=True)
    ledger.killer.start()
    futures: list[asyncio.Future[Any]] = []

    def make_done(number: int) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            ledger.settle(number, None if future.cancelled() else future.exception())
            wake.set()

        return done

    deadline = time.monotonic() + 90
    try:
        while not ledger.done:
            assert time.monotonic() < deadline, "F1 (asyncio) did not finish in 90 s"
            while ledger.may_publish():
                ident = ledger.take()
                future = client.basic_publish(
                    "", queue, headers={"delivery_mode": 2}, body=b"%d" % ident
                )
                assert isinstance(future, asyncio.Future)
                number = int(future)
                ledger.in_flight[number] = ident
                future.add_done_callback(make_done(number))
                futures.append(future)
                if len(futures) > 4 * F1_WINDOW:
                    futures = [f for f in futures if not f.done()]
            wake.clear()
            with _suppress_timeout():
                await asyncio.wait_for(wake.wait(), 0.01 if ledger.up else 0.05)
        futures = [f for f in futures if not f.done()]
        live = [p for p in client.engine.promises.live.values() if not p.done and not p.multi]
        return {
            "pending_promises": len(live) + len(futures),
            "recoveries": client.engine.recoveries,
        }
    finally:
        if not client.engine.closed:
            await asyncio.wait_for(client.close(), 5)


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, (asyncio.TimeoutError, TimeoutError))


@pytest.mark.parametrize("driver", DRIVERS)
def test_f1_publisher_survives_kills(
    driver: str,
    amqp_url: str,
    fault_proxy: FaultProxy,
    rabbitmqctl: RabbitmqCtl,
    unique_name: UniqueName,
) -> None:
    queue = unique_name("f1")
    marker = unique_name("f1-conn")
    killer = Killer(fault_proxy, rabbitmqctl, marker, F1_KINDS)
    ledger = Ledger(killer)
    url = fault_proxy.url(amqp_url)
    began = time.monotonic()
    try:
        if driver == "blocking":
            outcome = _f1_blocking(url, queue, marker, ledger)
        else:
            outcome = asyncio.run(asyncio.wait_for(_f1_asyncio(url, queue, marker, ledger), 100))
        elapsed = time.monotonic() - began
        killer.join(20)
        seen = _drain_ids(amqp_url, queue)
    finally:
        delete_queue(amqp_url, queue)
    lost = F1_TOTAL - len(set(seen) & set(range(F1_TOTAL)))
    duplicates = sum(seen.values()) - len(seen)
    recovery_times = [r - k for k, r in zip(killer.kill_times, killer.recover_times, strict=False)]
    record_figures(
        "F1",
        driver,
        messages=F1_TOTAL,
        lost=lost,
        duplicates=duplicates,
        kills=len(killer.kill_times),
        publishes_issued=ledger.issued,
        acked=ledger.acked,
        failed_connection_lost=ledger.failed,
        pending_promises=outcome["pending_promises"],
        recoveries=outcome["recoveries"],
        max_recovery_s=max(recovery_times, default=0.0),
        seconds=elapsed,
    )
    assert killer.error is None, f"the killer failed: {killer.error!r}"
    assert len(killer.kill_times) == 5 and outcome["recoveries"] == 5
    assert not ledger.unexpected, f"publishes failed with {ledger.unexpected[:3]!r}"
    assert ledger.failed > 0, "no publish was in flight at any kill: the test proved nothing"
    assert ledger.issued == ledger.acked + ledger.failed, "a promise was never settled"
    assert outcome["pending_promises"] == 0
    assert lost == 0, f"{lost} messages lost"
    assert set(seen) <= set(range(F1_TOTAL))
    assert duplicates <= 5 * F1_WINDOW
    assert elapsed < 30


# ---------------------------------------------------------------------------------------------
# F2


class Consumption:
    """The application's side of F2."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.deliveries = 0
        self.seen: collections.Counter[int] = collections.Counter()
        self.bad_redelivery: list[int] = []  # seen before, yet redelivered=False
        self.redelivered = 0
        self.held: collections.deque[puka.Result] = collections.deque()
        self.kill_times: list[float] = []
        self.resume_times: list[float] = []
        self.errors: list[BaseException] = []
        #: the highest delivery tag of the connection that died; None once resumed
        self.boundary: int | None = None
        self.engine: puka.Engine | None = None

    def on_lost(self, _error: BaseException) -> None:
        """The client's `on_connection_lost` hook: later tags are the new connection's."""
        assert self.engine is not None
        self.boundary = max((op.last_tag for op in self.engine.consumes), default=0)

    def on_message(self, message: puka.Result) -> puka.Result | None:
        """Count a delivery; kill when due; return a message now due for its ack."""
        ident = int(message["body"])
        if self.seen[ident] and not message["redelivered"]:
            self.bad_redelivery.append(ident)
        if message["redelivered"]:
            self.redelivered += 1
        self.seen[ident] += 1
        self.deliveries += 1
        if self.boundary is not None and message["delivery_tag"] > self.boundary:
            # the first message of the new connection (older ones were queued before the kill)
            self.resume_times.append(time.monotonic() - self.kill_times[-1])
            self.boundary = None
        self.held.append(message)
        kills = len(self.kill_times)
        if kills < len(F2_KILLS_AT) and self.deliveries >= F2_KILLS_AT[kills]:
            self.kill_times.append(time.monotonic())
            self.proxy.rst()
        return self.held.popleft() if len(self.held) > F2_ACK_LAG else None

    @property
    def complete(self) -> bool:
        return len(self.seen) == F2_TOTAL


def _f2_fill(amqp_url: str, queue: str) -> None:
    admin = connect(amqp_url)
    try:
        admin.wait(admin.queue_declare(queue), timeout=10)
        promises = [admin.basic_publish("", queue, body=b"%d" % ident) for ident in range(F2_TOTAL)]
        admin.wait_for_all(promises)
    finally:
        close(admin)


def _f2_blocking(url: str, queue: str, app: Consumption) -> dict[str, Any]:
    client = puka.Client(url, reconnect=RECOVERY, heartbeat=5)
    app.engine = client.engine
    client.on_connection_lost = app.on_lost
    assert client.wait(client.connect(), timeout=10) is not None
    consume = client.basic_consume(queue, prefetch_count=F2_PREFETCH)
    deadline = time.monotonic() + 60
    try:
        while not app.complete:
            assert time.monotonic() < deadline, "F2 (blocking) did not finish in 60 s"
            try:
                message = client.wait(consume, timeout=0.5)
            except puka.ConnectionLost as exc:  # a consume goes on after recovery
                app.errors.append(exc)
                continue
            if message is None:
                continue
            due = app.on_message(message)
            if due is not None:
                client.basic_ack(due)
        while app.held:
            client.basic_ack(app.held.popleft())
        client.wait(client.basic_cancel(consume), timeout=5)
        return {"stale_acks": client.engine.stale_acks, "recoveries": client.engine.recoveries}
    finally:
        close(client)


async def _f2_asyncio(url: str, queue: str, app: Consumption) -> dict[str, Any]:
    client = await puka_asyncio.connect(url, reconnect=RECOVERY, heartbeat=5)
    app.engine = client.engine
    client.on_connection_lost = app.on_lost
    handle = client.basic_consume(queue, prefetch_count=F2_PREFETCH)
    assert isinstance(handle, puka_asyncio.ConsumeHandle)
    deadline = time.monotonic() + 60
    try:
        while not app.complete:
            assert time.monotonic() < deadline, "F2 (asyncio) did not finish in 60 s"
            try:
                message = await asyncio.wait_for(handle, 0.5)
            except (asyncio.TimeoutError, TimeoutError):
                continue
            except puka.ConnectionLost as exc:
                app.errors.append(exc)
                continue
            due = app.on_message(message)
            if due is not None:
                client.basic_ack(due)
        while app.held:
            client.basic_ack(app.held.popleft())
        await asyncio.wait_for(client.basic_cancel(handle), 5)
        return {"stale_acks": client.engine.stale_acks, "recoveries": client.engine.recoveries}
    finally:
        await asyncio.wait_for(client.close(), 5)


@pytest.mark.parametrize("driver", DRIVERS)
def test_f2_consumer_survives_kills(
    driver: str, amqp_url: str, fault_proxy: FaultProxy, unique_name: UniqueName
) -> None:
    queue = unique_name("f2")
    app = Consumption(fault_proxy)
    url = fault_proxy.url(amqp_url)
    try:
        _f2_fill(amqp_url, queue)
        began = time.monotonic()
        if driver == "blocking":
            outcome = _f2_blocking(url, queue, app)
        else:
            outcome = asyncio.run(asyncio.wait_for(_f2_asyncio(url, queue, app), 70))
        elapsed = time.monotonic() - began
        admin = connect(amqp_url)
        try:
            left = admin.wait(admin.queue_declare(queue, passive=True), timeout=10)
            assert left is not None
        finally:
            close(admin)
    finally:
        delete_queue(amqp_url, queue)
    record_figures(
        "F2",
        driver,
        messages=F2_TOTAL,
        processed_distinct=len(app.seen),
        deliveries=app.deliveries,
        redelivered=app.redelivered,
        kills=len(app.kill_times),
        resume_s=[round(t, 3) for t in app.resume_times],
        stale_acks_dropped=outcome["stale_acks"],
        left_in_queue=left["message_count"],
        seconds=elapsed,
    )
    assert len(app.kill_times) == 3 and outcome["recoveries"] == 3
    assert len(app.resume_times) == 3, "the consume did not resume after every kill"
    assert not app.errors, f"the consume failed: {app.errors[:3]!r}"
    assert app.complete and set(app.seen) == set(range(F2_TOTAL))
    assert not app.bad_redelivery, f"repeated without redelivered: {app.bad_redelivery[:10]}"
    assert app.redelivered > 0
    assert outcome["stale_acks"] > 0, "no ack was stale: the test did not exercise them"
    assert max(app.resume_times) <= 2.0
    assert left["message_count"] == 0, "acks after the recoveries did not reach the broker"
