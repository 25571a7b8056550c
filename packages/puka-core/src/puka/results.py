"""Results: what a promise resolves to. A dict, as in Puka, plus `name`, `is_error`, `exception`,
and, for a message, its `properties` and `application_headers` apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from puka.messages import property_values

if TYPE_CHECKING:
    from puka_spec import BasicProperties

    from puka.engine.channels import Channel

__all__ = ["Result"]


class Result(dict[str, Any]):
    """The outcome of an operation, or one message of a consume.

    It is a dict (`result["queue"]`, `result["body"]`, …) with three attributes:
    `name` says what it is (`"queue.declare_ok"`, `"basic.deliver"`, `"error"`, …), `is_error`
    whether it reports a failure, and `exception` the exception `wait` raises for it.

    A message (delivered, fetched, or returned) has Puka's merged view in `result["headers"]`
    (basic properties and application headers in one dict, a property shadowing an application
    header of the same name) and both apart in `result.properties` and
    `result.application_headers`.
    """

    __slots__ = ("_ack", "_notes", "_props", "exception", "is_error", "name")

    _props: BasicProperties | None
    """A message's decoded properties (set only on messages: `getattr` with a default)."""
    _notes: dict[Any, Any]
    """What hooks keep with a message (`puka.hooks.remember`; set only then: `getattr` with a
    default)."""

    def __init__(self, name: str, fields: dict[str, Any] | None = None) -> None:
        if fields:  # (not super().__init__: this runs for every message, and it is cheaper)
            self.update(fields)
        self.name = name
        self.is_error = False
        self.exception: BaseException | None = None
        self._ack: tuple[Channel, int] | None = None  # (channel, delivery tag) for basic_ack

    @property
    def properties(self) -> dict[str, Any]:
        """The basic properties of a message, by name (`content_type`, `delivery_mode`, …):
        only those it carries, without its application headers. `{}` for a result that is no
        message. Publish them again with `basic_publish(..., properties=...)`."""
        return property_values(getattr(self, "_props", None))

    @property
    def needs_ack(self) -> bool:
        """Whether this is a message the broker waits to be acknowledged (delivered or fetched
        without `no_ack`): one that `basic_ack`, `basic_nack` or `basic_reject` take."""
        return self._ack is not None

    @property
    def application_headers(self) -> dict[str, Any]:
        """The application headers of a message (the `headers` table of its properties), apart
        from its basic properties, even one named like a property (`type`, `priority`, …).
        `{}` for a message without any, or a result that is no message."""
        props: BasicProperties | None = getattr(self, "_props", None)
        return dict(props.headers) if props is not None and props.headers else {}

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
