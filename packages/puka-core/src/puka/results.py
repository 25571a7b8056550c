"""Results: what a promise resolves to. A dict, as in Puka, plus `name`, `is_error`, `exception`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from puka.channels import Channel

__all__ = ["Result"]


class Result(dict[str, Any]):
    """The outcome of an operation, or one message of a consume.

    It is a dict (`result["queue"]`, `result["body"]`, …) with three attributes:
    `name` says what it is (`"queue.declare_ok"`, `"basic.deliver"`, `"error"`, …), `is_error`
    whether it reports a failure, and `exception` the exception `wait` raises for it.
    """

    __slots__ = ("_ack", "exception", "is_error", "name")

    def __init__(self, name: str, fields: dict[str, Any] | None = None) -> None:
        if fields:  # (not super().__init__: this runs for every message, and it is cheaper)
            self.update(fields)
        self.name = name
        self.is_error = False
        self.exception: BaseException | None = None
        self._ack: tuple[Channel, int] | None = None  # (channel, delivery tag) for basic_ack

    @classmethod
    def error(cls, exception: BaseException, fields: dict[str, Any] | None = None) -> Result:
        """An error result carrying `exception` (and its reply code fields if it has them)."""
        result = cls("error", fields)
        result.is_error = True
        result.exception = exception
        for attr in ("reply_code", "reply_text", "class_id", "method_id"):
            if hasattr(exception, attr):
                result.setdefault(attr, getattr(exception, attr))
        return result

    def __repr__(self) -> str:
        body = self.get("body")
        shown = {k: v for k, v in self.items() if k != "body"}
        if body is not None:
            shown["body"] = body if len(body) <= 64 else f"<{len(body)} bytes>"
        return f"<Result {self.name}{' error' if self.is_error else ''} {shown!r}>"
