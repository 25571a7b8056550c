"""What the engine decides for its drivers: which node to open a transport to, on the first
connect as in recovery, and when a transport that takes nothing means a dead broker."""

from __future__ import annotations

import pytest
from puka import Engine, Recovery, parse_urls
from puka.errors import ClientClosed, ConnectFailed, ConnectionLost, HeartbeatTimeout
from puka_spec import HEARTBEAT_FRAME, methods

from testkit.fake_broker import FakeBroker

from .test_recovery_rounds import URLS, pump


def test_the_first_connect_tries_each_node_once_in_turn() -> None:
    engine = Engine(parse_urls(URLS))
    promise = engine.connect()
    tried = []
    while engine.transport_wanted:
        tried.append(engine.params.port)
        if len(tried) < 3:
            engine.transport_failed(ConnectFailed(f"refused by {tried[-1]}"))
        else:
            engine.transport_ready()
    assert tried == [5001, 5002, 5003]
    engine.handle_timer(0.0)
    pump(engine, FakeBroker())
    result = engine.promises.take(promise.number)
    assert result is not None and result.name == "connection.open_ok"
    assert engine.params.port == 5003 and engine.is_open


def test_the_first_connect_fails_with_the_last_error_once_every_node_failed() -> None:
    engine = Engine(parse_urls(URLS))
    promise = engine.connect()
    while engine.transport_wanted:
        engine.transport_failed(ConnectFailed(f"refused by {engine.params.port}"))
    result = engine.promises.take(promise.number)
    assert result is not None and isinstance(result.exception, ConnectFailed)
    assert "5003" in str(result.exception)
    assert engine.closed and not engine.transport_wanted


def test_a_driver_that_never_says_transport_ready_is_not_asked_for_another() -> None:
    engine = Engine(parse_urls(URLS))
    engine.connect()
    engine.handle_timer(0.0)
    pump(engine, FakeBroker())
    assert engine.is_open and not engine.transport_wanted


def _open(heartbeat: int) -> tuple[Engine, FakeBroker]:
    engine = Engine(parse_urls(f"amqp://localhost/?heartbeat={heartbeat}"))
    broker = FakeBroker()
    engine.connect()
    engine.transport_ready()
    engine.handle_timer(0.0)
    pump(engine, broker)
    assert engine.is_open and engine.heartbeat == heartbeat
    return engine, broker


def _tick(engine: Engine, now: float) -> None:
    """The broker's heartbeat arrives at `now`, then the timers run: only writes stall."""
    engine.receive_data(HEARTBEAT_FRAME, now)
    engine.handle_timer(now)


def test_a_transport_that_takes_nothing_for_two_intervals_is_a_dead_broker() -> None:
    engine, _ = _open(heartbeat=10)
    _tick(engine, 1.0)
    engine.unwritten_since(1.0)
    _tick(engine, 14.0)
    assert engine.next_timer() == pytest.approx(14.0 + 5.0)  # our next heartbeat first
    _tick(engine, 19.0)
    assert engine.is_open
    assert engine.next_timer() == pytest.approx(21.0)  # then the stall's deadline, 1 + 2 * 10
    _tick(engine, 21.0)
    assert engine.closed
    assert isinstance(engine.error, HeartbeatTimeout)
    assert "took nothing we sent" in str(engine.error)


def test_progress_or_a_blocked_connection_restarts_the_stall_clock() -> None:
    engine, _ = _open(heartbeat=10)
    engine.unwritten_since(1.0)
    engine.unwritten_since(None)  # it took everything
    for now in (8.0, 16.0, 24.0, 30.0):
        _tick(engine, now)
    assert engine.is_open
    engine.unwritten_since(30.0)
    engine.blocked = True  # a resource alarm: the broker reads nothing, on purpose
    for now in (38.0, 46.0, 55.0):
        _tick(engine, now)
    assert engine.is_open
    engine.blocked = False
    for now in (63.0, 70.0):  # 15 s after the clock restarted at 55
        _tick(engine, now)
    assert engine.is_open
    _tick(engine, 75.0)
    assert engine.closed and isinstance(engine.error, HeartbeatTimeout)


def test_a_dropped_transport_ends_the_connection_even_with_recovery() -> None:

    engine = Engine(parse_urls(URLS), recovery=Recovery(initial_delay=0.01, jitter=0))
    promise = engine.connect()
    engine.transport_ready(0.0)
    engine.handle_timer(0.0)
    pump(engine, FakeBroker())
    pending = engine.rpc(methods.QueueDeclare(queue="q"))
    engine.transport_dropped(1.0)
    assert engine.closed and not engine.recovering and engine.next_timer() is None
    result = engine.promises.take(pending.number)
    assert result is not None and isinstance(result.exception, ConnectionLost)
    assert isinstance(result.exception.__cause__, ClientClosed)
    assert isinstance(engine.error, ClientClosed)
    assert engine.promises.take(promise.number) is not None  # the connect's open-ok


def test_a_dropped_transport_stops_a_recovery_under_way() -> None:

    engine = Engine(parse_urls(URLS), recovery=Recovery(initial_delay=1.0, jitter=0))
    engine.connect()
    engine.transport_ready(0.0)
    engine.handle_timer(0.0)
    pump(engine, FakeBroker())
    engine.connection_lost(None, 2.0)
    assert engine.recovering
    engine.transport_dropped(2.5)
    engine.handle_timer(5.0)
    assert engine.closed and not engine.transport_wanted
