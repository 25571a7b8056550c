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

__all__ = [
    "ERRORS",
    "AMQPError",
    "AMQPNotImplemented",
    "AMQPSyntaxError",
    "AccessRefused",
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
    if at-least-once delivery matters.
    """


class HeartbeatTimeout(ConnectionLost):
    """Nothing arrived from the broker for two heartbeat intervals: it is taken for dead."""


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
