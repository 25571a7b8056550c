"""`Client.call_soon_threadsafe` against the broker: it wakes every way the client's thread
blocks, runs the call there, and is refused once the client is over; the wrong-thread check."""

from __future__ import annotations

import contextvars
import gc
import threading
import time
from collections.abc import Callable
from typing import Any

import puka
import pytest

from tests.faults.fault_proxy import FaultProxy, open_fds
from tests.integration.helpers import SOON, url_with_port, wait_ok

PROMPT = 5.0  # seconds: a handed-over call that wakes the client runs well within this

REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("REQUEST", default="none")


def _later(seconds: float, fn: Callable[[], Any]) -> threading.Timer:
    timer = threading.Timer(seconds, fn)
    timer.start()
    return timer


def test_a_call_wakes_a_wait_without_timeout(
    make_client: Callable[..., Any], resources: Any, watchdog: Any
) -> None:
    client = make_client(heartbeat=0)  # no timer either: only the handoff can wake it
    queue = resources.queue("wake-wait")
    wait_ok(client, client.queue_declare(queue=queue))
    consume = client.basic_consume(queue=queue)
    wait_ok(client, client.basic_qos(consume, prefetch_count=1))
    handed: list[float] = []

    def hand() -> None:
        handed.append(time.monotonic())
        client.call_soon_threadsafe(client.basic_publish, "", queue, False, None, b"woken")

    timer = _later(0.2, hand)
    with watchdog(client):
        message = client.wait(consume)  # no timeout
    timer.join()
    assert message is not None and message["body"] == b"woken"
    assert time.monotonic() - handed[0] < PROMPT
    client.basic_ack(message)


def test_a_call_wakes_loop_and_runs_in_the_clients_thread(
    make_client: Callable[..., Any], watchdog: Any
) -> None:
    client = make_client(heartbeat=0)
    ran_in: list[int] = []

    def stop() -> None:
        ran_in.append(threading.get_ident())
        client.loop_break()

    timer = _later(0.2, lambda: client.call_soon_threadsafe(stop))
    began = time.monotonic()
    with watchdog(client):
        client.loop()  # no timeout
    timer.join()
    assert ran_in == [threading.get_ident()]
    assert time.monotonic() - began < PROMPT


def test_a_call_wakes_puka_loop(make_client: Callable[..., Any], watchdog: Any) -> None:
    one, two = make_client(heartbeat=0), make_client(heartbeat=0)

    def stop_both() -> None:
        one.loop_break()
        two.loop_break()

    timer = _later(0.2, lambda: two.call_soon_threadsafe(stop_both))
    began = time.monotonic()
    with watchdog(one), watchdog(two):
        puka.loop([one, two])  # no timeout: returns once both broke
    timer.join()
    assert time.monotonic() - began < PROMPT


@pytest.mark.parametrize("how", ["loop", "puka.loop"])
def test_a_call_wakes_a_client_waiting_to_reconnect(
    how: str, amqp_url: str, fault_proxy: FaultProxy
) -> None:
    backoff = 4.0
    client = puka.Client(
        fault_proxy.url(amqp_url),
        heartbeat=0,
        reconnect=puka.Recovery(initial_delay=backoff, max_delay=backoff, jitter=0),
    )
    try:
        wait_ok(client, client.connect())
        seen: dict[str, Any] = {}

        def during_the_backoff() -> None:
            seen["ran"] = time.monotonic()
            seen["socket"] = client.socket()
            client.loop_break()

        def hand_when_recovering() -> None:
            deadline = time.monotonic() + SOON
            while not (client.socket() is None and client._recovering):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
            seen["handed"] = time.monotonic()
            client.call_soon_threadsafe(during_the_backoff)

        helper = threading.Thread(target=hand_when_recovering)
        helper.start()
        fault_proxy.rst()  # the connection dies: recovery waits `backoff` s without a socket
        if how == "loop":
            client.loop(timeout=SOON)
        else:
            puka.loop([client], timeout=SOON)
        helper.join()
        assert "handed" in seen, "the client never was without a socket while recovering"
        assert seen["socket"] is None  # it ran during the back-off, not after the reconnect
        assert seen["ran"] - seen["handed"] < backoff / 2
        # and the recovery goes on afterwards
        deadline = time.monotonic() + backoff + SOON
        while not client.engine.is_open and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        wait_ok(client, client.queue_declare(exclusive=True))
    finally:
        client.wait(client.close(), timeout=SOON, raise_errors=False)


def _settled_fds(baseline: int) -> int:
    deadline = time.monotonic() + 2
    while open_fds() != baseline and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    return open_fds()


def test_the_wake_channel_is_closed_with_the_client(amqp_url: str, fault_proxy: FaultProxy) -> None:
    gc.collect()
    baseline = open_fds()
    if baseline < 0:
        pytest.skip("no /proc/self/fd here")

    closed = puka.Client(amqp_url)
    wait_ok(closed, closed.connect())
    assert open_fds() == baseline + 3  # the AMQP socket and the wake channel's pair
    closed.call_soon_threadsafe(int)  # used or not, it is closed alike
    wait_ok(closed, closed.close())
    assert _settled_fds(baseline) == baseline
    with pytest.raises(puka.ClientClosed):
        closed.call_soon_threadsafe(int)

    aborted = puka.Client(amqp_url)
    wait_ok(aborted, aborted.connect())
    aborted.abort()
    assert _settled_fds(baseline) == baseline
    with pytest.raises(puka.ClientClosed):
        aborted.call_soon_threadsafe(int)

    with puka.Client(amqp_url) as managed:
        wait_ok(managed, managed.connect())
    assert _settled_fds(baseline) == baseline

    refused = puka.Client(url_with_port(amqp_url, 1), connection_timeout=2)
    with pytest.raises(puka.ConnectFailed):
        refused.wait(refused.connect(), timeout=SOON)
    assert _settled_fds(baseline) == baseline

    lost = puka.Client(fault_proxy.url(amqp_url), heartbeat=0)
    wait_ok(lost, lost.connect())
    fault_proxy.rst()
    with pytest.raises(puka.ConnectionLost):
        lost.wait(lost.queue_declare(exclusive=True), timeout=SOON)
    fault_proxy.wait_idle(2)
    assert _settled_fds(baseline) == baseline
    with pytest.raises(puka.ClientClosed):
        lost.call_soon_threadsafe(int)


def test_calls_handed_over_before_the_close_still_run(make_client: Callable[..., Any]) -> None:
    client = make_client(heartbeat=0)
    ran: list[str] = []
    client.call_soon_threadsafe(ran.append, "before close")
    promise = client.close()
    client.call_soon_threadsafe(ran.append, "while closing")
    wait_ok(client, promise)
    assert ran == ["before close", "while closing"]


def test_an_exception_propagates_as_a_callbacks_does(
    make_client: Callable[..., Any], resources: Any
) -> None:
    """A handed-over call that raises ends the `loop` that ran it, as a callback that raises
    does; the calls handed over after it run at the next `loop`."""
    client = make_client(heartbeat=0)
    ran: list[str] = []

    def fail() -> None:
        raise LookupError("from the handed-over call")

    client.call_soon_threadsafe(ran.append, "first")
    client.call_soon_threadsafe(fail)
    client.call_soon_threadsafe(ran.append, "third")
    with pytest.raises(LookupError, match="handed-over"):
        client.loop(timeout=SOON)
    assert ran == ["first"]
    client.loop(timeout=0.2)
    assert ran == ["first", "third"]

    # the same as a callback's exception
    queue = resources.queue("callback-raises")
    wait_ok(client, client.queue_declare(queue=queue))

    def callback(promise: int, result: Any) -> None:
        raise LookupError("from the callback")

    client.queue_declare(queue=queue, passive=True, callback=callback)
    with pytest.raises(LookupError, match="callback"):
        client.loop(timeout=SOON)


def test_calls_from_one_thread_run_in_order_in_its_context(make_client: Callable[..., Any]) -> None:
    client = make_client(heartbeat=0)
    seen: list[tuple[int, str]] = []
    explicit = contextvars.Context()
    explicit.run(REQUEST.set, "explicit")

    def worker() -> None:
        REQUEST.set("from the worker")
        for n in range(100):
            client.call_soon_threadsafe(lambda n=n: seen.append((n, REQUEST.get())))
        client.call_soon_threadsafe(lambda: seen.append((-1, REQUEST.get())), context=explicit)
        client.call_soon_threadsafe(client.loop_break)

    thread = threading.Thread(target=worker)
    thread.start()
    client.loop(timeout=SOON)
    thread.join()
    assert seen == [(n, "from the worker") for n in range(100)] + [(-1, "explicit")]
    assert REQUEST.get() == "none"  # the client's thread's own context is untouched


def test_call_soon_threadsafe_checks_its_arguments(make_client: Callable[..., Any]) -> None:
    client = make_client(heartbeat=0)
    with pytest.raises(TypeError, match="call_soon_threadsafe: callback"):
        client.call_soon_threadsafe("not callable")
    with pytest.raises(TypeError, match="call_soon_threadsafe: context"):
        client.call_soon_threadsafe(int, context={})
    assert not client._handoff.calls  # nothing was queued


WRONG_THREAD_CALLS: dict[str, Callable[[Any, Any, str], Any]] = {
    "basic_publish": lambda c, m, q: c.basic_publish(exchange="", routing_key=q, body=b"no"),
    "basic_ack": lambda c, m, q: c.basic_ack(m),
    "basic_reject": lambda c, m, q: c.basic_reject(m),
    "basic_nack": lambda c, m, q: c.basic_nack(m),
    "basic_get": lambda c, m, q: c.basic_get(queue=q),
    "basic_consume": lambda c, m, q: c.basic_consume(queue=q),
    "queue_declare": lambda c, m, q: c.queue_declare(queue=q + "-never"),
    "queue_delete": lambda c, m, q: c.queue_delete(queue=q),
    "tx_select": lambda c, m, q: c.tx_select(),
    "update_secret": lambda c, m, q: c.update_secret(b"secret"),
    "wait": lambda c, m, q: c.wait(1, timeout=0),
    "wait_for_all": lambda c, m, q: c.wait_for_all([1]),
    "loop": lambda c, m, q: c.loop(timeout=0),
    "run_any_callbacks": lambda c, m, q: c.run_any_callbacks(),
    "connect": lambda c, m, q: c.connect(),
    "close": lambda c, m, q: c.close(),
    "abort": lambda c, m, q: c.abort(),
    "set_callback": lambda c, m, q: c.set_callback(1, print),
    "loop_break": lambda c, m, q: c.loop_break(),
    "on_read": lambda c, m, q: c.on_read(),
    "on_write": lambda c, m, q: c.on_write(),
    "puka.loop": lambda c, m, q: puka.loop([c], timeout=0),
}


def test_a_call_from_another_thread_while_the_client_is_in_use_is_refused(
    make_client: Callable[..., Any], resources: Any, watchdog: Any
) -> None:
    client = make_client(heartbeat=0)
    queue = resources.queue("wrong-thread")
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"one"))
    message = wait_ok(client, client.basic_get(queue=queue))
    consume = client.basic_consume(queue=queue, prefetch_count=1)
    outcomes: dict[str, Any] = {}
    rounds = 3  # one round after another: the client keeps working in between

    def worker() -> None:
        inside = threading.Event()
        client.call_soon_threadsafe(inside.set)  # runs once the client's thread is in loop
        assert inside.wait(SOON)
        for name, call in WRONG_THREAD_CALLS.items():
            try:
                call(client, message, queue)
            except puka.WrongThread as exc:
                outcomes[name] = exc
            else:
                outcomes[name] = "allowed"
        client.call_soon_threadsafe(client.loop_break)

    began_in = client._owner
    for _ in range(rounds):
        thread = threading.Thread(target=worker)
        thread.start()
        with watchdog(client):
            client.loop()
        thread.join()
    assert began_in is None and client._owner is None
    allowed = {name for name, outcome in outcomes.items() if outcome == "allowed"}
    assert not allowed, f"not refused from another thread: {sorted(allowed)}"
    for name, exc in outcomes.items():
        assert isinstance(exc, RuntimeError) and isinstance(exc, puka.PukaError)
        assert "call_soon_threadsafe" in str(exc), name
    # nothing happened: the client works and the refused calls left no trace
    assert client.engine.is_open
    client.basic_ack(message)
    declared = wait_ok(client, client.queue_declare(queue=queue, passive=True))
    assert declared["message_count"] == 0  # the refused publish did not go out
    with pytest.raises(puka.NotFound):
        client.wait(client.queue_declare(queue=queue + "-never", passive=True), timeout=SOON)
    wait_ok(client, client.basic_cancel(consume))


def test_a_client_may_pass_from_thread_to_thread(
    make_client: Callable[..., Any], resources: Any
) -> None:
    """The check refuses concurrent use only: one thread after another is fine."""
    client = make_client(heartbeat=0)
    queue = resources.queue("handed-on")
    results: list[Any] = []

    def use(body: bytes) -> None:
        wait_ok(client, client.queue_declare(queue=queue))
        results.append(
            wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=body))
        )

    for n in range(3):
        thread = threading.Thread(target=use, args=(b"%d" % n,))
        thread.start()
        thread.join()
    assert len(results) == 3
    assert wait_ok(client, client.queue_declare(queue=queue, passive=True))["message_count"] == 3
