"""The checks of the arguments of Puka's public calls, shared by every driver.

Every public call (of `puka.Client`, of `puka_asyncio.AsyncClient`, and their constructors)
checks its arguments before it counts, queues or writes anything, so a refused call leaves the
client as it was: usable, with nothing pending (`close()` returns at once). A wrong type raises
`TypeError`, a value of the right type that AMQP cannot carry raises `ValueError`, and the
message names the call, the argument and what it accepts:

    TypeError: basic_publish: body must be bytes or str, not int (42)
    ValueError: queue_declare: queue must be at most 255 bytes of UTF-8, not 300 bytes

What each kind of argument accepts:

- a short string (queue, exchange and exchange type names, routing keys, consumer tags): a
  `str` of at most 255 bytes of UTF-8;
- a flag (`durable`, `mandatory`, `no_ack`, `raise_errors`, …): a `bool` (not `0` or `1`);
- an integer (`prefetch_count`, …): an `int` (not a `bool`) in the range of its AMQP type;
- a field table (`arguments`, `client_properties`, application `headers`): `None` or a
  mapping with `str` keys and values that `puka_spec.table` can encode;
- a callback (`callback`, `on_blocked`, …): `None` or a callable;
- a promise (`consume_promise`, `tx`, `channel_of`, what `wait` takes): what a call of this
  client returned;
- a timeout (`wait`, `loop`): `None` or a finite number of seconds, at least 0.

Basic properties are checked against their AMQP types by `property_value`.

The checks of a hot call come first in cheap form (`type(body) is bytes`); the full check, which
builds the message, runs only when the cheap one fails.
"""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar

from puka_spec import methods
from puka_spec.table import encode_table, timestamp_seconds

from puka.engine.recovery import Recovery

__all__ = [
    "PROPERTY_TYPES",
    "check_bool",
    "check_callback",
    "check_client_options",
    "check_int",
    "check_method",
    "check_shortstr",
    "check_table",
    "check_timeout",
    "field_table_items",
    "message_body",
    "numbers_of_promises",
    "promise_number",
    "property_value",
    "refuse_type",
]

T = TypeVar("T")

_SHORTSTR = "a str of at most 255 bytes of UTF-8"
_RANGES = {
    "octet": (0, 0xFF),
    "short": (0, 0xFFFF),
    "long": (0, 0xFFFFFFFF),
    "longlong": (0, 0xFFFFFFFFFFFFFFFF),
}


def _shown(value: object) -> str:
    """A value in an error message: its type and a short repr (`int (42)`, `None`)."""
    if value is None:
        return "None"
    text = repr(value)
    if len(text) > 60:
        text = text[:56] + "…" + text[-3:]
    return f"{type(value).__name__} ({text})"


def _where(call: str, name: str) -> str:
    return f"{call}: {name}" if call else name


def refuse_type(value: object, name: str, call: str, accepts: str) -> NoReturn:
    """Raise the `TypeError` of argument `name` of `call`, which takes `accepts`."""
    raise TypeError(f"{_where(call, name)} must be {accepts}, not {_shown(value)}")


def check_shortstr(value: object, name: str, call: str) -> None:
    """A short string: a `str` of at most 255 bytes of UTF-8."""
    if type(value) is str and value.isascii() and len(value) <= 255:
        return
    if not isinstance(value, str):
        refuse_type(value, name, call, _SHORTSTR)
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{_where(call, name)} must be encodable as UTF-8: {exc.reason} at {exc.start}"
        ) from None
    if size > 255:
        raise ValueError(f"{_where(call, name)} must be at most 255 bytes of UTF-8, not {size}")


def check_bool(value: object, name: str, call: str) -> None:
    """A flag: `True` or `False`."""
    if value is not True and value is not False:
        refuse_type(value, name, call, "a bool")


def check_int(value: object, name: str, call: str, low: int, high: int | None = None) -> int:
    """An `int` (not a `bool`) from `low` to `high` (no bound above with `None`)."""
    if isinstance(value, bool) or not isinstance(value, int):
        refuse_type(value, name, call, "an int")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"{_where(call, name)} must be {bound}, not {value}")
    return int(value)


def field_table_items(value: object, name: str, call: str) -> Iterable[tuple[Any, Any]]:
    """The items of a field table argument: a `dict` or another mapping (else `TypeError`)."""
    if type(value) is dict:
        return value.items()
    if isinstance(value, Mapping):
        return value.items()
    return refuse_type(value, name, call, "a dict (a field table)")


def check_table(value: object, name: str, call: str) -> None:
    """A field table or `None`: a mapping that puka-spec's table encoder can encode."""
    if value is None:
        return
    items = field_table_items(value, name, call)
    if not value:
        return
    try:
        encode_table(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError) as exc:  # EncodingError is a ValueError
        for key, item in items:  # the entry at fault, for the message
            if not isinstance(key, str):
                refuse_type(key, f"{name} key {key!r}", call, "a str")
            try:
                encode_table({key: item})
            except (ValueError, TypeError, OverflowError) as item_exc:
                raise ValueError(
                    f"{_where(call, name)}[{key!r}] cannot go in a field table: {item_exc}"
                ) from None
        raise ValueError(
            f"{_where(call, name)} cannot be encoded as a field table: {exc}"
        ) from None


def check_callback(value: object, name: str, call: str) -> None:
    """A callback: `None` or a callable."""
    if value is not None and not callable(value):
        refuse_type(value, name, call, "a callable or None")


def check_timeout(value: object, name: str, call: str, *, positive: bool = False) -> None:
    """`None` or a finite number of seconds: at least 0 (above 0 with `positive`)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        refuse_type(value, name, call, "a number of seconds or None")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        least = "above 0" if positive else "at least 0"
        raise ValueError(
            f"{_where(call, name)} must be a finite number of seconds, {least}, not {value!r}"
        )


def _check_longstr(value: object, name: str, call: str) -> None:
    if not isinstance(value, bytes):
        refuse_type(value, name, call, "bytes or str")
    if len(value) > 0xFFFFFFFF:
        raise ValueError(f"{_where(call, name)} must be shorter than 4 GiB")


def _int_check(kind: str) -> Callable[[object, str, str], None]:
    low, high = _RANGES[kind]

    def check(value: object, name: str, call: str) -> None:
        if type(value) is int and low <= value <= high:
            return
        check_int(value, name, call, low, high)

    return check


_FIELD_CHECKS: dict[str, Callable[[object, str, str], None]] = {
    "shortstr": check_shortstr,
    "longstr": _check_longstr,
    "bit": check_bool,
    "table": check_table,
    **{kind: _int_check(kind) for kind in _RANGES},
}


def check_method(method: methods.Method, call: str, prefix: str = "") -> None:
    """Every field of `method` against its AMQP type; the fields are named as the call's
    arguments are (`prefix` goes before the name: `queues[2].`)."""
    for field, kind in method.FIELDS:
        _FIELD_CHECKS[kind](getattr(method, field), prefix + field, call)


def message_body(value: object, call: str = "basic_publish") -> bytes:
    """A message body as bytes: `bytes`, a `str` (encoded as UTF-8), or a `bytearray` or
    `memoryview` (copied: the message is kept until confirmed, to send it again)."""
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{_where(call, 'body')} must be encodable as UTF-8: {exc.reason} at {exc.start}"
            ) from None
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return refuse_type(value, "body", call, "bytes or str")


def promise_number(value: object, name: str, call: str, issued: Callable[[int], bool]) -> int:
    """The number of a promise: an `int` (the blocking client's) or a handle that converts to
    one with `operator.index` (the asyncio client's); `issued(number)` says whether this client
    gave it out (`ValueError` if not)."""
    if type(value) is not int:
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            refuse_type(value, name, call, "a promise (what a call of this client returned)")
        value = operator.index(value)  # type: ignore[arg-type]  # (it has __index__)
    if not issued(value):
        raise ValueError(f"{_where(call, name)}: {value} is not a promise of this client")
    return value


def numbers_of_promises(
    value: object, name: str, call: str, issued: Callable[[int], bool]
) -> list[int]:
    """The numbers of one promise or an iterable of them (each as `promise_number` takes it).

    Waits for many promises (`wait_for_all` over every publish of a batch) are hot: a list of
    `int`s that were all issued is checked in a few passes in C, anything else one by one.
    """
    if type(value) is list and (
        not value or (set(map(type, value)) == {int} and issued(min(value)) and issued(max(value)))
    ):
        return value
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        if hasattr(type(value), "__index__") and not isinstance(value, bool):
            return [promise_number(value, name, call, issued)]
        refuse_type(value, name, call, "a promise or an iterable of promises")
    return [promise_number(item, f"{name}[{i}]", call, issued) for i, item in enumerate(value)]


def list_of(value: object, name: str, call: str, kind: type[T], accepts: str, each: str) -> list[T]:
    """`value`, an iterable of `kind`s (`accepts` says so in words, `each` what one item must
    be), as a list; a `str`, `bytes` or a single `kind` is refused like any other non-iterable.
    """
    if isinstance(value, (str, bytes, kind)) or not isinstance(value, Iterable):
        refuse_type(value, name, call, accepts)
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            refuse_type(item, f"{name}[{index}]", call, each)
    return items


# ---------------------------------------------------------------------------------------------
# Basic properties
# ---------------------------------------------------------------------------------------------

PROPERTY_TYPES: dict[str, str] = {
    "content_type": "shortstr",
    "content_encoding": "shortstr",
    "delivery_mode": "octet",
    "priority": "octet",
    "correlation_id": "shortstr",
    "reply_to": "shortstr",
    "expiration": "expiration",
    "message_id": "shortstr",
    "timestamp": "timestamp",
    "type": "shortstr",
    "user_id": "shortstr",
    "app_id": "shortstr",
}
"""The AMQP type of each basic property a message can carry (`headers` aside). `expiration`
is a short string of decimal digits (milliseconds), `timestamp` seconds since 1970."""

_OCTET_HINTS = {"delivery_mode": " (2: persistent, 1: transient)", "priority": ""}


def property_value(name: str, value: object, call: str = "basic_publish") -> object:
    """`value` of basic property `name` as the properties codec takes it, checked.

    Short strings: `str` of at most 255 bytes of UTF-8. `delivery_mode` and `priority`: an
    `int` from 0 to 255 (`delivery_mode` 2 is persistent, 1 transient). `expiration`: a `str`
    of decimal digits, milliseconds (an `int` is refused, with the hint to write it as a
    string). `timestamp`: an `int` of seconds since 1970, or a `datetime` (a naive one is taken
    as UTC), which becomes its whole seconds.
    """
    kind = PROPERTY_TYPES[name]
    if kind == "shortstr":
        if type(value) is str and value.isascii() and len(value) <= 255:  # the usual case
            return value
        check_shortstr(value, f"property {name}", call)
        return value
    if kind == "octet":
        if type(value) is int and 0 <= value <= 255:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            refuse_type(value, f"property {name}", call, f"an int{_OCTET_HINTS[name]}")
        raise ValueError(
            f"{_where(call, f'property {name}')} must be from 0 to 255{_OCTET_HINTS[name]}, "
            f"not {value}"
        )
    if kind == "expiration":
        if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 255:
            return value
        what = "a str of decimal digits (milliseconds, e.g. '60000')"
        if isinstance(value, int) and not isinstance(value, bool):
            raise TypeError(
                f"{_where(call, 'property expiration')} must be a str of decimal digits "
                f"(milliseconds), not int ({value}): write '{value}'"
            )
        if not isinstance(value, str):
            refuse_type(value, "property expiration", call, what)
        check_shortstr(value, "property expiration", call)
        raise ValueError(f"{_where(call, 'property expiration')} must be {what}, not {value!r}")
    # timestamp
    if type(value) is int and 0 <= value <= 0xFFFFFFFFFFFFFFFF:
        return value
    if isinstance(value, datetime.datetime):
        try:
            return timestamp_seconds(value)
        except ValueError as exc:
            raise ValueError(f"{_where(call, 'property timestamp')}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        refuse_type(value, "property timestamp", call, "an int (seconds since 1970) or a datetime")
    return check_int(value, "property timestamp", call, 0, 0xFFFFFFFFFFFFFFFF)


# ---------------------------------------------------------------------------------------------
# Constructors
# ---------------------------------------------------------------------------------------------


def check_client_options(call: str, options: dict[str, Any]) -> None:
    """The options of a client's constructor (`puka.Client`, `puka_asyncio.connect`), named as
    arguments of `call` (the URL parser checks them again, with the URL's own parameters), and
    `ssl` aside: `puka.tls.check_ssl_context` (this module imports no I/O module)."""
    for name, value in options.items():
        if name == "amqp_url":
            _check_urls(value, call)
        elif name == "pubacks":
            if value is not None:
                check_bool(value, name, call)
        elif name == "shuffle":
            check_bool(value, name, call)
        elif name == "client_properties":
            check_table(value, name, call)
        elif name == "reconnect":
            if value is not True and value is not False and not isinstance(value, Recovery):
                refuse_type(value, name, call, "a bool or a puka.Recovery")
        elif name in ("blocked_timeout", "handshake_timeout", "connection_timeout"):
            check_timeout(value, name, call, positive=True)
        elif name == "heartbeat":
            if value is not None:
                check_int(value, name, call, 0, 0xFFFF)
        elif name == "max_message_size":
            if value is not None:
                check_int(value, name, call, 1)
        elif name == "connection_name":
            if value is not None and not isinstance(value, str):
                refuse_type(value, name, call, "a str or None")
            if value == "":
                raise ValueError(f"{_where(call, name)} must not be empty")
        else:  # a programming error of Puka's, not the caller's
            raise AssertionError(f"no check for option {name!r}")


def _check_urls(value: object, call: str) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                refuse_type(item, f"amqp_url[{index}]", call, "a str")
        return
    refuse_type(value, "amqp_url", call, "a str (URLs separated by commas) or a list of str")
