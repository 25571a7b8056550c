"""The hostile broker's harness for the ``test_hostile*.py`` tests; the cases are data, in
`tests.faults.hostile_cases` (the §4 table of issue 7).

Each `Case` is one row of "hostile input → expected client reaction". `ScriptedBroker` is a
sans-I/O script of a broker: it completes the handshake, answers the client's set-up (channel
opens, confirm.select, basic.consume), and once the client's operations are in flight it sends the
case's hostile bytes (at the protocol header, instead of connection.start or tune, or after
open). The same script runs three ways:

* `run_sans_io` pumps it against a `puka.Engine` in memory (time is simulated);
* `run_blocking` serves it on a loopback socket (`tests.loopback_server`, one thread) to
  `puka.Client`;
* `run_asyncio` serves it the same way to `puka_asyncio` (on asyncio's loop and on uvloop's).

Each returns an `Outcome`: what every pending promise ended with, the reply code of the
connection.close the client sent back, how long after the attack the last promise failed, the
peak of traced memory during the run, and what was left behind (threads, descriptors, tasks).
Figures go to ``tests/faults/.report/hostile.jsonl`` (gitignored) for the closing note.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import puka
import puka_asyncio
import uvloop
from puka import Engine, parse_url
from puka.results import Result
from puka_spec import (
    BodyFrame,
    FrameReader,
    MethodFrame,
    encode_method_frame,
    methods,
)
from puka_spec.constants import PROTOCOL_HEADER

from tests.loopback_server import LoopbackServer

REPORT_FILE = Path(__file__).parent / ".report" / "hostile.jsonl"
MiB = 1024 * 1024

START = methods.ConnectionStart(
    0, 9, {"capabilities": {"publisher_confirms": True}, "product": "hostile"}, b"PLAIN", b"en_US"
)


@dataclass
class Channels:
    """The channel numbers the client used for each of its operations."""

    declare: int = 0
    publish: int = 0
    consume: int = 0


Payload = bytes | Callable[[Channels], bytes]


@dataclass
class Case:
    """One hostile input and the reaction expected of the client.

    `stage` is when the bytes are sent: ``header`` (in answer to the protocol header), ``start``
    (instead of connection.start), ``tune`` (instead of connection.tune) or ``open`` (once the
    client's queue.declare, publishes and consume are in flight). `then` is what the server does
    next: ``wait`` (read what the client says until it hangs up), ``eof`` (shut its side too) or
    ``silence``. `code` is the reply code the client should close with (``None``: it cannot
    send one, the transport is gone); `error` the typed error every pending promise fails with.
    A benign case (`error` is ``None``) has a `check` of the client's view instead.
    """

    id: str
    stage: str
    payload: Payload
    code: int | None = None
    error: type[BaseException] | None = None
    then: str = "wait"
    tune: tuple[int, int, int] = (2047, 131072, 0)
    query: str = ""
    publishes: int = 1
    max_seconds: float = 1.0
    check: Callable[[Outcome], None] | None = None
    wait_for: tuple[str, ...] = ("declare",)  # what a benign case waits for before `check`

    def __repr__(self) -> str:
        return f"Case({self.id})"


# --- the script ------------------------------------------------------------------------------


class ScriptedBroker:
    """The server half of one hostile connection, sans-I/O (see the module docstring)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.channels = Channels()
        self.attacked_at: float | None = None
        self.client_close: methods.ConnectionClose | None = None
        self.tune_ok: methods.ConnectionTuneOk | None = None
        self.shut_write = False  # the script wants its side of the transport shut
        self.bodies = 0
        self._declare: tuple[int, str] | None = None  # the client's queue.declare, unanswered
        self._header = b""
        self._reader = FrameReader(1 << 27)
        self._out: list[bytes] = []
        self._started = False

    @property
    def benign(self) -> bool:
        """The case expects the connection to survive."""
        return self.case.error is None

    def data_to_send(self) -> bytes:
        """What the server writes next."""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _attack(self) -> None:
        payload = self.case.payload
        self._out.append(payload(self.channels) if callable(payload) else payload)
        self.attacked_at = time.monotonic()
        self.shut_write = self.case.then == "eof"
        if self.benign and self._declare is not None:  # the connection goes on: answer it now
            channel, queue = self._declare
            self._out.append(encode_method_frame(channel, methods.QueueDeclareOk(queue, 0, 0)))

    def receive_data(self, data: bytes) -> None:
        """Bytes the client wrote."""
        if not self._started:
            self._header += data
            if len(self._header) < 8:
                return
            data, self._header = self._header[8:], self._header[:8]
            if self._header != PROTOCOL_HEADER:
                raise AssertionError(f"the client sent {self._header!r} as its protocol header")
            self._started = True
            if self.case.stage in ("header", "start"):
                self._attack()
            else:
                self._out.append(encode_method_frame(0, START))
        self._reader.feed(data)
        while (f := self._reader.read_frame()) is not None:
            if isinstance(f, BodyFrame):
                self.bodies += 1
            elif isinstance(f, MethodFrame):
                self._on_method(f.channel, f.method)
        if (
            self.case.stage == "open"
            and self.attacked_at is None
            and self.channels.declare
            and self.channels.consume
            and self.bodies >= self.case.publishes
        ):
            self._attack()

    def _on_method(self, channel: int, m: methods.Method) -> None:
        if isinstance(m, methods.ConnectionClose):
            self.client_close = m
            self._out.append(encode_method_frame(0, methods.ConnectionCloseOk()))
            return
        if self.attacked_at is not None and not self.benign:
            return  # the attack is made: answer nothing more
        if isinstance(m, methods.ConnectionStartOk):
            if self.case.stage == "tune":
                self._attack()
            else:
                self._out.append(encode_method_frame(0, methods.ConnectionTune(*self.case.tune)))
        elif isinstance(m, methods.ConnectionTuneOk):
            self.tune_ok = m
        elif isinstance(m, methods.ConnectionOpen):
            self._out.append(encode_method_frame(0, methods.ConnectionOpenOk()))
        elif isinstance(m, methods.ChannelOpen):
            self._out.append(encode_method_frame(channel, methods.ChannelOpenOk()))
        elif isinstance(m, methods.ConfirmSelect):
            self.channels.publish = channel
            self._out.append(encode_method_frame(channel, methods.ConfirmSelectOk()))
        elif isinstance(m, methods.BasicQos):
            self._out.append(encode_method_frame(channel, methods.BasicQosOk()))
        elif isinstance(m, methods.BasicConsume):
            self.channels.consume = channel
            self._out.append(
                encode_method_frame(channel, methods.BasicConsumeOk(m.consumer_tag or "ctag"))
            )
        elif isinstance(m, methods.QueueDeclare):
            self.channels.declare = channel
            self._declare = (channel, m.queue)
        elif isinstance(m, methods.BasicPublish) and not self.channels.publish:
            self.channels.publish = channel


# --- outcomes --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened on the client's side of one case."""

    case: Case
    driver: str
    connect_error: BaseException | None = None
    engine_error: BaseException | None = None
    results: dict[str, Any] = field(default_factory=dict)  # operation → Result or exception
    close_code: int | None = None
    tune_ok: methods.ConnectionTuneOk | None = None
    seconds: float | None = None  # from the attack to the last pending promise failing
    peak_bytes: int = 0
    leftovers: list[str] = field(default_factory=list)
    unknown_confirms: int = 0

    def errors(self) -> list[BaseException]:
        """Every exception a pending promise ended with."""
        found = [] if self.connect_error is None else [self.connect_error]
        for value in self.results.values():
            if isinstance(value, BaseException):
                found.append(value)
            elif isinstance(value, Result) and value.is_error and value.exception is not None:
                found.append(value.exception)
        return found

    def record(self) -> None:
        """Append this outcome's figures to the report."""
        REPORT_FILE.parent.mkdir(exist_ok=True)
        line = {
            "case": self.case.id,
            "driver": self.driver,
            "close_code": self.close_code,
            "error": type(self.engine_error or self.connect_error).__name__,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
            "peak_kib": round(self.peak_bytes / 1024, 1),
            "leftovers": self.leftovers,
        }
        with REPORT_FILE.open("a") as f:
            f.write(json.dumps(line) + "\n")


def _last_close(data: bytes) -> int | None:
    """The reply code of the last connection.close in what a client wrote."""
    if data.startswith(b"AMQP"):
        data = data[8:]
    reader = FrameReader(1 << 27)
    reader.feed(data)
    code = None
    while (f := reader.read_frame()) is not None:
        if isinstance(f, MethodFrame) and isinstance(f.method, methods.ConnectionClose):
            code = f.method.reply_code
    return code


def _url(case: Case, port: int = 5672) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/" + (f"?{case.query}" if case.query else "")


# --- sans-I/O --------------------------------------------------------------------------------


def run_sans_io(case: Case) -> Outcome:
    """The case against an in-memory engine; the clock is simulated."""
    outcome = Outcome(case, "sans-io")
    broker = ScriptedBroker(case)
    engine = Engine(parse_url(_url(case)))
    now = 0.0
    sent = bytearray()

    def pump() -> None:
        for _ in range(100):
            out = engine.data_to_send()
            sent.extend(out)
            if out:
                broker.receive_data(out)
            back = broker.data_to_send()
            if back:
                engine.receive_data(back)
            if not out and not back:
                return
        raise AssertionError("the engine and the script never went quiet")

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        engine.handle_timer(now)
        connect = engine.connect()
        pump()
        promises: dict[str, Any] = {}
        if engine.state.value == "open":
            promises = {
                "declare": engine.rpc(methods.QueueDeclare(queue="q")),
                "consume": engine.consume([methods.BasicConsume(queue="q")], 0),
            }
            for i in range(case.publishes):
                promises[f"publish{i + 1}"] = engine.publish("", "q", False, None, b"x")
            pump()
        attacked = broker.attacked_at is not None
        if case.then == "eof" and attacked:
            engine.connection_lost(None)
        if case.then == "silence":
            while not engine.closed and now < 30:
                now += 0.25
                engine.handle_timer(now)
                pump()
            outcome.seconds = now
        else:
            outcome.seconds = 0.0
        outcome.peak_bytes = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    outcome.engine_error = engine.error
    result = engine.promises.take(connect.number)
    if result is not None and result.is_error:
        outcome.connect_error = result.exception
    for name, promise in promises.items():
        outcome.results[name] = engine.promises.peek(promise.number)
    outcome.close_code = _last_close(bytes(sent))
    outcome.tune_ok = broker.tune_ok
    if engine.publisher is not None:
        outcome.unknown_confirms = engine.publisher.unknown_confirms
    return outcome


# --- over loopback TCP -----------------------------------------------------------------------


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _finish_tcp(
    outcome: Outcome, server: LoopbackServer, broker: ScriptedBroker, failed_at: float | None
) -> None:
    server.close()
    if server.error is not None:
        raise AssertionError(f"the hostile server failed: {server.error!r}") from server.error
    outcome.close_code = _last_close(bytes(server.received))
    outcome.tune_ok = broker.tune_ok
    if broker.attacked_at is not None and failed_at is not None:
        outcome.seconds = max(0.0, failed_at - broker.attacked_at)


def run_blocking(case: Case) -> Outcome:
    """The case against `puka.Client` over loopback TCP."""
    outcome = Outcome(case, "blocking")
    threads, fds = threading.active_count(), _fds()
    broker = ScriptedBroker(case)
    server = LoopbackServer(broker)
    failed_at = None
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        client = puka.Client(_url(case, server.port))
        try:
            client.wait(client.connect(), timeout=5)
        except Exception as exc:
            outcome.connect_error = exc
            failed_at = time.monotonic()
        promises: dict[str, int] = {}
        if outcome.connect_error is None:
            promises = {
                "declare": client.queue_declare("q"),
                "consume": client.basic_consume("q"),
            }
            for i in range(case.publishes):
                promises[f"publish{i + 1}"] = client.basic_publish("", "q", body=b"x")
            limit = time.monotonic() + case.max_seconds + 4
            for name in _awaited(case, promises):
                outcome.results[name] = client.wait(
                    promises[name], timeout=max(0.0, limit - time.monotonic()), raise_errors=False
                )
            failed_at = time.monotonic()
        outcome.engine_error = client.engine.error
        if client.engine.publisher is not None:
            outcome.unknown_confirms = client.engine.publisher.unknown_confirms
        if case.error is None and not client.engine.closed:
            client.wait(client.close(), timeout=2)
        outcome.peak_bytes = tracemalloc.get_traced_memory()[1] - base
        if client.fileno() != -1:
            outcome.leftovers.append("the client's socket is still open")
    finally:
        tracemalloc.stop()
        _finish_tcp(outcome, server, broker, failed_at)
    if threading.active_count() != threads:
        outcome.leftovers.append(f"threads: {threads} → {threading.active_count()}")
    if _fds() - fds:
        outcome.leftovers.append(f"file descriptors left open: {sorted(_fds() - fds)}")
    return outcome


async def _asyncio_scenario(case: Case, port: int, outcome: Outcome) -> float | None:
    failed_at = None
    client = None
    try:
        client = await puka_asyncio.connect(_url(case, port))
    except Exception as exc:
        outcome.connect_error = exc
        return time.monotonic()
    handles: dict[str, Any] = {
        "declare": client.queue_declare("q"),
        "consume": client.basic_consume("q"),
    }
    for i in range(case.publishes):
        handles[f"publish{i + 1}"] = client.basic_publish("", "q", body=b"x")
    limit = case.max_seconds + 4
    for name in _awaited(case, handles):
        handle = handles[name]
        try:
            outcome.results[name] = await asyncio.wait_for(_next(handle), limit)
        except (asyncio.TimeoutError, TimeoutError):
            outcome.results[name] = None
        except Exception as exc:
            outcome.results[name] = exc
    failed_at = time.monotonic()
    outcome.engine_error = client.engine.error
    if client.engine.publisher is not None:
        outcome.unknown_confirms = client.engine.publisher.unknown_confirms
    if not client.engine.closed:
        await asyncio.wait_for(client.close(), 2)
    await asyncio.wait_for(client._protocol.closed, 2)
    return failed_at


def _awaited(case: Case, promises: dict[str, Any]) -> list[str]:
    """The operations to wait for: all of them, or those a benign case names."""
    return sorted(promises) if case.error is not None else list(case.wait_for)


async def _next(handle: Any) -> Any:
    return await handle


_warm: set[str] = set()


def _warm_up(loop_kind: str) -> None:
    """Let an event loop make its process-wide, once-only descriptors (libuv's thread pool)
    before descriptors are counted."""
    if loop_kind in _warm:
        return
    _warm.add(loop_kind)
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 5672))
        loop.run_until_complete(loop.shutdown_default_executor())  # its thread ends here
    finally:
        loop.close()


def run_asyncio(case: Case, loop_kind: str = "asyncio") -> Outcome:
    """The case against `puka_asyncio` over loopback TCP, on a fresh event loop."""
    outcome = Outcome(case, loop_kind)
    _warm_up(loop_kind)
    threads, fds = threading.active_count(), _fds()
    broker = ScriptedBroker(case)
    server = LoopbackServer(broker)
    failed_at = None
    tracemalloc.start()
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    try:
        base = tracemalloc.get_traced_memory()[0]

        async def main() -> float | None:
            scenario = _asyncio_scenario(case, server.port, outcome)
            result = await asyncio.wait_for(scenario, case.max_seconds + 10)
            await asyncio.sleep(0)
            current = asyncio.current_task()
            left = [t for t in asyncio.all_tasks() if t is not current]
            if left:
                outcome.leftovers.append(f"tasks left: {left}")
            return result

        failed_at = loop.run_until_complete(main())
        outcome.peak_bytes = tracemalloc.get_traced_memory()[1] - base
    finally:
        loop.close()
        tracemalloc.stop()
        _finish_tcp(outcome, server, broker, failed_at)
    if threading.active_count() != threads:
        outcome.leftovers.append(f"threads: {threads} → {threading.active_count()}")
    if _fds() - fds:
        outcome.leftovers.append(f"file descriptors left open: {sorted(_fds() - fds)}")
    return outcome


RUNNERS: dict[str, Callable[[Case], Outcome]] = {
    "sans-io": run_sans_io,
    "blocking": run_blocking,
    "asyncio": run_asyncio,
    "uvloop": lambda case: run_asyncio(case, "uvloop"),
}
