"""Every exception a Puka user can meet, importable by name from `puka`.

Two families:

- **Reply-code errors** (`AMQPError` and its subclasses, from `puka_spec.exceptions`): the broker
  or the protocol said no. `SoftError` subclasses (`NotFound`, `PreconditionFailed`,
  `AccessRefused`, `ResourceLocked`, `NoRoute`, …) fail only the operation that caused them;
  `HardError` subclasses (`ConnectionForced`, `NotAllowed`, `FrameError`, …) end the connection.
- **Client errors** (`PukaError` and its subclasses): the connection could not be made or was
  lost, the client is closed, a publish was nacked, the broker sent a consumer cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    "AMQPNotImplemented",
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
    "PublishNacked",
    "PukaError",
    "ResourceError",
    "ResourceLocked",
    "Returned",
    "SoftError",
    "UnexpectedFrame",
    "UnsupportedProtocol",
    "error_for",
]


class PukaError(Exception):
    """Base of the errors that do not come with an AMQP reply code."""


class ConnectionLost(PukaError):
    """The connection ended under an operation: its outcome is unknown.

    A publish that fails with this error may or may not have reached the broker; republish it
    if at-least-once delivery matters. When the transport failed, its `OSError` (a reset, a
    broken pipe) is the `__cause__`.
    """


class HeartbeatTimeout(ConnectionLost):
    """Nothing arrived from the broker for two heartbeat intervals: it is taken for dead."""


class BlockedTimeout(ConnectionLost):
    """The broker kept the connection blocked (a resource alarm) longer than `blocked_timeout`.

    The connection was dropped (recovered, with `reconnect`): the publishes in flight fail with
    this error and their outcome is unknown, as for any `ConnectionLost`.
    """


class ConnectFailed(PukaError):
    """The connection could not be made: refused port, unknown host, TLS failure, timeout."""


class ConnectTimeout(ConnectFailed):
    """Connecting (TCP, TLS and the AMQP handshake) took longer than `connection_timeout`."""


class ClientClosed(PukaError):
    """The client is closed (by `close()` or by a connection error): make a new one."""


class PublishNacked(PukaError):
    """The broker refused a published message (`basic.nack`): it was not enqueued."""


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
