"""Every exception a Puka user can meet, importable by name from `puka`.

One root, `PukaError` (from `puka_spec.exceptions`): `except puka.PukaError` catches everything
Puka raises. Under it:

- **Reply-code errors** (`AMQPError` and its subclasses, from `puka_spec.exceptions`): the broker
  or the protocol said no. `SoftError` subclasses (`NotFound`, `PreconditionFailed`,
  `AccessRefused`, `ResourceLocked`, `NoRoute`, …) fail only the operation that caused them;
  `HardError` subclasses (`ConnectionForced`, `NotAllowed`, `FrameError`, …) end the connection.
- **Client errors**, without a reply code: the connection could not be made (`ConnectFailed`)
  or was lost (`ConnectionLost`), both also `ConnectionError`s (so `OSError`s, as Puka 0.0.8's
  `socket.error`s were); the client is closed, a publish was nacked, the broker sent a
  consumer cancel, a client was called from the wrong thread (`WrongThread`).
- `EncodingError` and `puka.InvalidURL`, also `ValueError`s.

`AMQPSoftError` and `AMQPHardError`, Puka 0.0.8's names, are aliases of `SoftError` and
`HardError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from puka_spec.exceptions import (
    ERRORS,
    AccessRefused,
    AMQPError,
    AMQPNotImplemented,
    AMQPSyntaxError,
    ChannelError,
    CommandInvalid,
    ConnectionForced,
    ContentTooLarge,
    EncodingError,
    FrameError,
    HardError,
    InternalError,
    InvalidPath,
    NoConsumers,
    NoRoute,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    PukaError,
    ResourceError,
    ResourceLocked,
    SoftError,
    UnexpectedFrame,
    UnsupportedProtocol,
    error_for,
)

if TYPE_CHECKING:
    from puka.results import Result

__all__ = [
    "ERRORS",
    "AMQPError",
    "AMQPHardError",
    "AMQPNotImplemented",
    "AMQPSoftError",
    "AMQPSyntaxError",
    "AccessRefused",
    "BlockedTimeout",
    "ChannelClosed",
    "ChannelError",
    "ClientClosed",
    "CommandInvalid",
    "ConnectFailed",
    "ConnectTimeout",
    "ConnectionForced",
    "ConnectionLost",
    "ConsumerCancelled",
    "ContentTooLarge",
    "EncodingError",
    "FrameError",
    "HardError",
    "HeartbeatTimeout",
    "InternalError",
    "InvalidPath",
    "NoConsumers",
    "NoRoute",
    "NotAllowed",
    "NotFound",
    "PreconditionFailed",
    "PublishFailed",
    "PublishNacked",
    "PukaError",
    "ResourceError",
    "ResourceLocked",
    "Returned",
    "SoftError",
    "UnexpectedFrame",
    "UnsupportedProtocol",
    "WrongThread",
    "error_for",
]


AMQPSoftError = SoftError
"""Puka 0.0.8's name of `SoftError`."""

AMQPHardError = HardError
"""Puka 0.0.8's name of `HardError`."""


class ConnectionLost(PukaError, ConnectionError):
    """The connection ended under an operation: its outcome is unknown.

    A publish that fails with this error may or may not have reached the broker; republish it
    if at-least-once delivery matters. When the transport failed, its `OSError` (a reset, a
    broken pipe) is the `__cause__`. A `ConnectionError` too, so `except OSError` catches it
    (Puka 0.0.8's `ConnectionBroken` was a `socket.error`); its `errno` is `None`.
    """


class HeartbeatTimeout(ConnectionLost):
    """Nothing arrived from the broker for two heartbeat intervals: it is taken for dead."""


class BlockedTimeout(ConnectionLost):
    """The broker kept the connection blocked (a resource alarm) longer than `blocked_timeout`.

    The connection was dropped (recovered, with `reconnect`): the publishes in flight fail with
    this error and their outcome is unknown, as for any `ConnectionLost`.
    """


class ConnectFailed(PukaError, ConnectionError):
    """The connection could not be made: refused port, unknown host, TLS failure, timeout.

    A `ConnectionError` too, so `except OSError` (`socket.error`) catches it, as it caught a
    failed connect in Puka 0.0.8; the message names the address and the reason, `errno` is
    `None`.
    """


class ConnectTimeout(ConnectFailed):
    """Connecting (TCP, TLS and the AMQP handshake) took longer than `connection_timeout`.

    Not a `TimeoutError`: code that catches `TimeoutError` around `asyncio.wait_for` (or any
    deadline of its own) would take it for its own timeout.
    """


class ClientClosed(PukaError):
    """The client is closed (by `close()` or by a connection error): make a new one."""


class WrongThread(PukaError, RuntimeError):
    """A client's method was called from another thread while its own thread was inside it.

    A `puka.Client` is driven by one thread; other threads hand it work with
    `client.call_soon_threadsafe(fn, *args)` (see `puka.threads`). A `RuntimeError` too, as
    asyncio's errors for a loop used from the wrong thread are. Nothing was done: the client
    is as it was.
    """


class PublishNacked(PukaError):
    """The broker refused a published message (`basic.nack`): it was not enqueued."""


class PublishFailed(PukaError):
    """An at-least-once publish (`basic_publish(..., retry=...)`) gave up before the broker
    confirmed it: its `RetryPolicy`'s bound was reached, or the connection ended for good.

    `cause` (also `__cause__`) is its last failure: a `PublishNacked`, or a `ConnectionLost`
    after which the message may have been stored after all; `attempts` is how many times it
    was sent and failed.
    """

    def __init__(self, text: str, cause: BaseException | None = None, attempts: int = 0) -> None:
        super().__init__(text)
        self.cause = cause
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.cause, self.attempts))


class ChannelClosed(PukaError):
    """The operation needed the channel of a consume or transaction that is already over."""


class ConsumerCancelled(PukaError):
    """The broker cancelled a consumer (its queue was deleted, or the node failed over)."""


class Returned(NoRoute):
    """312 NO_ROUTE for one publish: the broker returned the mandatory message (`basic.return`).

    A `NoRoute` (so `except NoRoute` catches it) that carries the returned message as `message`,
    a `Result` with `body`, `headers`, `exchange`, `routing_key`, `reply_code` and
    `reply_text`: what an asyncio caller, who gets only the exception, needs to see it.
    """

    def __init__(
        self, message: Result, reply_text: str = "", class_id: int = 0, method_id: int = 0
    ) -> None:
        super().__init__(reply_text, class_id, method_id)
        self.message = message
