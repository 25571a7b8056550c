"""`puka.threads.Publisher`: publishing from many threads through the client's thread, each
publish a `concurrent.futures.Future` settled by its confirm."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import puka
import puka.threads
import pytest

from tests.integration.helpers import SOON, wait_ok

THREADS = 8
TOTAL = 10_000


def _loop_until(client: Any, done: Callable[[], bool], timeout: float = 60.0) -> None:
    """Drive `client` until `done()` (checked between short loops), failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        client.loop(timeout=0.05)


def test_eight_threads_publish_ten_thousand_messages(
    make_client: Callable[..., Any], resources: Any, watchdog: Any
) -> None:
    client = make_client()
    queue = resources.queue("publisher")
    wait_ok(client, client.queue_declare(queue=queue))
    publisher = puka.threads.Publisher(client)
    futures: list[concurrent.futures.Future[Any]] = []
    futures_lock = threading.Lock()

    def produce(thread: int) -> None:
        mine = [
            publisher.publish(exchange="", routing_key=queue, body=f"{thread}:{n}")
            for n in range(thread, TOTAL, THREADS)
        ]
        with futures_lock:
            futures.extend(mine)

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]

    def stop_when_settled() -> None:
        for thread in producers:
            thread.join()
        concurrent.futures.wait(futures, timeout=60)
        client.call_soon_threadsafe(client.loop_break)

    for thread in producers:
        thread.start()
    stopper = threading.Thread(target=stop_when_settled)
    stopper.start()
    with watchdog(client, 90):
        client.loop()  # the client's thread: makes every publish, reads every confirm
    stopper.join()

    assert len(futures) == TOTAL
    assert all(future.done() for future in futures)
    results = [future.result(timeout=0) for future in futures]  # none failed
    assert all(not result.is_error for result in results)
    assert publisher.in_flight == 0

    # consume them back: each message exactly once
    bodies: list[str] = []
    consume = client.basic_consume(queue=queue, no_ack=True)
    deadline = time.monotonic() + 60
    while len(bodies) < TOTAL and time.monotonic() < deadline:
        message = client.wait(consume, timeout=SOON)
        assert message is not None, f"only {len(bodies)} of {TOTAL} messages came back"
        bodies.append(message["body"].decode())
    assert client.wait(consume, timeout=0.5) is None  # nothing more (no duplicate)
    wait_ok(client, client.basic_cancel(consume))
    expected = {f"{n % THREADS}:{n}" for n in range(TOTAL)}
    assert set(bodies) == expected
    assert max(Counter(bodies).values()) == 1


def test_a_failed_publish_sets_the_futures_exception(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    publisher = puka.threads.Publisher(client)
    unroutable = publisher.publish(
        exchange="amq.direct", routing_key=resources.queue("nobody"), mandatory=True, body=b"x"
    )
    bad_header = publisher.publish(exchange="", routing_key="q", headers={"priority": "high"})
    _loop_until(client, lambda: unroutable.done() and bad_header.done(), SOON)
    with pytest.raises(puka.NoRoute):
        unroutable.result(timeout=0)
    with pytest.raises((TypeError, ValueError), match="priority"):
        bad_header.result(timeout=0)
    assert publisher.in_flight == 0


def test_names_and_body_are_checked_in_the_calling_thread(make_client: Callable[..., Any]) -> None:
    client = make_client()
    publisher = puka.threads.Publisher(client)
    with pytest.raises(TypeError, match="publish: exchange"):
        publisher.publish(exchange=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="publish: routing_key"):
        publisher.publish(exchange="", routing_key="k" * 256)
    with pytest.raises(TypeError, match="publish: body"):
        publisher.publish(exchange="", body=12)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Publisher: client"):
        puka.threads.Publisher("amqp://")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Publisher: max_in_flight"):
        puka.threads.Publisher(client, max_in_flight=0)
    assert publisher.in_flight == 0 and not client._handoff.calls


def test_the_body_is_copied_before_the_caller_can_change_it(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("copied")
    wait_ok(client, client.queue_declare(queue=queue))
    publisher = puka.threads.Publisher(client)
    buffer = bytearray(b"original")
    headers = {"x-tag": "original"}
    future = publisher.publish(exchange="", routing_key=queue, body=buffer, headers=headers)
    buffer[:] = b"changed!"  # before the client's thread made the publish
    headers["x-tag"] = "changed"
    _loop_until(client, future.done, SOON)
    future.result(timeout=0)
    message = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert message["body"] == b"original"
    assert message["headers"]["x-tag"] == "original"


def test_at_most_max_in_flight_wait_for_their_confirm(
    make_client: Callable[..., Any], resources: Any
) -> None:
    client = make_client()
    queue = resources.queue("in-flight")
    wait_ok(client, client.queue_declare(queue=queue))
    publisher = puka.threads.Publisher(client, max_in_flight=2)
    handed: list[concurrent.futures.Future[Any]] = []

    def produce() -> None:
        for n in range(5):
            handed.append(publisher.publish(exchange="", routing_key=queue, body=b"%d" % n))

    thread = threading.Thread(target=produce)
    thread.start()
    time.sleep(0.3)  # the client's thread is away: nothing settles
    assert len(handed) == 2  # the third publish waits for room
    assert publisher.in_flight == 2
    _loop_until(client, lambda: len(handed) == 5 and all(f.done() for f in handed), SOON)
    thread.join()
    assert [f.result(timeout=0).is_error for f in handed] == [False] * 5
    assert wait_ok(client, client.queue_declare(queue=queue, passive=True))["message_count"] == 5


def test_publishing_to_a_closed_client_raises(make_client: Callable[..., Any]) -> None:
    client = make_client()
    publisher = puka.threads.Publisher(client)
    pending = publisher.publish(exchange="", routing_key="nowhere", body=b"x")
    wait_ok(client, client.close())  # the publish handed over before the close still ran
    assert pending.done()
    with pytest.raises(puka.ClientClosed):
        publisher.publish(exchange="", routing_key="nowhere", body=b"y")
    assert publisher.in_flight == 0
