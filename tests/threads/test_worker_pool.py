"""`puka.threads.consume_in_pool`: a consume whose messages run in worker threads while the
client's thread keeps the connection alive and acks each message as its job ends."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import puka
import puka.threads
import pytest
from puka.blocking.socket_wait import READ, WAKE, WRITE, SocketWait

from tests.integration.helpers import SOON, wait_ok


def _loop_until(client: Any, done: Callable[[], bool], timeout: float = SOON) -> None:
    """Drive `client` until `done()` (checked between short loops), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        client.loop(timeout=0.05)


def _fill(client: Any, queue: str, count: int, **declare: Any) -> None:
    wait_ok(client, client.queue_declare(queue=queue, **declare))
    client.wait_for_all(
        [client.basic_publish(exchange="", routing_key=queue, body=b"%d" % n) for n in range(count)]
    )


def _ready(client: Any, queue: str) -> int:
    """Messages ready in `queue` (not the unacked ones)."""
    return int(wait_ok(client, client.queue_declare(queue=queue, passive=True))["message_count"])


@dataclass
class Wake:
    """One return of the client's thread from its wait."""

    ready: int  # READ / WRITE / WAKE bits, 0 on timeout
    timer: float | None  # the engine's next timer when it went to sleep
    returned: float


@dataclass
class CountingWait:
    """The client's `SocketWait`, recording every wake-up of the client's thread."""

    inner: SocketWait
    client: Any
    wakes: list[Wake] = field(default_factory=list)

    def wait(self, timeout: float | None, write: bool) -> int:
        timer = self.client.engine.next_timer()
        ready = self.inner.wait(timeout, write)
        self.wakes.append(Wake(ready, timer, time.monotonic()))
        return ready

    def close(self) -> None:
        self.inner.close()


def test_slow_jobs_with_one_second_heartbeats(
    make_client: Callable[..., Any], resources: Any, watchdog: Any
) -> None:
    """20 jobs of 3 s each on 4 workers, heartbeat=1: the connection stays up, every message
    is acked once, in about 15 s, and the client's thread wakes only for the socket, the
    handoff and the engine's timers (never on a polling interval)."""
    jobs, workers, seconds = 20, 4, 3.0
    client = make_client(heartbeat=1)
    queue = resources.queue("slow-jobs")
    _fill(client, queue, jobs)
    recorder = CountingWait(SocketWait(client.socket(), wake=client._handoff.fileno()), client)
    client._waiter = recorder
    acked: list[int] = []
    basic_ack = client.basic_ack

    def counting_ack(message: Any, multiple: bool = False) -> None:
        acked.append(message["delivery_tag"])
        basic_ack(message, multiple)

    client.basic_ack = counting_ack
    handled: list[Any] = []
    handled_lock = threading.Lock()
    all_done = threading.Event()

    def handler(message: Any) -> None:
        time.sleep(seconds)  # the slow job: three heartbeat intervals
        with handled_lock:
            handled.append(message)
            if len(handled) == jobs:
                all_done.set()

    def stop_when_done() -> None:
        if all_done.wait(60):
            client.call_soon_threadsafe(client.loop_break)

    consume = client.basic_consume(queue=queue, prefetch_count=8)
    pool = puka.threads.consume_in_pool(client, consume, handler, workers=workers)
    stopper = threading.Thread(target=stop_when_done)
    stopper.start()
    began = time.monotonic()
    with watchdog(client, 60):
        client.loop()
    stopped = pool.stop(timeout=SOON)
    elapsed = time.monotonic() - began
    stopper.join()

    assert stopped
    assert client.engine.is_open  # no connection loss
    assert len(handled) == jobs
    assert sorted(int(m["body"]) for m in handled) == list(range(jobs))
    assert not any(m["redelivered"] for m in handled)
    assert sorted(acked) == sorted(m["delivery_tag"] for m in handled)
    assert max(Counter(acked).values()) == 1  # each acked exactly once
    assert client.engine.stale_acks == 0
    assert 14.0 < elapsed < 25.0, elapsed  # 20 x 3 s over 4 workers: about 15 s

    wakes = recorder.wakes
    timeouts = [w for w in wakes if not w.ready]
    # every timeout ended at a timer deadline of the engine (heartbeats), not before it:
    # a loop polling every 0.1 s would wake up long before the next heartbeat is due
    early = [w for w in timeouts if w.timer is None or w.returned < w.timer - 0.002]
    assert not early, f"{len(early)} wake-ups before any deadline: {early[:5]}"
    # heartbeat=1 sends one every half interval at most: about 2 timer wake-ups a second
    assert len(timeouts) <= 3 * elapsed + 5, (len(timeouts), elapsed)
    # the rest follow events: the socket (deliveries, heartbeats, writes) or the handoff
    by_kind = Counter(
        "wake" if w.ready & WAKE else "socket" if w.ready & (READ | WRITE) else "timer"
        for w in wakes
    )
    assert by_kind["wake"] >= 1
    assert by_kind["wake"] <= jobs + 5  # one per job's end, give or take a shared wake-up
    assert len(wakes) <= 15 * elapsed, by_kind  # no spinning either

    client.wait(client.close(), timeout=SOON)
    other = make_client()
    after = wait_ok(other, other.queue_declare(queue=queue, passive=True))
    assert after["message_count"] == 0  # nothing was left unacked (it would be back)


def test_a_failing_handler_rejects_the_message_by_default(
    make_client: Callable[..., Any], resources: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client()
    dead = resources.exchange("dlx")
    dead_queue = resources.queue("dead")
    wait_ok(client, client.exchange_declare(exchange=dead, type="fanout"))
    wait_ok(client, client.queue_declare(queue=dead_queue))
    wait_ok(client, client.queue_bind(queue=dead_queue, exchange=dead))
    queue = resources.queue("failing")
    _fill(client, queue, 3, arguments={"x-dead-letter-exchange": dead})
    handled: list[bytes] = []

    def handler(message: Any) -> None:
        if message["body"] == b"1":
            raise ValueError("cannot handle 1")
        handled.append(message["body"])

    consume = client.basic_consume(queue=queue, prefetch_count=3)
    pool = puka.threads.consume_in_pool(client, consume, handler, workers=2)
    with caplog.at_level(logging.ERROR, logger="puka.threads"):
        _loop_until(client, lambda: _ready(client, dead_queue) == 1)
    assert pool.stop(timeout=SOON)
    assert sorted(handled) == [b"0", b"2"]
    dead_letter = wait_ok(client, client.basic_get(queue=dead_queue, no_ack=True))
    assert dead_letter["body"] == b"1"  # rejected without requeue: dead-lettered
    assert _ready(client, queue) == 0
    [record] = [r for r in caplog.records if r.name == "puka.threads"]
    assert "rejected" in record.getMessage()
    assert isinstance(record.exc_info[1], ValueError)  # type: ignore[index]


def test_on_error_requeue_gives_the_message_back(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("requeue")
    _fill(client, queue, 1)
    seen: list[bool] = []

    def handler(message: Any) -> None:
        seen.append(message["redelivered"])
        if not message["redelivered"]:
            raise RuntimeError("first time")

    consume = client.basic_consume(queue=queue, prefetch_count=1)
    pool = puka.threads.consume_in_pool(client, consume, handler, on_error="requeue")
    _loop_until(client, lambda: len(seen) == 2 and pool.in_flight == 0)
    assert pool.stop(timeout=SOON)
    assert seen == [False, True]
    assert _ready(client, queue) == 0


def test_on_error_callable_runs_in_the_clients_thread(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("on-error")
    _fill(client, queue, 2)
    calls: list[tuple[int, bytes, str]] = []

    def handler(message: Any) -> None:
        raise KeyError(message["body"].decode())

    def on_error(message: Any, error: BaseException) -> None:
        calls.append((threading.get_ident(), message["body"], str(error)))
        client.basic_ack(message)  # settled here, as the policy says
        if message["body"] == b"1":
            raise OSError("on_error gives up")

    consume = client.basic_consume(queue=queue, prefetch_count=1)
    pool = puka.threads.consume_in_pool(client, consume, handler, on_error=on_error)
    with pytest.raises(OSError, match="gives up"):
        _loop_until(client, lambda: False)
    assert pool.stop(timeout=SOON)
    assert calls == [
        (threading.get_ident(), b"0", "'0'"),
        (threading.get_ident(), b"1", "'1'"),
    ]
    assert _ready(client, queue) == 0


def test_stop_finishes_running_jobs_and_gives_back_the_others(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("stop")
    _fill(client, queue, 10)
    started: list[bytes] = []
    finished: list[bytes] = []
    release = threading.Event()

    def handler(message: Any) -> None:
        started.append(message["body"])
        release.wait(SOON)
        finished.append(message["body"])

    acked: list[bytes] = []
    basic_ack = client.basic_ack
    client.basic_ack = lambda message, multiple=False: (
        acked.append(message["body"]),
        basic_ack(message, multiple),
    )
    consume = client.basic_consume(queue=queue, prefetch_count=6)
    pool = puka.threads.consume_in_pool(client, consume, handler, workers=2)
    _loop_until(client, lambda: len(started) == 2 and pool.in_flight == 6)
    timer = threading.Timer(0.5, release.set)
    timer.start()
    began = time.monotonic()
    assert pool.stop(timeout=SOON)
    timer.join()
    assert time.monotonic() - began >= 0.4  # it waited for the running jobs
    assert sorted(started) == sorted(finished) and len(started) == 2  # the others never ran
    assert sorted(acked) == sorted(finished)  # the running ones were acked as they ended
    assert pool.in_flight == 0
    # the 4 handed out but not started are back in the queue, with the 4 never delivered
    after = wait_ok(client, client.queue_declare(queue=queue, passive=True))
    assert after["message_count"] == 8 and after["consumer_count"] == 0
    again = [wait_ok(client, client.basic_get(queue=queue, no_ack=True)) for _ in range(8)]
    assert sum(m["redelivered"] for m in again) == 4
    assert {m["body"] for m in again} | set(finished) == {b"%d" % n for n in range(10)}
    assert pool.stop() is True  # again: nothing more to do


def test_prefetch_bounds_the_messages_handed_out(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("prefetch")
    _fill(client, queue, 10)
    release = threading.Event()
    started: list[bytes] = []
    most = [0]

    def handler(message: Any) -> None:
        started.append(message["body"])
        release.wait(SOON)

    consume = client.basic_consume(queue=queue, prefetch_count=3)
    pool = puka.threads.consume_in_pool(client, consume, handler, workers=2)
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        client.loop(timeout=0.05)
        most[0] = max(most[0], pool.in_flight)
    assert pool.in_flight == 3 and most[0] == 3  # 2 running, 1 waiting for a worker
    assert len(started) == 2
    assert _ready(client, queue) == 7  # the broker keeps the rest
    release.set()
    while len(started) < 10 or pool.in_flight:
        client.loop(timeout=0.05)
        most[0] = max(most[0], pool.in_flight)
    assert most[0] == 3
    assert pool.stop(timeout=SOON)
    assert _ready(client, queue) == 0


def test_stop_gives_up_after_its_timeout(make_client: Callable[..., Any], resources: Any) -> None:
    client = make_client()
    queue = resources.queue("slow-stop")
    _fill(client, queue, 1)
    release = threading.Event()
    started = threading.Event()

    def handler(message: Any) -> None:
        started.set()
        release.wait(SOON)

    consume = client.basic_consume(queue=queue, prefetch_count=1)
    pool = puka.threads.consume_in_pool(client, consume, handler)
    _loop_until(client, started.is_set)
    began = time.monotonic()
    assert pool.stop(timeout=0.3) is False
    assert 0.25 < time.monotonic() - began < 5
    assert pool.in_flight == 1
    release.set()
    assert pool.stop(timeout=SOON) is True  # the job ended: its message is acked now
    assert pool.in_flight == 0
    client.wait(client.close(), timeout=SOON)
    other = make_client()
    assert _ready(other, queue) == 0


def test_a_consume_cancelled_by_the_broker_propagates(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client, other = make_client(), make_client()
    queue = resources.queue("cancelled")
    _fill(client, queue, 0)
    consume = client.basic_consume(queue=queue, prefetch_count=1)
    pool = puka.threads.consume_in_pool(client, consume, lambda message: None)
    client.loop(timeout=0.2)
    wait_ok(other, other.queue_delete(queue=queue))
    with pytest.raises(puka.ConsumerCancelled):
        _loop_until(client, lambda: False)
    assert pool.stop(timeout=SOON)
    assert client.engine.is_open


def test_consume_in_pool_checks_its_arguments(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("arguments")
    declare = client.queue_declare(queue=queue)
    wait_ok(client, declare)
    good = client.basic_consume(queue=queue, prefetch_count=2)
    unlimited = client.basic_consume(queue=queue)
    no_ack = client.basic_consume(queue=queue, prefetch_count=2, no_ack=True)
    pool = puka.threads.consume_in_pool
    handler = print
    with pytest.raises(TypeError, match="consume_in_pool: client"):
        pool("client", good, handler)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefetch_count"):
        pool(client, unlimited, handler)
    with pytest.raises(ValueError, match="no_ack"):
        pool(client, no_ack, handler)
    with pytest.raises(ValueError, match="consume must be a running consume"):
        pool(client, declare, handler)
    with pytest.raises(TypeError, match="consume_in_pool: handler"):
        pool(client, good, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="consume_in_pool: workers"):
        pool(client, good, handler, workers=0)
    with pytest.raises(ValueError, match="on_error"):
        pool(client, good, handler, on_error="ignore")
    for consume in (good, unlimited, no_ack):
        wait_ok(client, client.basic_cancel(consume))


def test_stop_is_refused_inside_the_clients_loop_and_from_other_threads(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("stop-where")
    _fill(client, queue, 0)
    consume = client.basic_consume(queue=queue, prefetch_count=1)
    pool = puka.threads.consume_in_pool(client, consume, lambda message: None)
    refused: list[BaseException] = []

    def stop_inside() -> None:  # handed over: runs inside the client's loop
        try:
            pool.stop()
        except RuntimeError as exc:
            refused.append(exc)

    def stop_from_a_thread() -> None:
        try:
            pool.stop()
        except puka.WrongThread as exc:
            refused.append(exc)
        client.call_soon_threadsafe(client.loop_break)

    inside = threading.Event()
    client.call_soon_threadsafe(stop_inside)
    client.call_soon_threadsafe(inside.set)
    thread = threading.Thread(target=lambda: inside.wait(SOON) and stop_from_a_thread())
    thread.start()
    client.loop(timeout=SOON)
    thread.join()
    assert [type(exc) for exc in refused] == [RuntimeError, puka.WrongThread]
    assert "outside wait and loop" in str(refused[0])
    assert pool.stop(timeout=SOON)  # from the client's thread, outside: fine


SPAN: contextvars.ContextVar[str] = contextvars.ContextVar("SPAN", default="none")


def test_jobs_run_in_the_context_of_their_delivery(
    make_client: Callable[..., Any], resources: Any
) -> None:
    """What is current in the client's thread when a message is delivered (a tracing span,
    say) is current in its handler, and what the handler sets is current when it is settled."""
    client = make_client()
    queue = resources.queue("context")
    _fill(client, queue, 2)
    in_handler: list[str] = []
    in_on_error: list[tuple[str, str]] = []

    def handler(message: Any) -> None:
        in_handler.append(SPAN.get())
        SPAN.set(f"handler of {message['body'].decode()}")
        if message["body"] == b"1":
            raise ValueError("to see the context of on_error")

    def on_error(message: Any, error: BaseException) -> None:
        in_on_error.append((message["body"].decode(), SPAN.get()))
        client.basic_ack(message)

    token = SPAN.set("delivery")  # the client's thread's context when the messages arrive
    try:
        consume = client.basic_consume(queue=queue, prefetch_count=2)
        pool = puka.threads.consume_in_pool(client, consume, handler, on_error=on_error)
        _loop_until(client, lambda: len(in_handler) == 2 and pool.in_flight == 0)
        assert pool.stop(timeout=SOON)
        assert SPAN.get() == "delivery"  # the client's thread's own context is untouched
    finally:
        SPAN.reset(token)
    assert in_handler == ["delivery", "delivery"]
    assert in_on_error == [("1", "handler of 1")]
