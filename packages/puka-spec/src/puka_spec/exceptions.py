"""One exception class per AMQP reply code, the bases they share, and the root of them all.

`PukaError` is the root of every exception the Puka packages raise (`puka` re-exports it):
`AMQPError` and `EncodingError` here, the client's errors in `puka.errors`, `puka.InvalidURL`.
Soft errors (`SoftError`) close only the channel of the operation that caused them: catch one and
carry on with the same connection. Hard errors (`HardError`) close the whole connection.

The class of each reply code (`NotFound` 404, `PreconditionFailed` 406, ...) is generated from
the specification into `puka_spec._gen_exceptions` and imported here; `ERRORS` maps each code to
its class, and `error_for` makes the exception for any code.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AMQPError",
    "EncodingError",
    "HardError",
    "PukaError",
    "SoftError",
    "UnsupportedProtocol",
    "error_for",
]


class PukaError(Exception):
    """The root of every exception Puka raises: `except PukaError` catches them all.

    Its subclasses keep the built-in bases a caller may already catch: `EncodingError` and
    `puka.InvalidURL` are `ValueError`s, the connection failures of `puka.errors` are
    `ConnectionError`s (so `OSError`s).
    """


class EncodingError(PukaError, ValueError):
    """A value cannot be put on the wire: a string too long, a type AMQP has no field for."""


class AMQPError(PukaError):
    """An AMQP error: a reply code with its text and the method that caused it.

    Raised for errors the broker reports (`channel.close`, `connection.close`) and for protocol
    violations detected locally, in which case the reply code is the one sent back to the peer.
    """

    reply_code: ClassVar[int] = 0
    soft: ClassVar[bool] = False

    def __init__(self, reply_text: str = "", class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(reply_text, class_id, method_id)
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id

    def __str__(self) -> str:
        text = f"{self.reply_code} {self.reply_text}" if self.reply_text else str(self.reply_code)
        if self.class_id:
            text += f" (method {self.class_id}.{self.method_id})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reply_text!r}, {self.class_id}, {self.method_id})"


class SoftError(AMQPError):
    """A channel-level error: only the operation that caused it fails."""

    soft = True


class HardError(AMQPError):
    """A connection-level error: the connection is closed."""


# The generated classes derive from SoftError and HardError, so they are imported only now
# (puka_spec._gen_exceptions imports those two from here).
from puka_spec import _gen_exceptions  # noqa: E402
from puka_spec._gen_exceptions import *  # noqa: E402, F403
from puka_spec._gen_exceptions import ERRORS  # noqa: E402

__all__ += _gen_exceptions.__all__

for _generated in ERRORS.values():
    _generated.__module__ = __name__  # tracebacks, pickles and the API pages name this module
del _generated


class UnsupportedProtocol(FrameError):  # noqa: F405
    """The peer answered the protocol header with another protocol version."""


class _UnknownSoftError(SoftError):
    pass


class _UnknownHardError(HardError):
    pass


def error_for(
    reply_code: int, reply_text: str = "", class_id: int = 0, method_id: int = 0
) -> AMQPError:
    """The exception for a reply code; an unknown code gives a `SoftError`/`HardError` carrying it.

    Codes below 500 that the spec does not list are treated as soft, the rest as hard.
    """
    cls = ERRORS.get(reply_code)
    if cls is not None:
        return cls(reply_text, class_id, method_id)
    unknown: AMQPError = (_UnknownSoftError if reply_code < 500 else _UnknownHardError)(
        reply_text, class_id, method_id
    )
    unknown.reply_code = reply_code  # type: ignore[misc]
    return unknown
