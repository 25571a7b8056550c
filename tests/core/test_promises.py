"""The promise registry: results handed out once, unclaimed successes kept cheaply and bounded."""

from __future__ import annotations

import tracemalloc

import pytest
from puka import promises as promises_module
from puka.errors import ConnectionLost
from puka.promises import Promises
from puka.results import Result

CONFIRMED = Result("basic.ack")  # what a confirm resolves to: one shared, empty success


def test_an_unclaimed_success_keeps_its_result_not_its_promise() -> None:
    registry = Promises()
    promise = registry.new()
    registry.resolve(promise, CONFIRMED)
    assert promise.number not in registry.live  # nothing but the result is kept
    assert registry.take(promise.number) is CONFIRMED  # the very result, name and all
    assert registry.take(promise.number) == Result("ok")  # then a made-up success
    assert registry.take(promise.number + 1) is None  # never issued


def test_errors_and_non_empty_results_stay_with_their_promise_until_claimed() -> None:
    registry = Promises()
    failed, declared = registry.new(), registry.new()
    error = Result.error(ConnectionLost("gone"))
    registry.resolve(failed, error)
    registry.resolve(declared, Result("queue.declare_ok", {"queue": "q"}))
    assert failed.number in registry.live and declared.number in registry.live
    assert registry.take(failed.number) is error
    assert registry.take(declared.number) == {"queue": "q"}
    assert registry.live == {}


def test_the_oldest_unclaimed_successes_are_pushed_out_beyond_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(promises_module, "UNCLAIMED_SUCCESSES_KEPT", 3)
    registry = Promises()
    numbers = []
    for _ in range(5):
        promise = registry.new()
        registry.resolve(promise, CONFIRMED)
        numbers.append(promise.number)
    assert list(registry.unclaimed_ok) == numbers[2:]
    assert registry.take(numbers[0]) == Result("ok")  # forgotten: a made-up success
    assert registry.take(numbers[4]) is CONFIRMED


def test_a_callback_set_later_still_gets_an_unclaimed_result() -> None:
    registry = Promises()
    promise = registry.new()
    registry.resolve(promise, CONFIRMED)
    got: list[tuple[int, Result]] = []
    registry.set_callback(promise.number, lambda number, result: got.append((number, result)))
    assert promise.number in registry.callbacks_ready
    result = registry.take(promise.number)
    assert result is CONFIRMED
    assert registry.live == {} and not registry.callbacks_ready
    assert got == []  # the registry hands the result out; the driver calls the callback


def test_many_unclaimed_successes_cost_little_memory() -> None:
    """Fire-and-forget publishes nobody waits for: each kept success once held a promise and
    a deque, about 1 KiB; the bound (65536 of them) then meant some 70 MiB."""
    registry = Promises()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(promises_module.UNCLAIMED_SUCCESSES_KEPT + 1000):
            registry.resolve(registry.new(), CONFIRMED)
        growth = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(registry.unclaimed_ok) == promises_module.UNCLAIMED_SUCCESSES_KEPT
    assert registry.live == {}
    assert growth < 16 * 1024 * 1024, f"{growth / 2**20:.1f} MiB"


def test_peek_shows_the_newest_result_wherever_it_is_kept_and_leaves_it() -> None:
    registry = Promises()
    pending, confirmed, consume = registry.new(), registry.new(), registry.new(multi=True)
    registry.resolve(confirmed, CONFIRMED)  # kept apart from its promise
    first, second = Result("ok", {"body": b"1"}), Result("ok", {"body": b"2"})
    registry.resolve(consume, first, final=False)
    registry.resolve(consume, second, final=False)
    assert registry.peek(pending.number) is None
    assert registry.peek(confirmed.number) is CONFIRMED
    assert registry.peek(consume.number) is second
    assert registry.take(confirmed.number) is CONFIRMED  # peeking handed nothing out
    assert registry.take(consume.number) is first
    assert registry.peek(confirmed.number) is None  # claimed: nothing left to see


def test_all_finished_consumes_is_true_only_when_every_number_is_an_ended_consume() -> None:
    registry = Promises()
    ended, running, other = registry.new(multi=True), registry.new(multi=True), registry.new()
    assert not registry.all_finished_consumes([ended.number])  # none has ended yet
    registry.finish(ended)
    assert registry.all_finished_consumes([ended.number])
    assert not registry.all_finished_consumes([ended.number, running.number])
    assert not registry.all_finished_consumes([other.number])  # not a consume at all
    registry.resolve(running, Result("basic.deliver", {"body": b"last"}))  # ends, one to take
    assert not registry.all_finished_consumes([running.number])
    registry.take(running.number)
    assert registry.all_finished_consumes([ended.number, running.number])


# --- bare promises: a number and no object, for publishes nobody listens to ------------------


def test_a_bare_promise_is_pending_until_it_ends_and_leaves_no_object() -> None:
    registry = Promises()
    number = registry.new_bare()
    assert registry.take(number) is None  # pending, not a forgotten success
    assert registry.peek(number) is None
    assert registry.pending() == 1
    assert registry.live == {}
    registry.resolve_all([number], CONFIRMED)
    assert registry.pending() == 0 and registry.live == {} and not registry.bare
    assert registry.take(number) is CONFIRMED
    assert registry.take(number) == Result("ok")  # claimed: then a made-up success


def test_a_bare_promise_that_fails_keeps_its_error_until_claimed() -> None:
    registry = Promises()
    number = registry.new_bare()
    error = Result.error(ConnectionLost("gone"))
    registry.resolve_all([number], error)
    assert registry.peek(number) is error
    assert registry.take(number) is error
    assert registry.live == {}


def test_a_callback_set_on_a_pending_bare_promise_gets_its_result() -> None:
    registry = Promises()
    number = registry.new_bare()
    got: list[tuple[int, Result]] = []
    registry.set_callback(number, lambda n, result: got.append((n, result)))
    assert registry.live[number].callback is not None and not registry.bare  # promoted
    registry.resolve_all([number], CONFIRMED)  # the publisher still knows it by number
    assert number in registry.callbacks_ready
    assert registry.take(number) is CONFIRMED


def test_resolve_all_ends_objects_bare_and_promoted_promises_alike() -> None:
    registry = Promises()
    promise, bare, promoted = registry.new(), registry.new_bare(), registry.new_bare()
    registry.promote(promoted)
    registry.resolve_all([promise, bare, promoted], CONFIRMED)
    assert registry.pending() == 0
    for number in (promise.number, bare, promoted):
        assert registry.take(number) is CONFIRMED
    registry.resolve_all([bare], Result.error(ConnectionLost("late")))  # ended: ignored
    assert registry.take(bare) == Result("ok")


def test_bare_successes_are_bounded_like_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(promises_module, "UNCLAIMED_SUCCESSES_KEPT", 3)
    registry = Promises()
    numbers = [registry.new_bare() for _ in range(5)]
    registry.resolve_all(numbers, CONFIRMED)
    assert list(registry.unclaimed_ok) == numbers[2:]
    assert registry.take(numbers[0]) == Result("ok")  # forgotten: a made-up success


def test_fail_all_ends_pending_bare_promises_with_the_error() -> None:
    registry = Promises()
    number = registry.new_bare()
    registry.fail_all(ConnectionLost("gone"))
    result = registry.take(number)
    assert result is not None and isinstance(result.exception, ConnectionLost)
    assert not registry.bare
