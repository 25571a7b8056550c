"""Promises, waits, callbacks and loops: pipelining, several clients from one thread."""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable
from typing import Any

import puka
import pytest

from tests.broker_node import RabbitmqCtl, UniqueName
from tests.integration.helpers import (
    SOON,
    BreakClock,
    Resources,
    close_connection_later,
    drain,
    message_count,
    wait_ok,
)


def test_promises_are_ints(client: Any, resources: Resources) -> None:
    promise = client.queue_declare(queue=resources.queue())
    assert isinstance(promise, int)
    another = client.queue_declare(queue=resources.queue())
    assert another != promise
    wait_ok(client, promise)
    wait_ok(client, another)


def test_declare_1000_queues_parallel_faster_than_sequential(
    client: Any, unique_name: UniqueName
) -> None:
    """The announcement's two snippets, timed in the same test: pipelining must pay off."""
    prefix = unique_name("seq")
    started = time.perf_counter()
    for i in range(1000):
        promise = client.queue_declare(queue=f"{prefix}-a{i:04d}", exclusive=True)
        client.wait(promise)
    sequential = time.perf_counter() - started

    prefix = unique_name("par")
    started = time.perf_counter()
    promises = [
        client.queue_declare(queue=f"{prefix}-a{i:04d}", exclusive=True) for i in range(1000)
    ]
    for promise in promises:
        client.wait(promise)
    parallel = time.perf_counter() - started

    assert parallel < sequential, f"parallel {parallel:.3f} s >= sequential {sequential:.3f} s"
    # the queues exist (exclusive: they go with the connection at teardown)
    result = wait_ok(client, client.queue_declare(queue=f"{prefix}-a0999", passive=True))
    assert result["queue"] == f"{prefix}-a0999"


def test_1000_parallel_declares_results_match_their_promises(
    client: Any, unique_name: UniqueName
) -> None:
    prefix = unique_name("match")
    promises = {
        client.queue_declare(queue=f"{prefix}-{i:04d}", exclusive=True): f"{prefix}-{i:04d}"
        for i in range(1000)
    }
    # waited in reverse order: each promise still gets its own result
    for promise, name in reversed(list(promises.items())):
        assert wait_ok(client, promise)["queue"] == name


def test_wait_timeout_returns_none(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    consume = client.basic_consume(queue=queue)
    started = time.monotonic()
    assert client.wait(consume, timeout=0.5) is None
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 3
    wait_ok(client, client.basic_cancel(consume))


def test_wait_on_a_list_returns_the_ready_one(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    never = client.basic_consume(queue=queue)
    declare = client.queue_declare(queue=resources.queue())
    result = client.wait([never, declare], timeout=SOON)
    assert result is not None
    assert result.name == "queue.declare_ok"
    wait_ok(client, client.basic_cancel(never))


def test_wait_for_any(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    never = client.basic_consume(queue=queue)
    purge = client.queue_purge(queue=queue)
    result = client.wait_for_any([never, purge])
    assert result is not None
    assert result.name == "queue.purge_ok"
    assert result["message_count"] == 0
    wait_ok(client, client.basic_cancel(never))


def test_wait_for_all_returns_every_result(client: Any, resources: Resources) -> None:
    names = [resources.queue() for _ in range(20)]
    results = client.wait_for_all([client.queue_declare(queue=n) for n in names])
    assert [r["queue"] for r in results] == names


def test_callbacks_mixed_with_waits(client: Any, resources: Resources) -> None:
    """A callback publishes; meanwhile the main code waits on an unrelated declare."""
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    events: list[str] = []

    def published(_promise: int, result: Any) -> None:
        assert result.is_error is False
        events.append("published")

    def declared(_promise: int, result: Any) -> None:
        events.append("declared " + result["queue"])
        client.basic_publish(
            exchange="", routing_key=queue, body=b"from callback", callback=published
        )

    client.queue_declare(queue=queue, callback=declared)
    other = resources.queue()
    result = wait_ok(client, client.queue_declare(queue=other))
    assert result["queue"] == other
    # the callbacks ran during the wait (or run now, while waiting on something else)
    deadline = time.monotonic() + SOON
    while "published" not in events and time.monotonic() < deadline:
        client.wait(client.queue_declare(queue=other, passive=True))
    assert events == [f"declared {queue}", "published"]
    assert [m["body"] for m in drain(client, queue)] == [b"from callback"]


def test_set_callback_and_run_any_callbacks(client: Any, resources: Resources) -> None:
    seen: list[tuple[int, Any]] = []
    promise = client.queue_declare(queue=resources.queue())
    client.set_callback(promise, lambda p, r: seen.append((p, r)))
    deadline = time.monotonic() + SOON
    while not seen and time.monotonic() < deadline:
        client.loop(timeout=0.05)
        client.run_any_callbacks()
    assert len(seen) == 1
    assert seen[0][0] == promise
    assert seen[0][1].name == "queue.declare_ok"


def test_a_callback_set_on_publishes_in_flight_gets_their_confirms(
    client: Any, resources: Resources
) -> None:
    """Publishes without a callback have no promise object (a bare number) until one is set."""
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"first"))
    publishes = [client.basic_publish(exchange="", routing_key=queue, body=b"x") for _ in range(3)]
    seen: list[tuple[int, str]] = []
    for promise in publishes:
        client.set_callback(promise, lambda p, r: seen.append((p, r.name)))
    deadline = time.monotonic() + SOON
    while len(seen) < 3 and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    assert sorted(seen) == [(p, "basic.ack") for p in publishes]
    assert message_count(client, queue) == 4


def test_loop_until_loop_break(client: Any, resources: Resources) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    received: list[bytes] = []

    def on_message(_promise: int, message: Any) -> None:
        received.append(message["body"])
        client.basic_ack(message)
        if len(received) == 3:
            client.loop_break()

    consume = client.basic_consume(queue=queue, callback=on_message)
    for i in range(3):
        client.basic_publish(exchange="", routing_key=queue, body=b"%d" % i)
    started = time.monotonic()
    client.loop(timeout=SOON)
    assert received == [b"0", b"1", b"2"]
    assert time.monotonic() - started < SOON - 1  # loop_break, not the timeout
    # loop with only a timeout returns after it
    started = time.monotonic()
    client.loop(timeout=0.3)
    assert 0.2 <= time.monotonic() - started < 3
    wait_ok(client, client.basic_cancel(consume))


def test_calls_before_connect_completes_are_queued(
    client: Any, make_client: Callable[..., Any], resources: Resources
) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))  # exists before the new client starts
    fresh = make_client(connect=False)
    connect = fresh.connect()
    # issued before the handshake is over: queued, not failed
    declare = fresh.queue_declare(queue=queue, passive=True)
    publish = fresh.basic_publish(exchange="", routing_key=queue, body=b"early")
    get = fresh.basic_get(queue=resources.queue("missing"))
    assert wait_ok(fresh, declare)["queue"] == queue
    assert wait_ok(fresh, publish) == {}
    assert wait_ok(fresh, connect).is_error is False
    with pytest.raises(puka.NotFound):
        fresh.wait(get, timeout=SOON)
    assert wait_ok(fresh, fresh.basic_get(queue=queue, no_ack=True))["body"] == b"early"


def test_forwarding_between_two_clients_with_puka_loop(
    make_client: Callable[..., Any], resources: Resources
) -> None:
    """Consume A on client 1 with a callback, publish each message to B on client 2."""
    count = 200
    one, two = make_client(), make_client()
    queue_a, queue_b = resources.queue("a"), resources.queue("b")
    wait_ok(one, one.queue_declare(queue=queue_a))
    wait_ok(two, two.queue_declare(queue=queue_b))
    one.wait_for_all(
        [
            one.basic_publish(exchange="", routing_key=queue_a, body=b"%04d" % i)
            for i in range(count)
        ]
    )
    confirmed: list[int] = []
    clock = BreakClock()

    def on_confirm(_promise: int, result: Any) -> None:
        assert result.is_error is False
        confirmed.append(1)
        if len(confirmed) == count:
            clock.mark()
            one.loop_break()
            two.loop_break()

    def on_message(_promise: int, message: Any) -> None:
        two.basic_publish(
            exchange="",
            routing_key=queue_b,
            body=message["body"],
            headers=message["headers"],
            callback=on_confirm,
        )
        one.basic_ack(message)

    consume = one.basic_consume(queue=queue_a, prefetch_count=20, callback=on_message)
    started = time.monotonic()
    puka.loop([one, two], timeout=30)
    returned = time.monotonic()
    assert len(confirmed) == count, (
        f"only {len(confirmed)} of {count} forwarded in {returned - started:.1f} s"
    )
    clock.assert_prompt(returned)  # both clients called loop_break: puka.loop is over
    wait_ok(one, one.basic_cancel(consume))
    assert message_count(one, queue_a) == 0
    assert [m["body"] for m in drain(two, queue_b)] == [b"%04d" % i for i in range(count)]


def test_puka_loop_drives_a_recovery(
    make_client: Callable[..., Any],
    resources: Resources,
    rabbitmqctl: RabbitmqCtl,
    unique_name: UniqueName,
) -> None:
    """A client that loses its connection inside `puka.loop` reconnects there and consumes on,
    while the other client of the loop keeps being served."""
    count = 100
    marker = unique_name("loop-recovery")
    one = make_client(connection_name=marker, reconnect=puka.Recovery(max_delay=0.5))
    two = make_client()
    queue = resources.queue("loop-recovery")
    wait_ok(one, one.queue_declare(queue=queue))
    two.wait_for_all(
        [two.basic_publish(exchange="", routing_key=queue, body=b"%03d" % i) for i in range(count)]
    )
    seen: set[bytes] = set()
    redelivered: list[bool] = []
    recovered: list[float] = []
    killer: list[Any] = []
    one.on_recovered = lambda: recovered.append(time.monotonic())

    def on_message(_promise: int, message: Any) -> None:
        if message.is_error:
            return
        seen.add(message["body"])
        redelivered.append(message["redelivered"])
        if len(seen) <= 20 or recovered:  # the rest waits, unacked, for the connection's end
            one.basic_ack(message)
        if len(seen) == 20 and not killer:
            killer.append(close_connection_later(rabbitmqctl, marker, 0.0))
        if len(seen) == count:
            one.loop_break()
            two.loop_break()

    one.basic_consume(queue=queue, prefetch_count=10, callback=on_message)
    puka.loop([one, two], timeout=30)
    assert killer, "the consume never got 20 messages"
    thread, errors = killer[0]
    thread.join(SOON)
    assert not errors, errors
    assert len(recovered) == 1, "the client did not recover inside puka.loop"
    assert len(seen) == count, f"{len(seen)} of {count} messages consumed"
    assert any(redelivered), "the unacked messages of the lost connection came back flagged"
    assert wait_ok(two, two.queue_declare(queue=queue, passive=True))["message_count"] == 0


def test_forwarding_with_callbacks_and_waits(
    make_client: Callable[..., Any], resources: Resources
) -> None:
    """The same forwarding, synchronously: wait on client 1's consume, wait on client 2's publish."""
    count = 100
    one, two = make_client(), make_client()
    queue_a, queue_b = resources.queue("a"), resources.queue("b")
    wait_ok(one, one.queue_declare(queue=queue_a))
    wait_ok(two, two.queue_declare(queue=queue_b))
    one.wait_for_all(
        [
            one.basic_publish(exchange="", routing_key=queue_a, body=b"%04d" % i)
            for i in range(count)
        ]
    )
    consume = one.basic_consume(queue=queue_a, prefetch_count=10)
    for _ in range(count):
        message = wait_ok(one, consume)
        wait_ok(two, two.basic_publish(exchange="", routing_key=queue_b, body=message["body"]))
        one.basic_ack(message)
    wait_ok(one, one.basic_cancel(consume))
    assert [m["body"] for m in drain(two, queue_b)] == [b"%04d" % i for i in range(count)]


def test_puka_loop_returns_after_timeout(make_client: Callable[..., Any]) -> None:
    one, two = make_client(), make_client()
    started = time.monotonic()
    puka.loop([one, two], timeout=0.3)
    assert 0.2 <= time.monotonic() - started < 3
    # both still usable
    wait_ok(one, one.queue_declare(exclusive=True))
    wait_ok(two, two.queue_declare(exclusive=True))


def test_foreign_event_loop_hooks(make_client: Callable[..., Any], resources: Resources) -> None:
    """Drive a client from our own selector: fileno, socket, on_read, on_write, needs_write."""
    client = make_client(connect=False)
    results: dict[str, Any] = {}

    def keep(name: str) -> Callable[[int, Any], None]:
        return lambda _p, r: results.__setitem__(name, r)

    def declared(promise: int, result: Any) -> None:
        keep("declare")(promise, result)
        # publish once the queue surely exists (operations on other channels may overtake)
        client.basic_publish(
            exchange="", routing_key=queue, body=b"foreign", callback=keep("publish")
        )

    client.connect(callback=keep("connect"))
    queue = resources.queue()
    client.queue_declare(queue=queue, callback=declared)
    assert client.fileno() >= 0
    assert client.socket() is not None
    assert client.socket().fileno() == client.fileno()

    selector = selectors.DefaultSelector()
    try:
        selector.register(client.fileno(), selectors.EVENT_READ)
        deadline = time.monotonic() + SOON
        while len(results) < 3 and time.monotonic() < deadline:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.needs_write() else 0)
            selector.modify(client.fileno(), events)
            for _key, mask in selector.select(timeout=0.1):
                if mask & selectors.EVENT_READ:
                    client.on_read()
                if mask & selectors.EVENT_WRITE:
                    client.on_write()
            client.run_any_callbacks()
    finally:
        selector.close()
    assert set(results) == {"connect", "declare", "publish"}
    assert results["connect"].is_error is False
    assert results["declare"]["queue"] == queue
    assert results["publish"] == {}
    assert wait_ok(client, client.basic_get(queue=queue, no_ack=True))["body"] == b"foreign"


@pytest.mark.parametrize("count", [1, 10])
def test_many_clients_one_thread(
    make_client: Callable[..., Any], resources: Resources, count: int
) -> None:
    clients = [make_client() for _ in range(count)]
    queue = resources.queue()
    wait_ok(clients[0], clients[0].queue_declare(queue=queue))
    done: list[int] = []
    clock = BreakClock()

    def confirmed(_promise: int, result: Any) -> None:
        assert result.is_error is False
        done.append(1)
        if len(done) == count * 10:
            clock.mark()
            for c in clients:
                c.loop_break()

    for i, c in enumerate(clients):
        for j in range(10):
            c.basic_publish(
                exchange="", routing_key=queue, body=b"%d-%d" % (i, j), callback=confirmed
            )
    puka.loop(clients, timeout=SOON)
    returned = time.monotonic()
    assert len(done) == count * 10
    clock.assert_prompt(returned)
    assert message_count(clients[0], queue) == count * 10


def test_puka_loop_registers_each_socket_once(
    make_client: Callable[..., Any], resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`puka.loop` changes its selector only when a client's interest changes, not per round:
    with 50 clients each publishing 20 messages one after another (each from the confirm of
    the one before, so there are many rounds), it makes about one registration per socket
    and handoff, not one pair per client per round (which made CPU per message grow with the
    number of connections)."""
    calls: list[str] = []
    base = selectors.DefaultSelector

    class Counting(base):  # type: ignore[valid-type,misc]
        def register(self, fileobj: Any, events: int, data: Any = None) -> Any:
            calls.append("register")
            return super().register(fileobj, events, data)

        def modify(self, fileobj: Any, events: int, data: Any = None) -> Any:
            calls.append("modify")
            return super().modify(fileobj, events, data)

        def unregister(self, fileobj: Any) -> Any:
            calls.append("unregister")
            return super().unregister(fileobj)

    count, each = 50, 20
    clients = [make_client() for _ in range(count)]
    queue = resources.queue()
    wait_ok(clients[0], clients[0].queue_declare(queue=queue))
    rounds = {"select": 0}
    real_select = Counting.select

    def select(self: Any, timeout: float | None = None) -> Any:
        rounds["select"] += 1
        return real_select(self, timeout)

    Counting.select = select
    monkeypatch.setattr(selectors, "DefaultSelector", Counting)
    sent = dict.fromkeys(range(count), 0)
    finished: list[int] = []

    def chain(i: int) -> Callable[[int, Any], None]:
        client = clients[i]

        def confirmed(_promise: int, result: Any) -> None:
            assert result.is_error is False
            if sent[i] == each:
                finished.append(i)
                client.loop_break()
                return
            sent[i] += 1
            client.basic_publish(exchange="", routing_key=queue, body=b"x", callback=confirmed)

        return confirmed

    for i, client in enumerate(clients):
        sent[i] = 1
        client.basic_publish(exchange="", routing_key=queue, body=b"x", callback=chain(i))
    puka.loop(clients, timeout=SOON * 3)
    assert len(finished) == count
    assert rounds["select"] >= each  # one confirm after another: at least a round each
    # each socket and handoff once, each leaving client once; a spare modify when a socket
    # could not take a publish at once (before: 4 per client per round, 4000 and more)
    assert calls.count("register") == 2 * count, calls.count("register")
    assert calls.count("modify") + calls.count("unregister") <= 3 * count, calls
    assert message_count(clients[0], queue) == count * each
