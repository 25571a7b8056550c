"""Issue 7 row F3: the broker restarts (``stop_app``/``start_app``) under a confirmed publisher.

On the session's private node, with automatic recovery (``RECOVERY``): 2,000 persistent
messages with confirms, window 100, to a durable queue bound to a durable exchange, while a
consumer reads a transient queue bound to the same exchange (gone with the restart: recovery
must declare it again, bind it, and consume from it). The application republishes every
publish whose promise failed. Pass: the 320 CONNECTION_FORCED surfaces at most 1 s after the
broker sent it (measured against the return of ``stop_app``, which closes the connections
before it returns; rabbitmqctl itself needs most of a second to start), recovery is back at
most 3 s after ``start_app`` returned, no message is lost, the topology and the consumer are
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import PrivateBrokerNode, UniqueName
from tests.faults.private_helpers import (
    DRIVERS,
    close_quietly,
    connect_blocking,
    delete_queues,
    drain_bodies,
    queue_counts,
    record,
    run_async,
)

TOTAL = 2000
#: Recovery as ``reconnect=True`` does it, but with the back-off capped at 1 s instead of 5 s:
#: with the default cap, the attempt after a 2-3 s outage may come 3.2 s after ``start_app``,
#: and the 3 s criterion would depend on luck.
RECOVERY = puka.Recovery(max_delay=1.0)
WINDOW = 100
#: The restart begins once this many messages are confirmed.
RESTART_AFTER = 400
#: Publishing is paced (a pause after each batch) so that it spans the restart, and the last
#: HELD_BACK messages wait for the connection loss: they are published after the recovery.
BATCH, PAUSE = 100, 0.1
HELD_BACK = 800


class Restart:
    """``stop_app``, a pause, ``start_app`` on the node, from a thread; the times it happened."""

    def __init__(self, node: PrivateBrokerNode) -> None:
        self.node = node
        self.stop_began = self.stop_returned = self.start_returned = 0.0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="f3-restart", daemon=True)

    def begin(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stop_began = time.monotonic()
            self.node.ctl("stop_app")
            self.stop_returned = time.monotonic()
            time.sleep(0.3)
            self.node.ctl("start_app")
            self.start_returned = time.monotonic()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def join(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the restart thread hung"
        if self.error is not None:
            raise self.error


def _hold_back(sent: int, restart: Restart, events: Events) -> bool:
    """Keep the last ``HELD_BACK`` messages until the stop has closed the connection, so that
    the restart always falls in the middle of the stream, however slow rabbitmqctl is."""
    if not restart.stop_began or events.lost or sent < TOTAL - HELD_BACK:
        return False
    assert time.monotonic() - restart.stop_began < 15, "stop_app closed no connection in 15 s"
    return True


class Events:
    """What the recovery hooks saw, with times."""

    def __init__(self) -> None:
        self.lost: list[tuple[float, BaseException]] = []
        self.recovered: list[float] = []
        self.consumed: list[bytes] = []
        self.consumed_after_recovery = 0
        self.failures: list[BaseException] = []

    def on_lost(self, error: BaseException) -> None:
        self.lost.append((time.monotonic(), error))

    def on_recovered(self) -> None:
        self.recovered.append(time.monotonic())

    @property
    def up(self) -> bool:
        return len(self.recovered) >= len(self.lost)


def _topology(names: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("exchange_declare", {"exchange": names["exchange"], "durable": True}),
        ("queue_declare", {"queue": names["queue"], "durable": True}),
        (
            "queue_bind",
            {"queue": names["queue"], "exchange": names["exchange"], "routing_key": "k"},
        ),
        ("queue_declare", {"queue": names["transient"]}),
        (
            "queue_bind",
            {"queue": names["transient"], "exchange": names["exchange"], "routing_key": "k"},
        ),
    ]


PERSISTENT = {"delivery_mode": 2}
#: Bodies are padded: bigger persistent messages take longer to confirm, so that some are in
#: flight when the broker closes the connection.
PADDING = b" " * 4096


def _body(n: int) -> bytes:
    return str(n).encode() + PADDING


def _id(body: bytes) -> int:
    return int(body.split(b" ", 1)[0])


@pytest.mark.hurts_broker
@pytest.mark.parametrize("driver", DRIVERS)
def test_f3_broker_restart(
    driver: str, private_node: PrivateBrokerNode, unique_name: UniqueName
) -> None:
    names = {
        "exchange": unique_name("f3-x"),
        "queue": unique_name("f3-durable"),
        "transient": unique_name("f3-transient"),
    }
    restart = Restart(private_node)
    events = Events()
    began = time.monotonic()
    try:
        if driver == "blocking":
            confirmed = _f3_blocking(private_node.url, names, restart, events)
        else:
            confirmed = run_async(lambda: _f3_asyncio(private_node.url, names, restart, events), 60)
        restart.join()
        elapsed = time.monotonic() - began
        # 320 surfaced, at most 1 s after the broker sent it (before stop_app returned)
        assert events.lost, "the connection loss was never reported"
        lost_at, cause = events.lost[0]
        assert _forced_or_reset_unsent(cause), repr(cause)
        assert lost_at - restart.stop_returned <= 1.0
        # back at most 3 s after start_app, once
        assert len(events.recovered) == 1 == len(events.lost), (events.lost, events.recovered)
        reconnect = events.recovered[0] - restart.start_returned
        assert reconnect <= 3.0
        # in-flight publishes failed as outcome-unknown, caused by the 320
        assert all(isinstance(f, puka.ConnectionLost) for f in events.failures)
        # nothing lost: every id is in the durable queue
        assert confirmed == set(range(TOTAL))
        bodies = drain_bodies(private_node.url, names["queue"])
        ids = [_id(b) for b in bodies]
        lost = set(range(TOTAL)) - set(ids)
        assert not lost, f"{len(lost)} confirmed messages lost: {sorted(lost)[:20]}"
        duplicates = len(ids) - len(set(ids))
        # the consumer came back on the transient queue, declared and bound again
        assert events.consumed_after_recovery > 0
        assert _body(TOTAL - 1) in events.consumed
        record(
            "F3",
            driver,
            messages=TOTAL,
            lost=len(lost),
            duplicates=duplicates,
            failed_promises=len(events.failures),
            cause=type(cause).__name__,
            detection_after_stop_app_began=round(lost_at - restart.stop_began, 3),
            detection_after_stop_app_returned=round(lost_at - restart.stop_returned, 3),
            reconnect_after_start_app=round(reconnect, 3),
            consumed_after_recovery=events.consumed_after_recovery,
            seconds=round(elapsed, 3),
        )
    finally:
        if restart.thread.is_alive():
            restart.thread.join(30)
        with_app = private_node.eval("rabbit:is_running().")
        if with_app != "true":
            private_node.ctl("start_app")
        delete_queues(private_node.url, names["queue"], names["transient"])
        client = connect_blocking(private_node.url)
        try:
            client.wait(client.exchange_delete(names["exchange"]), timeout=5, raise_errors=False)
        finally:
            close_quietly(client)


def _forced_or_reset_unsent(cause: BaseException) -> bool:
    """Whether the loss was reported as the broker's 320, or as a reset that came with no close.

    The node usually sends connection.close 320 before it drops the socket, and both clients
    read it even when a write meets the reset first (`tests/integration/test_connection_loss.py`
    proves that against a fake broker that closes, then resets). About one restart in 25 here,
    RabbitMQ resets the socket without having sent the close: the client's `recv` reports
    ECONNRESET at once, which Linux does only once every byte that arrived before the reset
    has been read, so there was no close to report. The loss must still surface in time.
    """
    if isinstance(cause, puka.ConnectionForced):
        return cause.reply_code == 320
    return isinstance(cause, puka.ConnectionLost) and isinstance(
        cause.__cause__, ConnectionResetError
    )


def _f3_blocking(url: str, names: dict[str, str], restart: Restart, events: Events) -> set[int]:
    client = connect_blocking(url, reconnect=RECOVERY)
    client.on_connection_lost = events.on_lost
    client.on_recovered = events.on_recovered
    try:
        for call, kwargs in _topology(names):
            client.wait(getattr(client, call)(**kwargs), timeout=5)

        def on_message(promise: int, result: puka.Result) -> None:
            if result.is_error:
                return
            events.consumed.append(result["body"])
            if events.recovered:
                events.consumed_after_recovery += 1
            client.basic_ack(result)

        client.basic_consume(names["transient"], prefetch_count=50, callback=on_message)
        todo: deque[int] = deque(range(TOTAL))
        in_flight: deque[tuple[int, int]] = deque()
        confirmed: set[int] = set()
        sent = 0
        deadline = time.monotonic() + 45
        while todo or in_flight:
            assert time.monotonic() < deadline, "publishing did not finish in 45 s"
            if (
                len(confirmed) >= RESTART_AFTER
                and not restart.thread.is_alive()
                and not restart.stop_began
            ):
                restart.begin()
            if (
                todo
                and len(in_flight) < WINDOW
                and events.up
                and not _hold_back(sent, restart, events)
            ):
                n = todo.popleft()
                promise = client.basic_publish(
                    names["exchange"], "k", body=_body(n), headers=PERSISTENT
                )
                in_flight.append((n, promise))
                sent += 1
                if sent % BATCH == 0:
                    client.loop(timeout=PAUSE)
                continue
            if in_flight:
                n, promise = in_flight.popleft()
                result = client.wait(promise, timeout=10, raise_errors=False)
                assert result is not None, "a publish stayed pending for 10 s"
                if result.is_error:
                    assert result.exception is not None
                    events.failures.append(result.exception)
                    todo.append(n)
                else:
                    confirmed.add(n)
            else:
                client.loop(timeout=0.02)  # recovering, or waiting for the stop: drive it
        # the consumer sees the last messages
        until = time.monotonic() + 5
        while _body(TOTAL - 1) not in events.consumed and time.monotonic() < until:
            client.loop(timeout=0.05)
        assert queue_counts(url, names["transient"])[1] == 1, "the consumer was not restored"
        assert client.engine.recovery_errors == []
        return confirmed
    finally:
        close_quietly(client)


async def _f3_asyncio(
    url: str, names: dict[str, str], restart: Restart, events: Events
) -> set[int]:
    client = await puka_asyncio.connect(url, reconnect=RECOVERY)
    up = asyncio.Event()
    up.set()

    def lost(error: BaseException) -> None:
        events.on_lost(error)
        up.clear()

    def recovered() -> None:
        events.on_recovered()
        up.set()

    client.on_connection_lost = lost
    client.on_recovered = recovered
    async with client:
        for call, kwargs in _topology(names):
            await getattr(client, call)(**kwargs)
        consume = client.basic_consume(names["transient"], prefetch_count=50)

        last_seen = asyncio.Event()

        async def consumer() -> None:
            assert isinstance(consume, puka_asyncio.ConsumeHandle)
            async for message in consume:
                events.consumed.append(message["body"])
                if events.recovered:
                    events.consumed_after_recovery += 1
                client.basic_ack(message)
                if message["body"] == _body(TOTAL - 1):
                    last_seen.set()

        reading = asyncio.create_task(consumer())
        todo: deque[int] = deque(range(TOTAL))
        in_flight: deque[tuple[int, Any]] = deque()
        confirmed: set[int] = set()
        sent = 0
        while todo or in_flight:
            if (
                len(confirmed) >= RESTART_AFTER
                and not restart.stop_began
                and not restart.thread.is_alive()
            ):
                restart.begin()
            if (
                todo
                and len(in_flight) < WINDOW
                and up.is_set()
                and not _hold_back(sent, restart, events)
            ):
                n = todo.popleft()
                future = client.basic_publish(
                    names["exchange"], "k", body=_body(n), headers=PERSISTENT
                )
                in_flight.append((n, future))
                sent += 1
                if sent % BATCH == 0:
                    await asyncio.sleep(PAUSE)
                continue
            if in_flight:
                n, future = in_flight.popleft()
                try:
                    await asyncio.wait_for(asyncio.shield(future), 10)
                except (puka.ConnectionLost, puka.AMQPError) as exc:
                    events.failures.append(exc)
                    todo.append(n)
                else:
                    confirmed.add(n)
            else:
                await asyncio.sleep(0.02)  # recovering, or waiting for the stop
        await asyncio.wait_for(last_seen.wait(), 5)
        counts = await asyncio.to_thread(queue_counts, url, names["transient"])
        assert counts[1] == 1, "the consumer was not restored"
        assert not reading.done(), "the consume ended"
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        assert client.engine.recovery_errors == []
        return confirmed
