"""Issue 7 rows F9 and F10: resource alarms on the session's private node.

F9: a memory alarm (watermark 1e-9) raised under a publishing client with heartbeat 1 s, held
3 s, then cleared: ``on_blocked`` with the reason at most 1 s after the publish, no heartbeat
kill while blocked, every pending confirm completes after the unblock.

F10: a memory alarm, then a disk alarm (``rabbit_alarm:set_alarm``), cleared one by one: exactly
one blocked and one unblocked event, the unblocked one only once both are clear.

Alarms are checked clear before and after each test and cleared in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.broker_node import PrivateBrokerNode
from tests.faults.private_helpers import (
    ALARM_WATERMARK,
    DRIVERS,
    alarm_guard,
    clear_disk_alarm,
    close_quietly,
    connect_blocking,
    record,
    run_async,
    set_disk_alarm,
    set_watermark,
)

HOLD = 3.0
HEARTBEAT = 1
HELD_PUBLISHES = 50


class Alarms:
    """connection.blocked / unblocked events, with times."""

    def __init__(self) -> None:
        self.blocked: list[tuple[float, str]] = []
        self.unblocked: list[float] = []

    def on_blocked(self, reason: str) -> None:
        self.blocked.append((time.monotonic(), reason))

    def on_unblocked(self) -> None:
        self.unblocked.append(time.monotonic())


# ---------------------------------------------------------------------------
# F9: memory alarm


@pytest.mark.hurts_broker
@pytest.mark.parametrize("driver", DRIVERS)
def test_f9_memory_alarm(driver: str, private_node: PrivateBrokerNode) -> None:
    alarms = Alarms()
    began = time.monotonic()
    with alarm_guard(private_node) as watermark:
        if driver == "blocking":
            figures = _f9_blocking(private_node, watermark, alarms)
        else:
            figures = run_async(lambda: _f9_asyncio(private_node, watermark, alarms), 40)
    assert len(alarms.blocked) == 1, alarms.blocked
    blocked_at, reason = alarms.blocked[0]
    assert "memory" in reason.lower(), reason
    detection = blocked_at - figures.pop("published_at")
    assert detection <= 1.0
    assert len(alarms.unblocked) == 1
    unblocked_after_clear = alarms.unblocked[0] - figures.pop("cleared_at")
    record(
        "F9",
        driver,
        reason=reason,
        blocked_after_publish=round(detection, 3),
        held=HOLD,
        heartbeat=HEARTBEAT,
        unblocked_after_clear=round(unblocked_after_clear, 3),
        **figures,
        seconds=round(time.monotonic() - began, 3),
    )


def _f9_blocking(node: PrivateBrokerNode, watermark: str, alarms: Alarms) -> dict[str, Any]:
    client = connect_blocking(node.url, heartbeat=HEARTBEAT)
    client.on_blocked = alarms.on_blocked
    client.on_unblocked = alarms.on_unblocked
    try:
        assert client.engine.heartbeat == HEARTBEAT
        queue = client.wait(client.queue_declare(exclusive=True), timeout=5)["queue"]  # type: ignore[index]
        client.wait_for_all([client.basic_publish("", queue, body=b"before") for _ in range(10)])
        assert "memory" in set_watermark(node, ALARM_WATERMARK)
        published_at = time.monotonic()
        promises = [client.basic_publish("", queue, body=b"held") for _ in range(HELD_PUBLISHES)]
        # held for 3 s, inside wait: heartbeats go on, nothing completes
        assert client.wait(promises, timeout=HOLD) is None, "a publish completed during the alarm"
        assert client.blocked and client.engine.state.value == "open", client.engine.error
        assert client.engine.promises.pending() == HELD_PUBLISHES
        assert set_watermark(node, watermark) == "[]"
        cleared_at = time.monotonic()
        results = [client.wait(p, timeout=10) for p in promises]
        assert all(r is not None and r.name == "basic.ack" for r in results)
        completed = time.monotonic() - cleared_at
        assert not client.blocked
        count = client.wait(client.queue_declare(queue, passive=True), timeout=5)
        assert count is not None and count["message_count"] == 10 + HELD_PUBLISHES
        return {
            "published_at": published_at,
            "cleared_at": cleared_at,
            "held_confirms": HELD_PUBLISHES,
            "confirms_done_after_clear": round(completed, 3),
            "lost": 0,
        }
    finally:
        close_quietly(client)


async def _f9_asyncio(node: PrivateBrokerNode, watermark: str, alarms: Alarms) -> dict[str, Any]:
    async with await puka_asyncio.connect(node.url, heartbeat=HEARTBEAT) as client:
        client.on_blocked = alarms.on_blocked
        client.on_unblocked = alarms.on_unblocked
        assert client.engine.heartbeat == HEARTBEAT
        queue = (await client.queue_declare(exclusive=True))["queue"]
        await asyncio.gather(*[client.basic_publish("", queue, body=b"before") for _ in range(10)])  # type: ignore[arg-type]
        assert "memory" in set_watermark(node, ALARM_WATERMARK)
        published_at = time.monotonic()
        futures: list[Any] = [
            client.basic_publish("", queue, body=b"held") for _ in range(HELD_PUBLISHES)
        ]
        done, _ = await asyncio.wait(futures, timeout=HOLD)
        assert not done, "a publish completed during the alarm"
        assert client.blocked and client.engine.state.value == "open", client.engine.error
        assert set_watermark(node, watermark) == "[]"
        cleared_at = time.monotonic()
        results = await asyncio.wait_for(asyncio.gather(*futures), 10)
        assert all(r.name == "basic.ack" for r in results)
        completed = time.monotonic() - cleared_at
        assert not client.blocked
        count = await client.queue_declare(queue, passive=True)
        assert count["message_count"] == 10 + HELD_PUBLISHES
        return {
            "published_at": published_at,
            "cleared_at": cleared_at,
            "held_confirms": HELD_PUBLISHES,
            "confirms_done_after_clear": round(completed, 3),
            "lost": 0,
        }


# ---------------------------------------------------------------------------
# F10: overlapping alarms


@pytest.mark.hurts_broker
@pytest.mark.parametrize("driver", DRIVERS)
def test_f10_overlapping_alarms(driver: str, private_node: PrivateBrokerNode) -> None:
    alarms = Alarms()
    began = time.monotonic()
    with alarm_guard(private_node) as watermark:
        if driver == "blocking":
            figures = _f10_blocking(private_node, watermark, alarms)
        else:
            figures = run_async(lambda: _f10_asyncio(private_node, watermark, alarms), 40)
    assert len(alarms.blocked) == 1, alarms.blocked
    assert len(alarms.unblocked) == 1, alarms.unblocked
    assert alarms.unblocked[0] >= figures["disk_cleared_at"] - 0.05
    record(
        "F10",
        driver,
        blocked_events=len(alarms.blocked),
        unblocked_events=len(alarms.unblocked),
        reason=alarms.blocked[0][1],
        unblocked_after_last_clear=round(alarms.unblocked[0] - figures.pop("disk_cleared_at"), 3),
        **figures,
        seconds=round(time.monotonic() - began, 3),
    )


def _f10_blocking(node: PrivateBrokerNode, watermark: str, alarms: Alarms) -> dict[str, Any]:
    client = connect_blocking(node.url, heartbeat=HEARTBEAT)
    client.on_blocked = alarms.on_blocked
    client.on_unblocked = alarms.on_unblocked
    try:
        queue = client.wait(client.queue_declare(exclusive=True), timeout=5)["queue"]  # type: ignore[index]
        assert "memory" in set_watermark(node, ALARM_WATERMARK)
        promise = client.basic_publish("", queue, body=b"held")
        assert client.wait(promise, timeout=1.0) is None
        assert len(alarms.blocked) == 1 and client.blocked
        assert "disk" in set_disk_alarm(node)
        assert "memory" not in set_watermark(node, watermark)
        # memory clear, disk still raised: still blocked, nothing confirmed
        assert client.wait(promise, timeout=1.0) is None
        assert client.blocked and alarms.unblocked == [], "unblocked while the disk alarm is on"
        assert clear_disk_alarm(node) == "[]"
        disk_cleared_at = time.monotonic()
        result = client.wait(promise, timeout=10)
        assert result is not None and result.name == "basic.ack"
        assert not client.blocked
        client.loop(timeout=0.3)  # no second event trails
        return {"disk_cleared_at": disk_cleared_at, "confirmed_after": 1}
    finally:
        close_quietly(client)


async def _f10_asyncio(node: PrivateBrokerNode, watermark: str, alarms: Alarms) -> dict[str, Any]:
    async with await puka_asyncio.connect(node.url, heartbeat=HEARTBEAT) as client:
        client.on_blocked = alarms.on_blocked
        client.on_unblocked = alarms.on_unblocked
        queue = (await client.queue_declare(exclusive=True))["queue"]
        assert "memory" in set_watermark(node, ALARM_WATERMARK)
        publish: Any = client.basic_publish("", queue, body=b"held")
        done, _ = await asyncio.wait([publish], timeout=1.0)
        assert not done and len(alarms.blocked) == 1 and client.blocked
        assert "disk" in set_disk_alarm(node)
        assert "memory" not in set_watermark(node, watermark)
        done, _ = await asyncio.wait([publish], timeout=1.0)
        assert not done
        assert client.blocked and alarms.unblocked == [], "unblocked while the disk alarm is on"
        assert clear_disk_alarm(node) == "[]"
        disk_cleared_at = time.monotonic()
        result = await asyncio.wait_for(publish, 10)
        assert result.name == "basic.ack"
        assert not client.blocked
        await asyncio.sleep(0.3)
        return {"disk_cleared_at": disk_cleared_at, "confirmed_after": 1}


# ---------------------------------------------------------------------------
# F9, optional part: blocked_timeout

BLOCKED_TIMEOUT = 1.0


@pytest.mark.hurts_broker
@pytest.mark.parametrize("driver", DRIVERS)
def test_f9_blocked_timeout(driver: str, private_node: PrivateBrokerNode) -> None:
    alarms = Alarms()
    began = time.monotonic()
    with alarm_guard(private_node):
        if driver == "blocking":
            failed_at, error = _f9_timeout_blocking(private_node, alarms)
        else:
            failed_at, error = run_async(lambda: _f9_timeout_asyncio(private_node, alarms), 30)
    assert isinstance(error, puka.BlockedTimeout) and isinstance(error, puka.ConnectionLost)
    assert "blocked_timeout" in str(error) and "memory" in str(error)
    assert len(alarms.blocked) == 1
    after_blocked = failed_at - alarms.blocked[0][0]
    assert BLOCKED_TIMEOUT - 0.05 <= after_blocked <= BLOCKED_TIMEOUT + 0.5
    record(
        "F9-blocked_timeout", driver, blocked_timeout=BLOCKED_TIMEOUT,
        failed_after_blocked=round(after_blocked, 3), error=type(error).__name__,
        seconds=round(time.monotonic() - began, 3),
    )  # fmt: skip


def _f9_timeout_blocking(
    node: PrivateBrokerNode, alarms: Alarms
) -> tuple[float, BaseException | None]:
    client = puka.Client(node.url, heartbeat=HEARTBEAT, blocked_timeout=BLOCKED_TIMEOUT)
    client.on_blocked = alarms.on_blocked
    try:
        client.wait(client.connect(), timeout=5)
        queue = client.wait(client.queue_declare(exclusive=True), timeout=5)["queue"]  # type: ignore[index]
        assert "memory" in set_watermark(node, ALARM_WATERMARK)
        promise = client.basic_publish("", queue, body=b"held")
        with pytest.raises(puka.BlockedTimeout) as timed_out:
            client.wait(promise, timeout=5)
        failed_at = time.monotonic()
        assert client.engine.closed and client.socket() is None
        with pytest.raises(puka.ClientClosed):
            client.wait(client.queue_declare(queue, passive=True), timeout=1)
        return failed_at, timed_out.value
    finally:
        close_quietly(client)


async def _f9_timeout_asyncio(
    node: PrivateBrokerNode, alarms: Alarms
) -> tuple[float, BaseException | None]:
    client = await puka_asyncio.connect(
        node.url, heartbeat=HEARTBEAT, blocked_timeout=BLOCKED_TIMEOUT
    )
    client.on_blocked = alarms.on_blocked
    queue = (await client.queue_declare(exclusive=True))["queue"]
    assert "memory" in set_watermark(node, ALARM_WATERMARK)
    with pytest.raises(puka.BlockedTimeout) as timed_out:
        await asyncio.wait_for(client.basic_publish("", queue, body=b"held"), 5)
    failed_at = time.monotonic()
    assert client.engine.closed
    await asyncio.wait_for(client.__aexit__(None, None, None), 2)  # the transport was dropped
    return failed_at, timed_out.value


def test_f9_blocked_timeout_counts_from_the_drivers_clock() -> None:
    """Sans-I/O: the deadline starts when the driver next passes the time, never from a stale
    clock; an unblock cancels it; a second connection.blocked does not extend it."""
    from puka_spec import encode_method_frame, methods

    from testkit.fake_broker import FakeBroker

    broker = FakeBroker()
    engine = puka.Engine(puka.parse_url("amqp://guest:guest@localhost/?heartbeat=0"),
                         blocked_timeout=5.0)  # fmt: skip
    engine.handle_timer(0.0)

    def pump() -> None:
        for _ in range(50):
            out = engine.data_to_send()
            broker.receive_data(out)
            back = broker.data_to_send()
            engine.receive_data(back)
            if not out and not back:
                return

    connect = engine.connect()
    pump()
    assert engine.promises.take(connect.number) is not None and engine.state.value == "open"
    assert engine.next_timer() is None  # no heartbeats: the engine's clock stays at 0
    # blocked at t=100: due at once, then 5 s from the time the driver passes in
    assert broker.block()
    pump()
    timer = engine.next_timer()
    assert timer is not None and timer <= 100.0
    engine.handle_timer(100.0)
    assert engine.next_timer() == 105.0
    engine.handle_timer(104.9)
    assert not engine.closed
    assert broker.unblock()
    pump()
    assert engine.next_timer() is None and not engine.blocked
    # blocked again at t=200; a repeated connection.blocked does not move the deadline
    assert broker.block()
    pump()
    engine.handle_timer(200.0)
    pending = engine.rpc(methods.QueueDeclare(queue="q"))
    engine.receive_data(broker.data_to_send())
    engine.handle_timer(203.0)
    again = methods.ConnectionBlocked(reason="low on memory")
    engine.receive_data(encode_method_frame(0, again), 203.0)
    assert engine.next_timer() == 205.0
    engine.handle_timer(205.0)
    assert engine.closed
    result = engine.promises.take(pending.number)
    assert result is not None and isinstance(result.exception, puka.BlockedTimeout)
    assert isinstance(engine.error, puka.BlockedTimeout)
