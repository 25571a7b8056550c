"""Promises: numbered handles on operations in flight, and the results they resolve to.

A promise gets results (one, or many for a consume); each result is handed out once, either to
the promise's callback (`fn(promise_number, result)`) or to `wait`. The registry knows which
promises with a callback have results waiting (`callbacks_ready`) and forgets a promise once it
is finished and its last result handed out. A successful result nobody claims is kept for a
while, then dropped: waiting on a forgotten promise number returns an empty success result,
because only successes are ever forgotten (errors stay until claimed).

A promise is an object (`Promise`) when something will ask about it before it ends: a callback,
an adapter listening to `on_ready`, an operation that feeds it several results. A publish that
no one listens to is a *bare* number (`new_bare`): no object, only an entry in `bare` until it
ends (`resolve_all`), which is what makes a hundred thousand publishes in flight cheap.
`take`, `peek`, `set_callback` and `pending` answer alike for both kinds; `promote` turns a
bare number into an object when one is needed after all. A bare promise that ends with an
empty success is reported to `on_bare_ended`, not `on_ready`; one that fails becomes an object
holding the error, reported to `on_ready`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from puka.results import Result

__all__ = ["Callback", "Guard", "Promise", "Promises"]

Callback = Callable[[int, Result], Any]
"""A promise callback: called with the promise number and one result."""

UNCLAIMED_SUCCESSES_KEPT = 65536
"""How many finished, successful, never-waited-for promises are remembered."""


_NOT_BARE = 1
"""What `bare.pop` gives for a number not there (its entries hold `None`)."""

_NO_RESULTS: deque[Result] = deque(maxlen=0)
"""The results of a promise that has had none yet: shared, and it can hold nothing (a deque
costs about 600 bytes, and thousands of operations in flight may each have a promise)."""


class Guard(Protocol):
    """Sees the final result of some promises before they end, and may keep them from ending
    (the at-least-once publisher, `puka.engine.retrying`)."""

    guarded: dict[int, Any]
    """The numbers of the promises it guards."""

    def outcome(self, number: int, result: Result) -> Result | None:
        """The result guarded promise `number` ends with, or `None`: it does not end."""

    def succeeded(self, numbers: list[int]) -> None:
        """These guarded promises end with a success (the guard lets every success end)."""


class Promise:
    """One operation's handle: its number, callback and undelivered results."""

    __slots__ = ("callback", "done", "multi", "number", "op", "results")

    def __init__(self, number: int, callback: Callback | None, multi: bool) -> None:
        self.number = number
        self.callback = callback
        self.multi = multi  # a consume: many results
        self.done = False  # no more results will come
        self.results: deque[Result] = _NO_RESULTS  # a deque of its own from the first result
        self.op: Any = None  # the operation that feeds it, while it runs

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<Promise {self.number} {state} results={len(self.results)}>"


class Promises:
    """The registry of live promises."""

    def __init__(self) -> None:
        self._next = 1
        self.live: dict[int, Promise] = {}
        self.callbacks_ready: set[int] = set()  # promises with a callback and results to run
        self.unclaimed_ok: OrderedDict[int, Result] = OrderedDict()
        """The empty successes of finished promises nobody claimed yet, oldest first, by number
        (no promise kept). None has a callback and none is an error: popping one is `take`."""
        self._finished_multi: OrderedDict[int, None] = OrderedDict()  # ended consumes, newest kept
        self.on_ready: Callable[[Promise], None] | None = None
        """Called when a promise object gets a result (adapters resolve their futures here)."""
        self.on_bare_ended: Callable[[Sequence[Promise | int]], None] | None = None
        """Called by `resolve_all` with what it ended with an empty success: how a driver that
        makes bare promises and does not wait by number learns that they ended. Objects, and
        numbers promoted to objects (still in `live`), come too: `on_ready` has them already."""
        self.bare: dict[int, None] = {}
        """The bare promise numbers not yet ended (see the module docstring)."""
        self.watchers: dict[int, Callable[[Result], None]] = {}
        """Functions told a promise's final result when it ends, by promise number (`watch`)."""
        self.guard: Guard | None = None
        """Asked first about the final result of each promise it guards (`Guard`)."""

    def new(self, callback: Callback | None = None, *, multi: bool = False) -> Promise:
        """A new promise."""
        promise = Promise(self._next, callback, multi)
        self._next += 1
        self.live[promise.number] = promise
        return promise

    def new_bare(self) -> int:
        """A new promise without an object: its number, to end with `resolve_all`."""
        number = self._next
        self._next = number + 1
        self.bare[number] = None
        return number

    def watch(self, promise: Promise | int, watcher: Callable[[Result], None]) -> None:
        """Call `watcher(result)` once with the final result of unfinished `promise` (an object
        or a bare number) when it ends: how a hook (`puka.hooks`) learns a publish's outcome."""
        self.watchers[promise.number if isinstance(promise, Promise) else promise] = watcher

    def _tell_watchers(self, promises: Sequence[Promise | int], result: Result) -> None:
        watchers = self.watchers
        for promise in promises:
            number = promise.number if isinstance(promise, Promise) else promise
            watcher = watchers.pop(number, None)
            if watcher is not None:
                watcher(result)

    def promote(self, number: int) -> Promise:
        """The object of unfinished promise `number`: made now if it is bare."""
        if self.bare.pop(number, _NOT_BARE) is None:
            return self._object_for(number)
        return self.live[number]

    def _object_for(self, number: int) -> Promise:
        promise = self.live[number] = Promise(number, None, False)
        return promise

    def resolve_all(self, promises: Sequence[Promise | int], result: Result) -> None:
        """End each of `promises`, objects or bare numbers, with the same final `result`.

        A confirm that settles thousands of publishes at once ends them here, in one call.
        """
        guard = self.guard
        if guard is not None and guard.guarded:
            promises = self._unguarded(guard, promises, result)
            if not promises:
                return
        if self.watchers:
            self._tell_watchers(promises, result)
        bare, live, unclaimed = self.bare, self.live, self.unclaimed_ok
        # an empty success: a bare one leaves no object, only its result (an error, or a
        # result with content, is kept on an object until claimed)
        alone = not result and not result.is_error
        for promise in promises:
            if isinstance(promise, Promise):
                self.resolve(promise, result)
            elif bare.pop(promise, _NOT_BARE) is None:
                if alone:
                    unclaimed[promise] = result
                else:
                    self.resolve(self._object_for(promise), result)
            elif (promoted := live.get(promise)) is not None:
                self.resolve(promoted, result)
        if alone:
            while len(unclaimed) > UNCLAIMED_SUCCESSES_KEPT:
                unclaimed.popitem(last=False)  # O(1), where a dict's oldest is found by a scan
            if self.on_bare_ended is not None:
                self.on_bare_ended(promises)

    def _unguarded(
        self, guard: Guard, promises: Sequence[Promise | int], result: Result
    ) -> list[Promise | int]:
        """Those of `promises` that end with `result`: the guard keeps some, and ends others
        with a result of its own."""
        guarded = guard.guarded
        if not result.is_error:  # a success ends every one: in one pass, for a whole confirm
            numbers = [p.number if isinstance(p, Promise) else p for p in promises]
            guard.succeeded([n for n in numbers if n in guarded])
            return list(promises)
        ending: list[Promise | int] = []
        for promise in promises:
            number = promise.number if isinstance(promise, Promise) else promise
            if number not in guarded:
                ending.append(promise)
                continue
            outcome = guard.outcome(number, result)
            if outcome is result:
                ending.append(promise)
            elif outcome is not None:
                self.resolve_all((promise,), outcome)
        return ending

    def issued(self, number: int) -> bool:
        """Whether `number` was ever given out."""
        return 0 < number < self._next

    def resolve(self, promise: Promise, result: Result, *, final: bool = True) -> None:
        """Give `promise` a result; `final` means it is the last one."""
        if promise.done:
            return
        if final:
            guard = self.guard
            if guard is not None and promise.number in guard.guarded:
                if result.is_error:
                    outcome = guard.outcome(promise.number, result)
                    if outcome is None:
                        return
                    result = outcome
                else:
                    guard.succeeded([promise.number])
            promise.done = True
            promise.op = None
            if self.watchers:
                self._tell_watchers((promise,), result)
            if promise.multi:  # a consume ended by its last result (a broker cancel, an error)
                self._note_finished_multi(promise.number)
            elif (
                promise.callback is None
                and not result
                and not result.is_error
                and not promise.results
            ):
                # an empty success nobody asked for yet (a confirm, a written publish): keep the
                # result alone, not its promise, until it is claimed or pushed out
                number = promise.number
                del self.live[number]
                unclaimed = self.unclaimed_ok
                unclaimed[number] = result
                if len(unclaimed) > UNCLAIMED_SUCCESSES_KEPT:
                    unclaimed.popitem(last=False)  # O(1), where a dict's oldest is found by a scan
                if self.on_ready is not None:
                    self.on_ready(promise)
                return
        if promise.results is _NO_RESULTS:
            promise.results = deque((result,))
        else:
            promise.results.append(result)
        if promise.callback is not None:
            self.callbacks_ready.add(promise.number)
        if self.on_ready is not None:
            self.on_ready(promise)

    def set_callback(self, number: int, callback: Callback) -> None:
        """Give a live promise a callback; results already waiting go to it too."""
        promise = self.live.get(number)
        if promise is None:
            if number in self.bare:
                promise = self.promote(number)
            else:
                result = self.unclaimed_ok.pop(number, None)
                if result is None:
                    return
                promise = self._object_for(number)
                promise.done = True
                promise.results = deque((result,))
        promise.callback = callback
        if promise.results:
            self.callbacks_ready.add(number)

    def finish(self, promise: Promise) -> None:
        """End a multi-result promise without a further result (a cancelled consume)."""
        if promise.done:
            return
        promise.done = True
        promise.op = None
        self._note_finished_multi(promise.number)
        if not promise.results:
            self.live.pop(promise.number, None)
        if self.on_ready is not None:
            self.on_ready(promise)

    def _note_finished_multi(self, number: int) -> None:
        """Remember an ended consume: waiting on it again says so instead of a made-up ok."""
        self._finished_multi[number] = None
        if len(self._finished_multi) > UNCLAIMED_SUCCESSES_KEPT:
            self._finished_multi.popitem(last=False)

    def take(self, number: int) -> Result | None:
        """Hand out the next result of promise `number`, or `None` if it has none yet."""
        promise = self.live.get(number)
        if promise is None:
            result = self.unclaimed_ok.pop(number, None)
            if result is not None:
                return result
            if number in self.bare:  # pending
                return None
            if self.issued(number) and number not in self._finished_multi:
                return Result("ok")
            return None
        if not promise.results:
            return None
        result = promise.results.popleft()
        if not promise.results:
            self.callbacks_ready.discard(number)
            if promise.done:
                del self.live[number]
                promise.results = _NO_RESULTS  # (its deque's 760 bytes: the object may stay)
        return result

    def peek(self, number: int) -> Result | None:
        """The newest result of promise `number` not yet handed out, leaving it in place.

        `None` when it has none waiting (still pending, already claimed, or forgotten).
        """
        promise = self.live.get(number)
        if promise is None:
            return self.unclaimed_ok.get(number)
        return promise.results[-1] if promise.results else None

    def is_finished_consume(self, number: int) -> bool:
        """Whether `number` is a consume that ended and has nothing more to hand out."""
        return number in self._finished_multi and number not in self.live

    def all_finished_consumes(self, numbers: list[int]) -> bool:
        """Whether every one of `numbers` is a consume that ended with nothing more to hand out
        (`is_finished_consume`); at once `False` while no consume has ended."""
        return bool(self._finished_multi) and all(map(self.is_finished_consume, numbers))

    def fail_all(self, exception: BaseException) -> None:
        """End every unfinished promise with `exception` (the connection is gone)."""
        for promise in list(self.live.values()):
            if not promise.done:
                self.resolve(promise, Result.error(exception))
        self.fail_bare(exception)

    def fail_bare(self, exception: BaseException) -> None:
        """End every bare promise still pending with `exception`."""
        if self.bare:
            self.resolve_all(list(self.bare), Result.error(exception))

    def pending(self) -> int:
        """Promises not yet finished."""
        return sum(1 for p in self.live.values() if not p.done) + len(self.bare)
