"""A hostile broker for the ``test_hostile*.py`` tests: the §4 table of issue 7 as data.

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
import struct
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
from puka.errors import ConnectFailed, ConnectionLost, ConnectTimeout, HeartbeatTimeout
from puka.results import Result
from puka_spec import (
    BasicProperties,
    BodyFrame,
    FrameReader,
    MethodFrame,
    encode_header_frame,
    encode_method_frame,
    methods,
)
from puka_spec.constants import PROTOCOL_HEADER
from puka_spec.exceptions import (
    AMQPNotImplemented,
    ChannelError,
    FrameError,
    UnexpectedFrame,
    UnsupportedProtocol,
)

from tests.loopback_server import LoopbackServer

REPORT_FILE = Path(__file__).parent / ".report" / "hostile.jsonl"
MiB = 1024 * 1024

# --- building hostile bytes ------------------------------------------------------------------


def frame(kind: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    """A frame with whatever payload and end octet."""
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + end


def method(channel: int, m: methods.Method) -> bytes:
    """A well-formed method frame."""
    return encode_method_frame(channel, m)


def deliver(channel: int, tag: int = 1) -> bytes:
    """basic.deliver for the client's consumer."""
    return method(channel, methods.BasicDeliver("ctag", tag, False, "", "q"))


def header(channel: int, size: int, props: BasicProperties | None = None) -> bytes:
    """A well-formed content header."""
    return encode_header_frame(channel, 60, size, props or BasicProperties())


def raw_header(channel: int, size: int, flags: int, props: bytes) -> bytes:
    """A content header with hand-made property bytes."""
    return frame(2, channel, struct.pack(">HHQH", 60, 0, size, flags) + props)


def body(channel: int, data: bytes) -> bytes:
    """A content body frame."""
    return frame(3, channel, data)


def table(entries: bytes) -> bytes:
    """A field table around hand-made entries."""
    return struct.pack(">I", len(entries)) + entries


def nested_tables(depth: int) -> bytes:
    """`depth` tables, each holding the next under key "n"."""
    inner = table(b"")
    for _ in range(depth - 1):
        inner = table(b"\x01nF" + inner)
    return inner


HEADERS = 0x2000  # property flag of `headers`
TIMESTAMP = 0x0040  # property flag of `timestamp`
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
            self._out.append(method(channel, methods.QueueDeclareOk(queue, 0, 0)))

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
                self._out.append(method(0, START))
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
            self._out.append(method(0, methods.ConnectionCloseOk()))
            return
        if self.attacked_at is not None and not self.benign:
            return  # the attack is made: answer nothing more
        if isinstance(m, methods.ConnectionStartOk):
            if self.case.stage == "tune":
                self._attack()
            else:
                self._out.append(method(0, methods.ConnectionTune(*self.case.tune)))
        elif isinstance(m, methods.ConnectionTuneOk):
            self.tune_ok = m
        elif isinstance(m, methods.ConnectionOpen):
            self._out.append(method(0, methods.ConnectionOpenOk()))
        elif isinstance(m, methods.ChannelOpen):
            self._out.append(method(channel, methods.ChannelOpenOk()))
        elif isinstance(m, methods.ConfirmSelect):
            self.channels.publish = channel
            self._out.append(method(channel, methods.ConfirmSelectOk()))
        elif isinstance(m, methods.BasicQos):
            self._out.append(method(channel, methods.BasicQosOk()))
        elif isinstance(m, methods.BasicConsume):
            self.channels.consume = channel
            self._out.append(method(channel, methods.BasicConsumeOk(m.consumer_tag or "ctag")))
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

# --- the table -------------------------------------------------------------------------------

_BIG_START = method(
    0,
    methods.ConnectionStart(0, 9, {"filler": "x" * 5000}, b"PLAIN", b"en_US"),
)
_TRUNCATED = deliver(1)[:5]


def _ts_and_decimal(ch: Channels) -> bytes:
    entries = b"\x01tT" + b"\xff" * 8 + b"\x01dD\xff\x80\x00\x00\x00"
    props = table(entries) + b"\xff" * 8
    return (
        deliver(ch.consume)
        + raw_header(ch.consume, 2, HEADERS | TIMESTAMP, props)
        + body(ch.consume, b"ok")
    )


def _check_timestamp(outcome: Outcome) -> None:
    message = outcome.results["consume"]
    assert isinstance(message, Result) and not message.is_error, message
    assert message["body"] == b"ok"
    assert message["headers"]["t"] == 2**64 - 1  # beyond datetime: kept as the raw int
    assert message["headers"]["timestamp"] == 2**64 - 1
    assert str(message["headers"]["d"]) == "-2.147483648E-246"


def _acks(ch: Channels) -> bytes:
    p = ch.publish
    return b"".join(
        method(p, m)
        for m in (
            methods.BasicAck(9, False),  # never published
            methods.BasicAck(2, True),  # 1 and 2
            methods.BasicNack(3, False, False),
            methods.BasicAck(3, False),  # after its nack
            methods.BasicAck(3, True),  # a range already settled
            methods.BasicAck(100, True),  # beyond anything published
        )
    )


def _check_acks(outcome: Outcome) -> None:
    from puka import PublishNacked

    results = outcome.results
    assert not results["publish1"].is_error and not results["publish2"].is_error, results
    nacked = results["publish3"]
    error = nacked if isinstance(nacked, BaseException) else nacked.exception
    assert isinstance(error, PublishNacked), results
    assert outcome.unknown_confirms == 4
    assert outcome.engine_error is None


def _check_ack_beyond(outcome: Outcome) -> None:
    for i in (1, 2, 3):
        result = outcome.results[f"publish{i}"]
        assert isinstance(result, Result) and not result.is_error, outcome.results
    assert outcome.unknown_confirms == 1
    assert outcome.engine_error is None


def _check_tune(channel_max: int, frame_max: int, heartbeat: int) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        tune_ok = outcome.tune_ok
        assert tune_ok is not None
        assert (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat) == (
            channel_max,
            frame_max,
            heartbeat,
        )
        assert outcome.engine_error is None
        assert isinstance(outcome.results["declare"], Result)

    return check


def _check_small_limit(outcome: Outcome) -> None:
    message = outcome.results["consume"]
    assert isinstance(message, Result) and message["body"] == b"y" * 1000, message


CASES: list[Case] = [
    # frame size > negotiated frame_max (> 4096 before tune): 501 at the 7-byte header
    Case(
        "frame-2^32-1",
        "open",
        lambda ch: frame(3, ch.consume, b"")[:3] + b"\xff\xff\xff\xff" + b"x" * 64,
        501,
        FrameError,
    ),
    Case(
        "frame-2^31-1",
        "open",
        lambda ch: struct.pack(">BHI", 1, ch.declare, 2**31 - 1) + b"x" * 64,
        501,
        FrameError,
    ),
    Case("frame-over-4096-before-tune", "start", _BIG_START, 501, FrameError),
    # the 7-byte header alone, nothing after it (issue 19 item 5): refused at once, not after
    # the handshake timeout; `silence` keeps the socket open, so only the header can fail it
    Case(
        "header-alone-2GiB-before-tune",
        "start",
        struct.pack(">BHI", 1, 0, 2**31),
        501,
        FrameError,
        then="silence",
    ),
    Case(
        "header-alone-4097-before-tune",
        "start",
        struct.pack(">BHI", 1, 0, 4097 - 7),
        501,
        FrameError,
        then="silence",
    ),
    Case(
        "header-alone-2GiB-when-open",
        "open",
        lambda ch: struct.pack(">BHI", 3, ch.consume, 2**31),
        501,
        FrameError,
        then="silence",
    ),
    Case(
        "frame-2^32-1-before-tune",
        "start",
        struct.pack(">BHI", 1, 0, 2**32 - 1) + b"\x00\x0a",
        501,
        FrameError,
    ),
    # frame size smaller than the type's fixed part (rabbitmq-c GHSA-9mmv)
    Case(
        "method-frame-of-1-byte", "open", lambda ch: frame(1, ch.declare, b"\x00"), 501, FrameError
    ),
    Case(
        "header-frame-of-2-bytes",
        "open",
        lambda ch: deliver(ch.consume) + frame(2, ch.consume, b"\x00\x3c"),
        501,
        FrameError,
    ),
    Case(
        "method-frame-without-arguments",
        "open",
        lambda ch: frame(1, ch.consume, b"\x00\x3c\x00\x3c"),
        501,
        FrameError,
    ),
    # frame-end octet
    Case(
        "frame-end-not-0xce",
        "open",
        lambda ch: frame(1, ch.declare, methods.QueueDeclareOk("q", 0, 0).encode(), b"\x00"),
        501,
        FrameError,
    ),
    # unknown frame type (never ignored: GHSA-5fp7)
    Case("frame-type-9", "open", frame(9, 0, b"abc"), 501, FrameError),
    Case("frame-type-0", "open", frame(0, 0, b""), 501, FrameError),
    # heartbeat on a channel other than 0
    Case(
        "heartbeat-on-open-channel",
        "open",
        lambda ch: frame(8, ch.declare, b""),
        505,
        UnexpectedFrame,
    ),
    Case("heartbeat-on-unopened-channel", "open", frame(8, 99, b""), 505, UnexpectedFrame),
    # content out of order
    Case("header-without-method", "open", lambda ch: header(ch.consume, 1), 505, UnexpectedFrame),
    Case("body-without-method", "open", lambda ch: body(ch.consume, b"x"), 505, UnexpectedFrame),
    Case(
        "header-class-50-after-deliver",
        "open",
        lambda ch: deliver(ch.consume) + frame(2, ch.consume, struct.pack(">HHQH", 50, 0, 1, 0)),
        505,
        UnexpectedFrame,
    ),
    Case(
        "method-while-body-pending",
        "open",
        lambda ch: (
            deliver(ch.consume)
            + header(ch.consume, 10)
            + body(ch.consume, b"ab")
            + deliver(ch.consume, 2)
        ),
        505,
        UnexpectedFrame,
    ),
    # body beyond body_size; body_size above the maximum message size
    Case(
        "body-beyond-body-size",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 1) + body(ch.consume, b"ab"),
        501,
        FrameError,
    ),
    Case(
        "body-size-2^62",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 2**62),
        501,
        FrameError,
    ),
    Case(
        "body-size-64MiB+1",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 64 * MiB + 1),
        501,
        FrameError,
    ),
    Case(
        "body-size-over-url-limit",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 1001),
        501,
        FrameError,
        query="max_message_size=1000",
    ),
    Case(
        "body-size-at-url-limit",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 1000) + body(ch.consume, b"y" * 1000),
        query="max_message_size=1000",
        publishes=0,
        check=_check_small_limit,
        wait_for=("declare", "consume"),
    ),
    # channels above channel_max, or never opened
    Case(
        "channel-above-channel-max",
        "open",
        method(11, methods.ChannelOpenOk()),
        504,
        ChannelError,
        tune=(10, 131072, 0),
    ),
    Case("channel-65535", "open", deliver(65535), 504, ChannelError),
    Case("channel-not-opened", "open", lambda ch: body(9, b"x" * 100), 504, ChannelError),
    # unknown class or method
    Case(
        "unknown-method-60.99",
        "open",
        lambda ch: frame(1, ch.declare, b"\x00\x3c\x00\x63"),
        540,
        AMQPNotImplemented,
    ),
    Case("unknown-class-4660", "open", frame(1, 0, b"\x12\x34\x00\x01"), 540, AMQPNotImplemented),
    # malformed UTF-8 in short strings: names and table keys
    Case(
        "shortstr-bad-utf8",
        "open",
        lambda ch: frame(
            1,
            ch.consume,
            struct.pack(">HH", 60, 60) + b"\x02\xff\xfe" + struct.pack(">Q", 1) + b"\x00\x00\x01q",
        ),
        501,
        FrameError,
    ),
    Case(
        "table-key-bad-utf8",
        "open",
        lambda ch: (
            deliver(ch.consume) + raw_header(ch.consume, 0, HEADERS, table(b"\x02\xff\xfeV"))
        ),
        501,
        FrameError,
    ),
    # lengths beyond what is left, nesting
    Case(
        "table-length-past-frame",
        "open",
        lambda ch: (
            deliver(ch.consume) + raw_header(ch.consume, 0, HEADERS, b"\xff\xff\xff\xf0\x01kV")
        ),
        501,
        FrameError,
    ),
    Case(
        "array-length-past-frame",
        "open",
        lambda ch: (
            deliver(ch.consume)
            + raw_header(ch.consume, 0, HEADERS, table(b"\x01kA\xff\xff\xff\xf0"))
        ),
        501,
        FrameError,
    ),
    Case(
        "longstr-length-past-frame",
        "open",
        lambda ch: (
            deliver(ch.consume)
            + raw_header(ch.consume, 0, HEADERS, table(b"\x01kS\xff\xff\xff\xffabc"))
        ),
        501,
        FrameError,
    ),
    Case(
        "server-properties-length-past-frame",
        "start",
        frame(1, 0, b"\x00\x0a\x00\x0a\x00\x09\xff\xff\xff\xff"),
        501,
        FrameError,
    ),
    Case(
        "tables-nested-65-deep",
        "open",
        lambda ch: deliver(ch.consume) + raw_header(ch.consume, 0, HEADERS, nested_tables(65)),
        501,
        FrameError,
    ),
    # out-of-range timestamp and decimal: kept raw, never OSError/OverflowError
    Case(
        "timestamp-and-decimal-out-of-range",
        "open",
        _ts_and_decimal,
        publishes=0,
        check=_check_timestamp,
        wait_for=("declare", "consume"),
    ),
    # tune
    Case(
        "tune-frame-max-4095",
        "tune",
        method(0, methods.ConnectionTune(2047, 4095, 0)),
        505,
        UnexpectedFrame,
    ),
    Case(
        "tune-frame-max-1",
        "tune",
        method(0, methods.ConnectionTune(2047, 1, 0)),
        505,
        UnexpectedFrame,
    ),
    Case(
        "tune-channel-max-0-heartbeat-0",
        "open",
        b"",
        tune=(0, 131072, 0),
        publishes=0,
        check=_check_tune(65535, 131072, 0),
    ),
    Case(
        "tune-frame-max-0",
        "open",
        b"",
        tune=(2047, 0, 0),
        publishes=0,
        check=_check_tune(2047, 131072, 0),
    ),
    Case(
        "tune-frame-max-2^32-1",
        "open",
        b"",
        tune=(2047, 2**32 - 1, 0),
        publishes=0,
        check=_check_tune(2047, 64 * MiB + 8, 0),
    ),
    # another protocol version
    Case(
        "protocol-header-0-9-0",
        "header",
        b"AMQP\x00\x00\x09\x00",
        501,
        UnsupportedProtocol,
        then="eof",
    ),
    Case(
        "protocol-header-amqp-1.0",
        "header",
        b"AMQP\x00\x01\x00\x00",
        501,
        UnsupportedProtocol,
        then="eof",
    ),
    # truncated frame, then EOF or silence
    Case("truncated-then-eof", "open", _TRUNCATED, None, ConnectionLost, then="eof"),
    Case(
        "truncated-start-then-eof", "start", method(0, START)[:20], None, ConnectFailed, then="eof"
    ),
    Case(
        "truncated-then-silence",
        "open",
        _TRUNCATED,
        None,
        HeartbeatTimeout,
        then="silence",
        tune=(2047, 131072, 1),
        max_seconds=3.0,
    ),
    Case(
        "truncated-start-then-silence",
        "start",
        method(0, START)[:20],
        None,
        ConnectTimeout,
        then="silence",
        query="connection_timeout=500",
        max_seconds=1.5,
    ),
    # confirms for tags never published, multiple ranges, ack after nack: ignored and counted
    Case(
        "acks-unpublished-ranges-after-nack",
        "open",
        _acks,
        publishes=3,
        check=_check_acks,
        wait_for=("declare", "publish1", "publish2", "publish3"),
    ),
    Case(
        "multiple-ack-beyond-last-tag",
        "open",
        lambda ch: method(ch.publish, methods.BasicAck(5, True)),
        publishes=3,
        check=_check_ack_beyond,
        wait_for=("declare", "publish1", "publish2", "publish3"),
    ),
]
"""The rows of the §4 table, each as one or more cases."""
