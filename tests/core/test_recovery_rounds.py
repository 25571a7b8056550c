"""Recovery over several broker URLs: rounds of attempts, back-off between rounds only."""

from __future__ import annotations

import pytest
from puka import Engine, Recovery, parse_urls
from puka.engine.recovery import recovery_for
from puka.errors import ConnectFailed

from testkit.fake_broker import FakeBroker

URLS = "amqp://localhost:5001/,amqp://localhost:5002/,amqp://localhost:5003/"


def pump(engine: Engine, broker: FakeBroker) -> None:
    for _ in range(100):
        to_broker = engine.data_to_send()
        broker.receive_data(to_broker)
        to_client = broker.data_to_send()
        engine.receive_data(to_client)
        if not to_broker and not to_client:
            return
    raise AssertionError("never quiet")


def open_engine(recovery: Recovery) -> Engine:
    engine = Engine(parse_urls(URLS), recovery=recovery)
    engine.handle_timer(0.0)
    promise = engine.connect()
    pump(engine, FakeBroker())
    result = engine.promises.take(promise.number)
    assert result is not None and result.name == "connection.open_ok"
    return engine


def attempt(engine: Engine, now: float) -> int:
    """Run the timer at `now`; the port of the node the engine wants a transport to."""
    assert engine.next_timer() == pytest.approx(now)
    engine.handle_timer(now)
    assert engine.transport_wanted
    return engine.params.port


def test_a_round_tries_every_node_at_once_then_backs_off() -> None:
    engine = open_engine(Recovery(initial_delay=1.0, multiplier=2.0, max_delay=8.0, jitter=0.0))
    engine.handle_timer(10.0)
    engine.connection_lost(None, 10.0)
    ports = []
    for now in (11.0, 11.0, 11.0, 13.0, 13.0, 13.0, 17.0):
        ports.append(attempt(engine, now))
        engine.transport_failed(ConnectFailed("refused"), now)
    # the node just lost first, after the first delay; the others right after it; then the
    # back-off doubles between rounds
    assert ports == [5001, 5002, 5003, 5001, 5002, 5003, 5001]
    assert engine.next_timer() == pytest.approx(17.0)  # the rest of the third round
    assert not engine.closed


def test_max_attempts_counts_rounds() -> None:
    engine = open_engine(Recovery(initial_delay=1.0, jitter=0.0, max_attempts=2))
    engine.handle_timer(10.0)
    engine.connection_lost(None, 10.0)
    for now in (11.0, 11.0, 11.0, 13.0, 13.0):
        attempt(engine, now)
        engine.transport_failed(ConnectFailed("refused"), now)
        assert not engine.closed
    attempt(engine, 13.0)
    engine.transport_failed(ConnectFailed("refused"), 13.0)
    assert engine.closed
    assert isinstance(engine.error, ConnectFailed)


def test_recovery_lands_on_the_next_node_and_reports_it() -> None:
    engine = open_engine(Recovery(initial_delay=0.5, jitter=0.0))
    recovered: list[int] = []
    engine.on_recovered = lambda: recovered.append(engine.params.port)
    engine.handle_timer(1.0)
    engine.connection_lost(None, 1.0)
    assert attempt(engine, 1.5) == 5001
    engine.transport_failed(ConnectFailed("refused"), 1.5)
    assert attempt(engine, 1.5) == 5002
    engine.transport_ready()
    pump(engine, FakeBroker())
    assert recovered == [5002]
    assert engine.params.port == 5002
    assert engine.state.value == "open"


def test_shuffle_tries_the_urls_in_a_random_order() -> None:
    import puka

    firsts = set()
    for _ in range(60):
        client = puka.Client(URLS, shuffle=True)
        ports = [params.port for params in client.engine.addresses]
        assert sorted(ports) == [5001, 5002, 5003]
        firsts.add(ports[0])
    assert firsts == {5001, 5002, 5003}
    assert [p.port for p in puka.Client(URLS).engine.addresses] == [5001, 5002, 5003]


def test_a_clients_reconnect_argument_becomes_its_recovery() -> None:
    timings = Recovery(initial_delay=0.5)
    assert recovery_for(True) == Recovery()
    assert recovery_for(timings) is timings
    assert recovery_for(False) is None
