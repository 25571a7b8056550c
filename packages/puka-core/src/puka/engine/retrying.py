"""At-least-once publishing: a publish sent again until the broker confirms it.

`basic_publish(..., retry=RetryPolicy())` (or `retry=True`) opts one publish in. Its promise is
the usual one, and it ends only when the broker confirms the message, or when the policy's bound
is reached: then it fails with `PublishFailed`, which carries the last cause. In between, the
message is sent again (with back-off) when its outcome was a `basic.nack` or unknown (the
connection was lost: `ConnectionLost`), across recoveries and failovers: while the connection is
being recovered, a retried message (or a new retrying publish) waits for it, and goes out once
the connection is back. A refusal that sending again cannot change (a missing exchange, a
returned mandatory message, a malformed message) ends it at once with its own error.

Each retrying message gets a `message_id` if it has none (unless the policy says not to), so
that consumers can drop the duplicates that at-least-once implies (a message whose confirm was
lost with the connection was stored, and is stored again).

Order: first attempts go out in call order. A message sent again goes after what was published
meanwhile, so with the default policy it can land after messages published later than itself.
With `RetryPolicy(ordered=True)` the client sends the next ordered message only once the one
before is confirmed (or given up): the queue then holds them in call order, at the rate of one
round trip per message.

A publish channel on which the broker nacked a message being retried is not used again: the
retry, and every publish after it, go out on a new channel (`Engine.replaced_publish_channels`
counts them, and the `puka` logger says so), while the old one is closed once its publishes in
flight are settled. RabbitMQ needs this: after a quorum queue's leader is killed, it nacks every
publish on a channel opened before the new leader was elected, for as long as that channel
lives.

The mechanism is `Retrier`, one per engine, made on the first retrying publish. It sees every
final result of its promises before the registry ends them (it is the registry's `guard`, see
`puka.promises`) and keeps the ones it retries from ending. The engine keeps no clock: a
failure is timed from the next `handle_timer`, which `next_timer` asks for at once.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any, Protocol

from puka_spec.exceptions import AMQPError

from puka.engine.recovery import RECOVERABLE_REPLY_CODES
from puka.errors import ConnectionLost, PublishFailed, PublishNacked
from puka.results import Result

if TYPE_CHECKING:
    from puka.promises import Promise, Promises

__all__ = ["Retrier", "RetryLink", "RetryPolicy", "retry_policy", "with_message_id"]

log = logging.getLogger("puka")


@dataclass(frozen=True)
class RetryPolicy:
    """How an at-least-once publish (`basic_publish(..., retry=policy)`) is sent again.

    - `attempts`: sends in all, the first included (`None`: no limit but the deadline);
    - `deadline`: seconds after the message's first failure past which it is not sent again
      (`None`: no limit but the attempts). At least one of the two is set;
    - the back-off before the n-th send again: `initial_delay * multiplier**(n - 1)` seconds,
      at most `max_delay`, with ±`jitter` of it random;
    - `ordered`: keep call order in the queue (see `puka.engine.retrying`): one ordered
      message in flight at a time;
    - `add_message_id`: give a message without a `message_id` one (`False`: send it as it is,
      say to copy messages exactly).
    """

    attempts: int | None = None
    deadline: float | None = 60.0
    initial_delay: float = 0.05
    max_delay: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.1
    ordered: bool = False
    add_message_id: bool = True

    def __post_init__(self) -> None:
        if self.attempts is None and self.deadline is None:
            raise ValueError("RetryPolicy needs a bound: attempts, deadline, or both")
        if self.attempts is not None and (
            isinstance(self.attempts, bool)
            or not isinstance(self.attempts, int)
            or self.attempts < 1
        ):
            raise ValueError(
                f"RetryPolicy: attempts must be an int of at least 1, not {self.attempts!r}"
            )
        if self.deadline is not None and not _positive(self.deadline):
            raise ValueError(
                f"RetryPolicy: deadline must be a positive number of seconds, not {self.deadline!r}"
            )
        for name in ("initial_delay", "max_delay"):
            value = getattr(self, name)
            if not (_number(value) and 0 <= value < math.inf):
                raise ValueError(
                    f"RetryPolicy: {name} must be a finite number of seconds >= 0, not {value!r}"
                )
        if not (_number(self.multiplier) and 1 <= self.multiplier < math.inf):
            raise ValueError(
                f"RetryPolicy: multiplier must be a finite number >= 1, not {self.multiplier!r}"
            )
        if not (_number(self.jitter) and 0 <= self.jitter < 1):
            raise ValueError(f"RetryPolicy: jitter must be a number in [0, 1), not {self.jitter!r}")
        for flag in ("ordered", "add_message_id"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(
                    f"RetryPolicy: {flag} must be True or False, not {getattr(self, flag)!r}"
                )

    def delay(self, failures: int) -> float:
        """Seconds to wait before sending again a message that failed `failures` times."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (failures - 1))
        return base * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - jitter


def _bad_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: object) -> bool:
    return _number(value) and 0 < value < math.inf  # type: ignore[operator]


_DEFAULT = RetryPolicy()


def retry_policy(retry: object, call: str) -> RetryPolicy | None:
    """What a call's `retry` argument asks for: `True` is `RetryPolicy()`, `False` or `None`
    none; anything else is a `TypeError` naming `call`."""
    if retry is None or retry is False:
        return None
    if retry is True:
        return _DEFAULT
    if isinstance(retry, RetryPolicy):
        return retry
    raise TypeError(
        f"{call}: retry must be True, False, None or a puka.RetryPolicy, not {type(retry).__name__}"
    )


def with_message_id(
    headers: dict[str, Any] | None,
    properties: dict[str, Any] | None,
    message_id: Callable[[], str],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """`basic_publish`'s headers and properties with a `message_id` if they had none (new
    dicts: the caller's are not changed)."""
    if properties is not None:
        if properties.get("message_id") is None:
            properties = {**properties, "message_id": message_id()}
    elif headers is None:
        headers = {"message_id": message_id()}
    elif headers.get("message_id") is None:
        headers = {**headers, "message_id": message_id()}
    return headers, properties


def retriable(error: BaseException | None) -> bool:
    """Whether sending again may change the outcome: a nack, a lost connection (the outcome
    is unknown), or a channel closed by a node going away (320, 541)."""
    if isinstance(error, (PublishNacked, ConnectionLost)):
        return True
    return isinstance(error, AMQPError) and error.reply_code in RECOVERABLE_REPLY_CODES


class RetryLink(Protocol):
    """What the retrier needs of its connection (`Engine`)."""

    promises: Promises

    def resend(
        self, promise: Promise | int, key: tuple[str, str, bool], props: bytes, body: bytes
    ) -> bool:
        """Send a publish again with the same promise; `False` while recovering."""

    def usable_error(self) -> BaseException | None:
        """Why no publish can go out any more (closing, closed), or `None`."""


class _Message:
    """A retrying publish: what to send again, and how it went so far."""

    __slots__ = (
        "body",
        "cause",
        "due",
        "failures",
        "give_up_at",
        "held",
        "in_flight",
        "key",
        "policy",
        "props",
    )

    def __init__(
        self, key: tuple[str, str, bool], props: bytes, body: bytes, policy: RetryPolicy
    ) -> None:
        self.key = key
        self.props = props
        self.body = body
        self.policy = policy
        self.failures = 0  # sends that failed
        self.cause: BaseException | None = None  # the last failure
        self.give_up_at: float | None = None  # past this, it is not sent again (deadline)
        self.due: float | None = None  # its entry in the heap of `Retrier` (or `_UNTIMED`)
        self.in_flight = False  # sent, its outcome not known yet
        self.held = False  # waiting for the connection to be recovered


_FirstSend = tuple[tuple[str, str, bool], bytes, bytes, RetryPolicy]
"""A retrying publish whose first send is in flight: (key, properties, body, policy)."""

_UNTIMED = float("-inf")
"""`_Message.due` of a message waiting for the time of the next `tick`."""


class Retrier:
    """The at-least-once publishes of one connection (see the module docstring)."""

    def __init__(self, link: RetryLink) -> None:
        self.link = link
        self.guarded: dict[int, _Message | _FirstSend] = {}
        """Every retrying publish not ended yet, by promise number (`Promises.guard` reads it):
        a `_Message`, or while its first send is in flight a tuple (`add(..., sent=True)`)."""
        self._untimed: list[int] = []  # waiting for the time of the next `tick`
        self._timed: list[tuple[float, int]] = []  # (due, number), a heap; stale entries skipped
        self._ordered: deque[int] = deque()  # ordered messages not sent yet, in call order
        self._ordered_current: int | None = None  # the ordered message in flight or retried
        self._prefix = secrets.token_hex(8)
        self._ids = count(1)
        self.over: BaseException | None = None  # the connection ended for good
        self.sent_again = 0
        """Sends of a message after its first (counted over the connection's life)."""
        self.given_up = 0
        """Retrying publishes that ended with `PublishFailed`."""
        self._nacked = False  # a nack of a message being retried came since `take_nacked`

    def message_id(self) -> str:
        """A new message id: random per connection, then a counter."""
        return f"{self._prefix}.{next(self._ids)}"

    # --- publishing ---------------------------------------------------------------------

    def add(
        self,
        promise: Promise | int,
        key: tuple[str, str, bool],
        props: bytes,
        body: bytes,
        policy: RetryPolicy,
        *,
        sent: bool = False,
    ) -> None:
        """Take a new retrying publish (its promise just made) and send it, or queue it; with
        `sent`, its caller sends it right now (the hot path): what to send again is kept as a
        tuple then, made a `_Message` only if it fails."""
        number = promise if isinstance(promise, int) else promise.number
        if sent:
            self.guarded[number] = (key, props, body, policy)
            return
        message = self.guarded[number] = _Message(key, props, body, policy)
        if policy.ordered:
            if self._ordered_current is not None:
                self._ordered.append(number)
                return
            self._ordered_current = number
        self._send(number, message)

    def _send(self, number: int, message: _Message) -> None:
        """Send `message`, or hold it until the connection is recovered."""
        live = self.link.promises.live.get(number)
        message.due = None
        if self.link.resend(
            number if live is None else live, message.key, message.props, message.body
        ):
            message.in_flight, message.held = True, False
            return
        message.held = True  # its deadline still counts
        if message.give_up_at is not None:
            self._schedule(number, message, message.give_up_at)
        elif message.policy.deadline is not None:
            self._schedule(number, message, _UNTIMED)

    def _schedule(self, number: int, message: _Message, due: float) -> None:
        message.due = due
        if due == _UNTIMED:
            self._untimed.append(number)
        else:
            heapq.heappush(self._timed, (due, number))

    # --- outcomes -----------------------------------------------------------------------

    def outcome(self, number: int, result: Result) -> Result | None:
        """The final result `result` of promise `number` (one of ours) arrived: the result it
        ends with, or `None` to keep it (to send again, or not sent yet)."""
        entry = self.guarded[number]
        if isinstance(entry, _Message):
            message = entry
        else:  # its first send
            if not result.is_error:
                return self._end(number, result)
            message = self.guarded[number] = _Message(*entry)
            message.in_flight = True
        if not message.in_flight:
            # not sent (waiting to be sent again, or for its turn): the loss of the connection
            # is not its own failure
            if result.is_error and self.over is None:
                return None
            return self._end(number, result)
        message.in_flight = False
        if not result.is_error:
            return self._end(number, result)
        error = result.exception
        if not retriable(error):
            return self._end(number, result)
        message.failures += 1
        message.cause = error
        if isinstance(error, PublishNacked):
            self._nacked = True
        if self.over is not None:
            return self._end(number, self._failed(message, self.over))
        attempts = message.policy.attempts
        if attempts is not None and message.failures >= attempts:
            return self._end(number, self._failed(message, None))
        self._schedule(number, message, _UNTIMED)
        return None

    def succeeded(self, numbers: list[int]) -> None:
        """These guarded promises were confirmed: forget them (one pass for a whole confirm)."""
        pop, guarded = self.guarded.pop, self.guarded
        for number in numbers:
            pop(number, None)
        current = self._ordered_current
        if current is not None and current not in guarded:
            self._ordered_current = None
            self._next_ordered()

    def _failed(self, message: _Message, ended: BaseException | None) -> Result:
        self.given_up += 1
        failures, policy = message.failures, message.policy
        cause = message.cause or ended
        if ended is not None:
            why = f"the connection ended ({ended})"
        elif policy.attempts is not None and failures >= policy.attempts:
            why = f"it was sent {failures} time{'s' * (failures != 1)}"
        else:
            why = f"it was still failing {policy.deadline:g} s after its first failure"
        error = PublishFailed(f"the publish gave up: {why}; last cause: {cause}", cause, failures)
        error.__cause__ = cause
        return Result.error(error)

    def _end(self, number: int, result: Result) -> Result:
        del self.guarded[number]
        if number == self._ordered_current:
            self._ordered_current = None
            self._next_ordered()
        return result

    def _next_ordered(self) -> None:
        """Send the next ordered message (the one before it ended)."""
        while self._ordered and self.over is None:
            following = self._ordered.popleft()
            message = self._message(following)
            if message is not None:
                self._ordered_current = following
                self._send(following, message)
                return

    def _message(self, number: int) -> _Message | None:
        """The `_Message` of guarded promise `number`, if it has one (not a first send)."""
        message = self.guarded.get(number)
        return message if isinstance(message, _Message) else None

    def _give_up(self, number: int, ended: BaseException | None) -> None:
        """End a message that is not in flight with `PublishFailed`."""
        message = self._message(number)
        if message is None:
            return
        result = self._end(number, self._failed(message, ended))
        live = self.link.promises.live.get(number)
        self.link.promises.resolve_all((number if live is None else live,), result)

    def take_nacked(self) -> bool:
        """Whether the broker nacked a message being retried since the last call."""
        nacked, self._nacked = self._nacked, False
        return nacked

    # --- time ---------------------------------------------------------------------------

    def next(self) -> float | None:
        """When `tick` should run next, or `None`."""
        if self._untimed:
            return _UNTIMED
        timed = self._timed
        while timed:
            due, number = timed[0]
            message = self._message(number)
            if message is not None and message.due == due:
                return due
            heapq.heappop(timed)  # stale: ended, or sent since
        return None

    def tick(self, now: float) -> None:
        """Time what waited for a time, then send again what is due (in call order) and give up
        what is past its deadline."""
        untimed, self._untimed = self._untimed, []
        for number in untimed:
            message = self._message(number)
            if message is None or message.due != _UNTIMED:
                continue
            policy = message.policy
            if message.give_up_at is None and policy.deadline is not None:
                message.give_up_at = now + policy.deadline
            due = message.give_up_at if message.held else now + policy.delay(message.failures)
            if due is None:  # held, without a deadline: until the connection is back
                message.due = None
                continue
            if message.give_up_at is not None and due > message.give_up_at:
                due = message.give_up_at
            self._schedule(number, message, due)
        due_now: list[int] = []
        timed = self._timed
        while timed and timed[0][0] <= now:
            when, number = heapq.heappop(timed)
            message = self._message(number)
            if message is not None and message.due == when:
                message.due = None
                due_now.append(number)
        if not due_now:
            return
        stopped = self.link.usable_error()
        for number in sorted(due_now):  # in call order
            message = self._message(number)
            if message is None:
                continue
            if stopped is not None:
                self._give_up(number, stopped)
            elif message.give_up_at is not None and now >= message.give_up_at:
                self._give_up(number, None)
            elif not message.held:
                self.sent_again += 1
                self._send(number, message)

    # --- the connection -----------------------------------------------------------------

    def recovered(self) -> None:
        """The connection is back: send what waited for it, in call order."""
        held = [n for n, m in self.guarded.items() if isinstance(m, _Message) and m.held]
        for number in sorted(held):
            message = self._message(number)
            if message is not None and message.held:
                self.sent_again += message.failures > 0
                self._send(number, message)

    def end(self, error: BaseException) -> None:
        """The connection ended for good: every retrying publish not in flight fails with
        `PublishFailed` now, those in flight as their failure comes in (`outcome`)."""
        self.over = error
        self._ordered.clear()
        for number in sorted(self.guarded):
            message = self._message(number)
            if message is not None and not message.in_flight:
                self._give_up(number, error)
