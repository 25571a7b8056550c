"""At-least-once publishes (`retry=`) in the engine, against the fake broker.

Nacks and lost connections are sent again with back-off until the broker confirms, or the
policy gives up with `PublishFailed`; a channel that nacks a message being retried is left for a
new one; recovery holds retries until the connection is back; order is kept as documented.
"""

from __future__ import annotations

import logging
import pickle

import pytest
from puka import Engine, Recovery, RetryPolicy, parse_url
from puka.errors import ClientClosed, ConnectionLost, PublishFailed, PublishNacked
from puka.promises import Promise
from puka.results import Result
from puka_spec.exceptions import NotFound

from testkit.fake_broker import FakeBroker
from tests.core.test_engine_pair import Pair

FAST = RetryPolicy(initial_delay=0.1, multiplier=2.0, max_delay=1.0, jitter=0.0)


def _open(seed: int = 0, **kw: object) -> Pair:
    pair = Pair(seed, **kw)
    pair.broker.declare_queue("q")
    pair.open()
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # the publish channel
    return pair


def _channel(pair: Pair) -> int:
    publisher = pair.engine.publisher
    assert publisher is not None
    return publisher.channel.number


def _run_until(pair: Pair, promise: Promise | int, start: float, end: float) -> Result | None:
    """Pump the pair and run the engine's timers from `start` to `end` in steps of 0.05 s;
    the promise's result once it has one."""
    number = promise if isinstance(promise, int) else promise.number
    now = start
    while now <= end:
        pair.engine.handle_timer(now)
        pair.pump()
        result = pair.engine.promises.take(number)
        if result is not None:
            return result
        now = round(now + 0.05, 6)
    return None


def _ids(pair: Pair) -> list[str]:
    return [str(m.properties.message_id) for m in pair.broker.published[1:]]


@pytest.mark.parametrize("bare", [False, True])
def test_a_nacked_message_is_sent_again_on_a_new_channel_until_confirmed(bare: bool) -> None:
    pair = _open()
    stuck, old = _channel(pair), pair.engine.publisher
    pair.broker.stuck_channels.add(stuck)
    promise = pair.engine.publish("", "q", False, None, b"m", retry=FAST, bare=bare)
    pair.pump()  # nacked
    number = promise if isinstance(promise, int) else promise.number
    assert pair.engine.promises.take(number) is None, "a nack does not end it"
    assert pair.engine.next_timer() == float("-inf")  # its failure is timed at once
    result = _run_until(pair, promise, 1.0, 2.0)
    assert result is not None and not result.is_error, result
    assert pair.engine.replaced_publish_channels == 1
    assert pair.engine.publisher is not old
    assert not pair.broker.stuck_channels  # closed once nothing was in flight on it (its
    # number is free again: the new channel may have it)
    assert pair.engine.retried_publishes == 1
    ids = _ids(pair)
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0] != "None"  # one id, sent twice


def test_replacing_channels_warns_at_powers_of_two(caplog: pytest.LogCaptureFixture) -> None:
    """A failover may replace dozens of channels in a second: 1, 2, 4, 8... are warnings."""
    pair = _open()
    policy = RetryPolicy(attempts=10, initial_delay=0.1, jitter=0.0)
    with caplog.at_level(logging.DEBUG, logger="puka"):
        pair.broker.nack_next = 9  # the first nine sends are nacked, each on a new channel
        promise = pair.engine.publish("", "q", False, None, b"m", retry=policy)
        result = _run_until(pair, promise, 1.0, 60.0)
    assert result is not None and not result.is_error
    assert pair.engine.replaced_publish_channels == 9
    levels = [r.levelno for r in caplog.records if "publishing on a new channel" in r.message]
    warned = [i + 1 for i, level in enumerate(levels) if level == logging.WARNING]
    assert len(levels) == 9 and warned == [1, 2, 4, 8]


def test_the_caller_message_id_is_kept_and_its_dicts_are_not_changed() -> None:
    pair = _open()
    headers = {"message_id": "mine", "x": 1}
    properties: dict[str, object] = {"content_type": "text/plain"}
    pair.wait(pair.engine.publish("", "q", False, headers, b"a", retry=FAST))
    pair.wait(pair.engine.publish("", "q", False, None, b"b", retry=FAST, properties=properties))
    assert headers == {"message_id": "mine", "x": 1} and properties == {
        "content_type": "text/plain"
    }
    first, second = _ids(pair)
    assert first == "mine"
    assert second not in {"mine", "None"}


def test_a_policy_may_leave_messages_without_an_id() -> None:
    pair = _open()
    as_is = RetryPolicy(add_message_id=False)
    pair.wait(pair.engine.publish("", "q", False, None, b"a", retry=as_is))
    assert _ids(pair) == ["None"]


def test_attempts_bound_ends_with_publish_failed_carrying_the_last_cause() -> None:
    pair = _open()
    pair.broker.nack_next = 100
    promise = pair.engine.publish("", "q", False, None, b"m", retry=RetryPolicy(attempts=3))
    result = _run_until(pair, promise, 1.0, 10.0)
    assert result is not None
    error = result.exception
    assert isinstance(error, PublishFailed), repr(error)
    assert error.attempts == 3
    assert isinstance(error.cause, PublishNacked) and error.__cause__ is error.cause
    assert "sent 3 times" in str(error)
    assert len(pair.broker.published) == 1 + 3
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is PublishFailed and again.attempts == 3
    assert pair.engine.retried_publishes == 2


def test_deadline_counts_from_the_first_failure() -> None:
    pair = _open()
    pair.broker.nack_next = 10**6
    policy = RetryPolicy(deadline=1.0, initial_delay=0.1, max_delay=0.2, jitter=0.0)
    promise = pair.engine.publish("", "q", False, None, b"m", retry=policy)
    pair.pump()
    result = _run_until(pair, promise, 5.0, 5.95)
    assert result is None, "given up before its deadline"
    result = _run_until(pair, promise, 6.0, 6.5)
    assert result is not None and isinstance(result.exception, PublishFailed)
    assert "1 s after its first failure" in str(result.exception)
    assert 5 <= len(pair.broker.published) - 1 <= 8  # about one send per 0.2 s


def test_an_error_that_sending_again_cannot_change_ends_it_at_once() -> None:
    pair = _open()
    promise = pair.engine.publish("missing", "q", False, None, b"m", retry=FAST)
    result = pair.wait(promise)
    assert isinstance(result.exception, NotFound)
    retrier = pair.engine._retrier
    assert retrier is not None and not retrier.guarded and retrier.next() is None


def test_successes_leave_nothing_behind() -> None:
    pair = _open()
    pair.broker.confirm_batch = 50
    numbers = [
        pair.engine.publish("", "q", False, None, b"m", retry=True, bare=True) for _ in range(200)
    ]
    pair.pump()
    pair.broker.flush_confirms()
    pair.pump()
    assert all(pair.engine.promises.take(n) is not None for n in numbers)
    retrier = pair.engine._retrier
    assert retrier is not None and not retrier.guarded and retrier.next() is None
    assert not pair.engine.promises.bare


def _recovering_pair() -> Pair:
    pair = _open(3, recovery=Recovery(initial_delay=0.5, jitter=0.0))
    pair.broker.confirm_batch = 10**6  # nothing is confirmed before the loss
    return pair


def _reconnect(pair: Pair, now: float) -> None:
    """The back-off is over at `now`: a new transport to a new broker, opened."""
    pair.engine.handle_timer(now)
    assert pair.engine.transport_wanted
    pair.broker = FakeBroker(seed=4)
    pair.engine.transport_ready(now)
    pair.pump()
    assert pair.engine.is_open


def test_a_lost_connection_holds_the_retries_and_sends_them_once_recovered() -> None:
    pair = _recovering_pair()
    engine = pair.engine
    numbers = [
        engine.publish("", "q", False, None, b"%d" % i, retry=FAST, bare=True) for i in range(5)
    ]
    pair.pump()
    lost_before = pair.broker.published[1:]
    assert len(lost_before) == 5
    engine.connection_lost(ConnectionResetError(104, "reset"), 1.0)
    assert engine.recovering
    during = engine.publish("", "q", False, None, b"5", retry=FAST, bare=True)  # not failed
    numbers.append(during)
    assert all(engine.promises.take(n) is None for n in numbers)
    engine.handle_timer(1.0)  # the retries are timed, and due before the connection is back
    engine.handle_timer(1.3)
    assert not engine.data_to_send()
    _reconnect(pair, 1.5)
    pair.broker.flush_confirms()
    pair.pump()
    results = [engine.promises.take(n) for n in numbers]
    assert all(r is not None and not r.is_error for r in results), results
    bodies = [m.body for m in pair.broker.published]
    assert bodies == [b"%d" % i for i in range(6)]  # in call order on the new connection
    ids = [m.properties.message_id for m in pair.broker.published]
    assert ids == [m.properties.message_id for m in lost_before] + [ids[5]]


def test_a_lost_connection_without_recovery_gives_up_with_publish_failed() -> None:
    pair = _open(5)
    pair.broker.confirm_batch = 10**6
    promise = pair.engine.publish("", "q", False, None, b"m", retry=FAST)
    pair.pump()
    pair.engine.connection_lost(ConnectionResetError(104, "reset"), 1.0)
    result = pair.engine.promises.take(promise.number)
    assert result is not None and isinstance(result.exception, PublishFailed)
    assert isinstance(result.exception.cause, ConnectionLost)
    assert "the connection ended" in str(result.exception)


def test_a_retry_waiting_when_the_connection_ends_gives_up_at_once() -> None:
    pair = _open(6)
    pair.broker.nack_next = 1
    promise = pair.engine.publish("", "q", False, None, b"m", retry=FAST)
    pair.pump()
    pair.engine.handle_timer(1.0)  # timed, not yet due
    pair.engine.connection_lost(None, 1.01)
    result = pair.engine.promises.take(promise.number)
    assert result is not None and isinstance(result.exception, PublishFailed)
    assert isinstance(result.exception.cause, PublishNacked)
    with pytest.raises(ClientClosed):
        pair.engine.publish("", "q", False, None, b"m", retry=FAST)


def test_close_waits_for_the_retries() -> None:
    pair = _open(7)
    pair.broker.nack_next = 1
    promise = pair.engine.publish("", "q", False, None, b"m", retry=FAST)
    pair.pump()
    closing = pair.engine.close()
    pair.pump()
    assert pair.engine.is_open, "closed with a retry pending"
    result = _run_until(pair, promise, 1.0, 2.0)
    assert result is not None and not result.is_error
    pair.pump()
    assert pair.engine.promises.take(closing.number) is not None
    assert pair.engine.closed


def test_ordered_sends_one_at_a_time_and_keeps_call_order() -> None:
    pair = _open(8)
    ordered = RetryPolicy(initial_delay=0.1, jitter=0.0, ordered=True)
    pair.broker.nack_next = 1  # the first one is nacked once
    promises = [
        pair.engine.publish("", "q", False, None, b"%d" % i, retry=ordered) for i in range(4)
    ]
    pair.pump()
    assert [m.body for m in pair.broker.published[1:]] == [b"0"]  # the rest wait their turn
    for promise in promises:
        result = _run_until(pair, promise, 1.0, 3.0)
        assert result is not None and not result.is_error
    bodies = [b"0", b"1", b"2", b"3"]
    assert [m.body for m in pair.broker.published[1:]] == [b"0", *bodies]
    assert [m.body for m in pair.broker.queues["q"].messages] == [b"first", *bodies]


def test_unordered_retries_go_out_behind_later_publishes() -> None:
    pair = _open(9)
    pair.broker.nack_next = 1
    first = pair.engine.publish("", "q", False, None, b"0", retry=FAST)
    second = pair.engine.publish("", "q", False, None, b"1", retry=FAST)
    pair.pump()
    assert _run_until(pair, first, 1.0, 2.0) is not None
    assert pair.engine.promises.take(second.number) is not None
    assert [m.body for m in pair.broker.queues["q"].messages] == [b"first", b"1", b"0"]


@pytest.mark.parametrize(
    ("retry", "error"),
    [
        ("yes", TypeError),
        (1, TypeError),
    ],
)
def test_a_wrong_retry_argument_is_a_type_error(retry: object, error: type[Exception]) -> None:
    from puka.engine.retrying import retry_policy

    with pytest.raises(error, match="basic_publish: retry must be"):
        retry_policy(retry, "basic_publish")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attempts": None, "deadline": None}, "needs a bound"),
        ({"attempts": 0}, "attempts must be"),
        ({"attempts": True}, "attempts must be"),
        ({"deadline": -1}, "deadline must be"),
        ({"deadline": float("inf")}, "deadline must be"),
        ({"initial_delay": "1"}, "initial_delay must be"),
        ({"multiplier": 0.5}, "multiplier must be"),
        ({"jitter": 1.0}, "jitter must be"),
        ({"ordered": 1}, "ordered must be"),
        ({"add_message_id": None}, "add_message_id must be"),
    ],
)
def test_a_wrong_policy_is_a_value_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_refuses_channel_of() -> None:
    engine = Engine(parse_url("amqp://localhost/"))
    with pytest.raises(ValueError, match="not channel_of"):
        engine.publish("", "q", False, None, b"m", None, 1, retry=FAST)
