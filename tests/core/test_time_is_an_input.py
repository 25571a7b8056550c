"""Time is an input: every deadline counts from the `now` passed with the input that set it.

The engine keeps no clock. A deadline set by an input that came with its time (`now`) counts
from that time; one set by an input without it is due at once, and counts from the `now` of
the next `handle_timer`. Never from a time the engine saw earlier: a client that sat idle
for a while must still wait the whole back-off before it reconnects.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from puka import Engine, Recovery, parse_url, parse_urls
from puka.errors import ConnectFailed
from puka_spec import HEARTBEAT_FRAME, encode_method_frame, methods

from testkit.fake_broker import FakeBroker


def pump(engine: Engine, broker: FakeBroker, now: float | None = None) -> None:
    for _ in range(100):
        to_broker = engine.data_to_send()
        broker.receive_data(to_broker)
        to_client = broker.data_to_send()
        engine.receive_data(to_client, now)
        if not to_broker and not to_client:
            return
    raise AssertionError("never quiet")


def open_engine(
    url: str = "amqp:///?heartbeat=0",
    *,
    recovery: Recovery | None = None,
    blocked_timeout: float | None = None,
) -> Engine:
    """An engine opened at t=0 (the driver ran its timers once, then never again)."""
    engine = Engine(parse_urls(url), recovery=recovery, blocked_timeout=blocked_timeout)
    promise = engine.connect()
    engine.transport_ready(0.0)
    engine.handle_timer(0.0)
    pump(engine, FakeBroker(), 0.0)
    assert engine.promises.take(promise.number) is not None and engine.is_open
    return engine


def fires_at(engine: Engine, when: float, fired: Callable[[], bool]) -> None:
    """The next timer is at `when`: nothing happens just before it, `fired()` at it."""
    assert engine.next_timer() == pytest.approx(when)
    engine.handle_timer(when - 0.1)
    assert not fired()
    engine.handle_timer(when)
    assert fired()


def test_the_first_reconnect_waits_the_whole_back_off_after_an_idle_spell() -> None:
    # Recovery(initial_delay=3) after 2.9 s idle used to reconnect after 0.1 s: the back-off
    # was added to the last time the engine had seen (t=0), not to the time of the loss
    engine = open_engine(recovery=Recovery(initial_delay=3.0, jitter=0.0))
    engine.connection_lost(None, now=2.9)
    assert engine.recovering
    fires_at(engine, 5.9, lambda: engine.transport_wanted)


def test_a_loss_without_its_time_is_timed_by_the_next_timer() -> None:
    engine = open_engine(recovery=Recovery(initial_delay=3.0, jitter=0.0))
    engine.connection_lost(None)  # a driver that does not pass the time
    timer = engine.next_timer()
    assert timer is not None and timer < 0.0  # due at once: the engine cannot know when
    engine.handle_timer(2.9)  # the back-off counts from here
    assert not engine.transport_wanted
    assert engine.next_timer() == pytest.approx(5.9)
    engine.handle_timer(5.9)
    assert engine.transport_wanted


def test_the_next_node_of_a_round_is_tried_at_the_time_of_the_failure() -> None:
    engine = open_engine(
        "amqp://localhost:5001/?heartbeat=0,amqp://localhost:5002/?heartbeat=0",
        recovery=Recovery(initial_delay=1.0, jitter=0.0),
    )
    engine.connection_lost(None, now=10.0)
    assert engine.next_timer() == pytest.approx(11.0)
    engine.handle_timer(11.0)
    engine.transport_failed(ConnectFailed("refused"), now=11.5)
    assert engine.next_timer() == pytest.approx(11.5)  # the other node, at once
    engine.handle_timer(11.5)
    assert engine.transport_wanted and engine.params.port == 5002
    engine.transport_failed(ConnectFailed("refused"), now=12.0)
    assert engine.next_timer() == pytest.approx(14.0)  # the next round, after its back-off


def test_a_recovering_handshake_times_out_from_the_transports_time() -> None:
    engine = open_engine(recovery=Recovery(initial_delay=1.0, jitter=0.0))
    engine.connection_lost(None, now=10.0)
    engine.handle_timer(11.0)
    assert engine.transport_wanted
    engine.transport_ready(20.0)  # the transport took 9 s to open
    timeout = engine.params.connection_timeout
    assert engine.next_timer() == pytest.approx(20.0 + timeout)
    engine.handle_timer(20.0 + timeout - 0.1)
    assert not engine.recovering
    engine.handle_timer(20.0 + timeout)
    assert engine.recovering  # the attempt failed: back to waiting for the next one


def test_heartbeats_start_at_the_time_of_the_tune() -> None:
    engine = Engine(parse_url("amqp:///?heartbeat=10"))
    engine.connect()
    engine.transport_ready(100.0)
    engine.handle_timer(100.0)
    broker = FakeBroker()
    pump(engine, broker, 100.0)
    assert engine.is_open and engine.heartbeat == 10
    assert engine.next_timer() == pytest.approx(100.0)  # the first tick: at the tune's time
    engine.handle_timer(100.0)
    assert engine.next_timer() == pytest.approx(105.0)
    engine.receive_data(HEARTBEAT_FRAME, 105.0)
    engine.handle_timer(105.0)
    assert engine.data_to_send() == HEARTBEAT_FRAME  # nothing else was sent since the tick


def test_a_blocked_connection_times_out_from_the_time_it_was_blocked() -> None:
    engine = open_engine(blocked_timeout=5.0)
    engine.handle_timer(50.0)  # the driver ran its timers long ago, then was idle
    blocked = encode_method_frame(0, methods.ConnectionBlocked(reason="low on memory"))
    engine.receive_data(blocked, 100.0)
    assert engine.blocked
    fires_at(engine, 105.0, lambda: engine.closed)


def test_a_blocked_frame_without_its_time_is_timed_by_the_next_timer() -> None:
    engine = open_engine(blocked_timeout=5.0)
    blocked = encode_method_frame(0, methods.ConnectionBlocked(reason="low on memory"))
    engine.receive_data(blocked)
    timer = engine.next_timer()
    assert timer is not None and timer < 0.0
    engine.handle_timer(100.0)
    assert engine.next_timer() == pytest.approx(105.0)


def test_the_engine_keeps_no_clock() -> None:
    engine = open_engine()
    assert not any("clock" in name for name in dir(engine))
