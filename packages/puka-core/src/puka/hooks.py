"""Hooks: what an instrumentation (tracing, metrics) sees of every client's messages.

A hook is an object with the methods of `Hook` (subclass it and override what you need).
`install(hook)` shows it every publish and every delivery of every client of the process,
blocking and asyncio, from then until `uninstall(hook)`:

- `Hook.on_publish(params, message)` runs before a publish is encoded, in the thread (or
  task) that called `basic_publish`, so it sees that caller's context (the current span). It
  may add application headers (`OutgoingMessage.add_header`: a trace context), and it may
  return a function that is called once with the publish's final `Result`: an empty success
  when the broker confirmed it (or, without confirms, once it was written), else an error
  result whose `exception` says why (`PublishNacked`, `NoRoute`, `ConnectionLost`,
  `ChannelClosed`, `ClientClosed`, …).
- `Hook.on_delivery(params, message, queue, no_ack)` runs when a message arrives (a consume's
  delivery or a `basic_get`'s message), before the application sees it. The hook may keep a
  value with that message (`remember(hook, message, value)`), to find again when the
  application hands the message back to it (`recall(hook, message)`): the value lives as long
  as the message, so nothing piles up.

`params` (a `ConnectionParameters`) says which broker the client talks to (in a cluster: the
node that answered). Hooks run in the client's thread, inside its I/O; they should be quick and
must not call the client. An exception a hook raises is logged (logger `puka`) and otherwise
ignored: a broken instrumentation never breaks the client.

With no hook installed, a publish and a delivery each pay one test of an empty list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from puka.connection_parameters import ConnectionParameters
from puka.messages import PROPERTY_NAMES
from puka.results import Result

__all__ = [
    "INSTALLED",
    "Hook",
    "Outcome",
    "OutgoingMessage",
    "install",
    "installed",
    "recall",
    "remember",
    "uninstall",
]

log = logging.getLogger("puka")

Outcome = Callable[[Result], None]
"""What `Hook.on_publish` may return: called once with the publish's final result."""

INSTALLED: list[Hook] = []
"""The hooks installed, in order (the engine tests this list; change it with `install`)."""


class OutgoingMessage:
    """A message about to be published, as a hook sees it (`Hook.on_publish`).

    `headers` and `properties` are what `basic_publish` was given (see its docstring: without
    `properties`, `headers` holds both the basic properties and the application headers), and
    `body` the message body. The caller's dicts are never changed: `add_header` copies
    `headers` the first time.
    """

    __slots__ = (
        "_copied",
        "body",
        "exchange",
        "headers",
        "mandatory",
        "properties",
        "routing_key",
    )

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        headers: dict[str, Any] | None,
        properties: dict[str, Any] | None,
        body: bytes = b"",
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.mandatory = mandatory
        self.headers = headers
        self.properties = properties
        self.body = body
        self._copied = False

    def property(self, name: str) -> Any:
        """A basic property of the message (`message_id`, `correlation_id`, …), or `None`."""
        if self.properties is not None:
            return self.properties.get(name)
        return None if self.headers is None else self.headers.get(name)

    def add_header(self, name: str, value: Any) -> None:
        """Add (or replace) an application header (`name` must not be a basic property's)."""
        if name in PROPERTY_NAMES:
            raise ValueError(f"add_header: {name!r} is a basic property, not a header")
        if not self._copied:
            self.headers = {} if self.headers is None else dict(self.headers)
            self._copied = True
        self.headers[name] = value  # type: ignore[index]


class Hook:
    """The interface of a hook: every method does nothing here; override what you need."""

    def on_publish(self, params: ConnectionParameters, message: OutgoingMessage) -> Outcome | None:
        """A publish is about to be encoded; return a function to learn its outcome, or
        `None`."""
        return None

    def on_delivery(
        self, params: ConnectionParameters, message: Result, queue: str, no_ack: bool
    ) -> None:
        """A message arrived from `queue` (a consume's delivery or a fetched message);
        `no_ack`: it needs no ack (the broker took it for acknowledged)."""


def install(hook: Hook) -> None:
    """Show `hook` every publish and delivery of every client from now on (once: installing
    a hook already installed does nothing)."""
    if not isinstance(hook, Hook):
        raise TypeError(f"install: hook must be a puka.hooks.Hook, not {type(hook).__name__}")
    if hook not in INSTALLED:
        INSTALLED.append(hook)


def uninstall(hook: Hook) -> None:
    """Stop showing `hook` anything (publishes it saw still report their outcome)."""
    if hook in INSTALLED:
        INSTALLED.remove(hook)


def installed() -> tuple[Hook, ...]:
    """The hooks installed now, in order."""
    return tuple(INSTALLED)


def remember(hook: Hook, message: Result, value: Any) -> None:
    """Keep `value` with `message` for `hook` (replacing what it kept there before); `recall`
    gives it back. It goes away with the message."""
    _check_message("remember", message)
    notes: dict[Hook, Any] | None = getattr(message, "_notes", None)
    if notes is None:
        message._notes = notes = {}
    notes[hook] = value


def recall(hook: Hook, message: Result) -> Any:
    """What `hook` kept with `message` (`remember`), or `None`."""
    _check_message("recall", message)
    notes: dict[Hook, Any] | None = getattr(message, "_notes", None)
    return None if notes is None else notes.get(hook)


def _check_message(function: str, message: object) -> None:
    if not isinstance(message, Result):
        raise TypeError(
            f"{function}: message must be a puka Result (a delivered message), "
            f"not {type(message).__name__}"
        )


def before_publish(
    params: ConnectionParameters,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    headers: dict[str, Any] | None,
    properties: dict[str, Any] | None,
    body: bytes,
) -> tuple[dict[str, Any] | None, Outcome | None]:
    """Run every hook's `on_publish`: the headers to publish and the outcome function to call
    (one that calls each hook's, or `None`). For the engine."""
    message = OutgoingMessage(exchange, routing_key, mandatory, headers, properties, body)
    outcomes: list[Outcome] = []
    for hook in tuple(INSTALLED):
        try:
            outcome = hook.on_publish(params, message)
        except Exception:
            log.exception("puka hook %r failed in on_publish", hook)
            continue
        if outcome is not None:
            outcomes.append(outcome)
    if not outcomes:
        return message.headers, None
    return message.headers, _outcome_of(outcomes)


def _outcome_of(outcomes: list[Outcome]) -> Outcome:
    """One outcome function that calls each of `outcomes`, logging what one raises."""

    def report(result: Result) -> None:
        if not outcomes:
            return  # told already: once only
        for outcome in outcomes:
            try:
                outcome(result)
            except Exception:
                log.exception("puka hook outcome %r failed", outcome)
        outcomes.clear()

    return report


def delivered(params: ConnectionParameters, message: Result, queue: str, no_ack: bool) -> None:
    """Run every hook's `on_delivery`. For the engine."""
    for hook in tuple(INSTALLED):
        try:
            hook.on_delivery(params, message, queue, no_ack)
        except Exception:
            log.exception("puka hook %r failed in on_delivery", hook)
