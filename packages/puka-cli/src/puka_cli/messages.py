"""The JSON-lines message schema, and its conversion to and from Puka messages.

Every command that writes messages (`get`, `consume`, `tap`, `rpc`, `dump`) and the one that
reads them (`restore`) use one JSON object per message:

    {"exchange": "orders", "routing_key": "order.created", "redelivered": false,
     "properties": {"content_type": "application/json", "delivery_mode": 2,
                    "timestamp": 1700000000, "message_id": "42"},
     "headers": {"x-retries": 3, "x-price": {"$decimal": "9.99"}},
     "body": "{\\"id\\": 42}"}

- `body` is the body decoded as UTF-8 when it is valid UTF-8; otherwise it is base64 and
  `"body_encoding": "base64"` says so (`"utf-8"` is the default when absent).
- `properties` holds the AMQP basic properties that are set: `content_type`,
  `content_encoding`, `delivery_mode` (1 or 2), `priority` (0-255), `correlation_id`,
  `reply_to`, `expiration` (a string of milliseconds), `message_id`, `timestamp` (seconds
  since the epoch, an integer), `type`, `user_id`, `app_id`.
- `headers` is the application headers table. JSON has no bytes, decimals or timestamps and
  does not tell an integer from a float, so those values are tagged with a one-key object:
  `{"$bytes": "<base64>"}`, `{"$decimal": "9.99"}`, `{"$timestamp": "2024-05-01T12:00:00Z"}`,
  `{"$float": 1.5}` (or `"NaN"`, `"Infinity"`, `"-Infinity"`), and `{"$int": "<digits>"}` for
  integers beyond ±2**53 (plain JSON integers are read as integers too). A nested table that
  itself has exactly one key starting with `$` is wrapped as `{"$table": {...}}`. Strings,
  booleans, null, integers, arrays and tables are plain JSON.
- On output, delivered messages also carry what the broker said about the delivery:
  `exchange`, `routing_key`, `redelivered`, and where it applies `delivery_tag`,
  `message_count` (messages left, for `get`), `consumer_tag` and `queue`. On input only
  `exchange`, `routing_key`, `properties`, `headers`, `body` and `body_encoding` are read.

`dump` followed by `restore` gives back the same bodies, properties and header values, with
their Python types (bytes, Decimal, datetime, int, float, bool, None, str, lists, tables).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from puka.messages import PROPERTY_NAMES
from puka.results import Result

from puka_cli.checks import need_type
from puka_cli.errors import DataError

__all__ = [
    "INT_PROPERTIES",
    "PROPERTIES",
    "Message",
    "body_from_record",
    "from_json_value",
    "json_to_table",
    "message_from_record",
    "parse_property",
    "record_from_result",
    "split_headers",
    "table_to_json",
    "to_json_value",
]

PROPERTIES: tuple[str, ...] = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)
"""The basic properties a message record can carry, in the order they are shown."""

INT_PROPERTIES = frozenset({"delivery_mode", "priority", "timestamp"})
"""Properties whose value is an integer."""

_OCTET_PROPERTIES = frozenset({"delivery_mode", "priority"})
_TAGS = frozenset({"$bytes", "$decimal", "$timestamp", "$float", "$int", "$table"})
_JSON_SAFE_INT = 2**53
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)

# Keys of a delivered message result copied into a record, in order.
_DELIVERY_FIELDS = ("exchange", "routing_key", "redelivered", "delivery_tag", "message_count")


# ---------------------------------------------------------------------------------------------
# Field values: Python ↔ tagged JSON
# ---------------------------------------------------------------------------------------------


def to_json_value(value: Any) -> Any:
    """A field-table value as JSON-compatible data, tagged where JSON would lose its type."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if -_JSON_SAFE_INT <= value <= _JSON_SAFE_INT:
            return value
        return {"$int": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"$float": "NaN"}
        if math.isinf(value):
            return {"$float": "Infinity" if value > 0 else "-Infinity"}
        return {"$float": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, datetime.datetime):
        return {"$timestamp": _format_timestamp(value)}
    if isinstance(value, dict):
        return table_to_json(value)
    if isinstance(value, (list, tuple)):
        return [to_json_value(item) for item in value]
    raise TypeError(f"cannot represent a {type(value).__name__} in a message record")


def table_to_json(table: Mapping[str, Any]) -> dict[str, Any]:
    """A field table as a JSON object (values tagged; an ambiguous table wrapped in `$table`)."""
    need_type(table, Mapping, "table")
    converted = {str(key): to_json_value(value) for key, value in table.items()}
    if len(converted) == 1 and next(iter(converted)).startswith("$"):
        return {"$table": converted}
    return converted


def from_json_value(data: Any, where: str = "value") -> Any:
    """The field-table value that tagged JSON data stands for (`DataError` if malformed)."""
    need_type(where, str, "where")
    if data is None or isinstance(data, (bool, str, int)):
        return data
    if isinstance(data, float):
        # an untagged JSON number with a fraction: written by hand; a float is what it says
        return data
    if isinstance(data, list):
        return [from_json_value(item, f"{where}[{index}]") for index, item in enumerate(data)]
    if isinstance(data, dict):
        if len(data) == 1:
            ((tag, inner),) = data.items()
            if tag in _TAGS:
                return _untag(tag, inner, where)
        return json_to_table(data, where)
    raise DataError(f"{where}: unsupported JSON value {data!r}")


def json_to_table(data: Any, where: str = "headers") -> dict[str, Any]:
    """A field table from a JSON object written by `table_to_json` (or by hand)."""
    need_type(where, str, "where")
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(data).__name__}")
    if len(data) == 1 and "$table" in data:
        data = data["$table"]
        if not isinstance(data, dict):
            raise DataError(f"{where}: $table must hold a JSON object")
    return {str(key): from_json_value(value, f"{where}.{key}") for key, value in data.items()}


def _untag(tag: str, inner: Any, where: str) -> Any:
    try:
        if tag == "$bytes":
            return base64.b64decode(_need_str(inner, tag), validate=True)
        if tag == "$decimal":
            value = Decimal(_need_str(inner, tag))
            if not value.is_finite():
                raise ValueError("a decimal must be finite")
            return value
        if tag == "$timestamp":
            return parse_timestamp(inner)
        if tag == "$float":
            if isinstance(inner, str):
                if inner not in ("NaN", "Infinity", "-Infinity"):
                    raise ValueError(f"{inner!r} is not NaN, Infinity or -Infinity")
                return float(inner)
            if isinstance(inner, bool) or not isinstance(inner, (int, float)):
                raise ValueError("$float takes a number")
            return float(inner)
        if tag == "$int":
            if isinstance(inner, bool):
                raise ValueError("$int takes digits")
            return int(inner) if isinstance(inner, int) else int(_need_str(inner, tag), 10)
        return json_to_table(inner, where)  # $table
    except (ValueError, TypeError, InvalidOperation, binascii.Error) as exc:
        raise DataError(f"{where}: bad {tag} value {inner!r}: {exc}") from None


def _need_str(value: Any, tag: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{tag} takes a string")
    return value


def _format_timestamp(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    value = value.astimezone(_UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_timestamp(value: Any) -> datetime.datetime:
    """A UTC datetime from seconds since the epoch or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, bool):
        raise ValueError("a timestamp is a number of seconds or an ISO 8601 date and time")
    if isinstance(value, (int, float)):
        return _EPOCH + datetime.timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError("a timestamp is a number of seconds or an ISO 8601 date and time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    return parsed.astimezone(_UTC)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


def parse_property(name: str, value: Any, where: str = "properties") -> Any:
    """Check (and for the command line, convert from text) one basic property's value."""
    need_type(name, str, "name")
    need_type(where, str, "where")
    if name not in PROPERTIES:
        raise DataError(
            f"{where}: unknown property {name!r} (properties: {', '.join(PROPERTIES)}; "
            "anything else is a header)"
        )
    if value is None:
        return None
    if name in INT_PROPERTIES:
        if isinstance(value, str):
            value = _property_int_from_text(name, value, where)
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{where}.{name}: expected an integer, got {value!r}")
        limit = 255 if name in _OCTET_PROPERTIES else 2**64 - 1
        if not 0 <= value <= limit:
            raise DataError(f"{where}.{name}: {value} is out of range (0 to {limit})")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "expiration":
        return str(value)
    if not isinstance(value, str):
        raise DataError(f"{where}.{name}: expected a string, got {value!r}")
    if len(value.encode()) > 255:
        raise DataError(f"{where}.{name}: longer than 255 bytes")
    return value


def _property_int_from_text(name: str, text: str, where: str) -> int:
    text = text.strip()
    if name == "timestamp":
        if text == "now":
            return int(datetime.datetime.now(_UTC).timestamp())
        if not text.isdigit():
            try:
                return int(parse_timestamp(text).timestamp())
            except ValueError as exc:
                raise DataError(f"{where}.timestamp: {exc}") from None
    if name == "delivery_mode" and text in ("persistent", "transient"):
        return 2 if text == "persistent" else 1
    try:
        return int(text, 10)
    except ValueError:
        raise DataError(f"{where}.{name}: expected an integer, got {text!r}") from None


def split_headers(headers: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Puka's merged `headers` dict split into (basic properties, application headers)."""
    need_type(headers, Mapping, "headers")
    properties: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for key, value in headers.items():
        if key in PROPERTY_NAMES:
            if value is not None and key in PROPERTIES:
                properties[key] = value
        else:
            table[key] = value
    return properties, table


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def record_from_result(result: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The JSON record of a message delivered by `basic_get` or a consume."""
    need_type(result, Mapping, "result")
    record: dict[str, Any] = {}
    for key in _DELIVERY_FIELDS:
        if key in result:
            record[key] = result[key]
    record.update((key, value) for key, value in extra.items() if value is not None)
    if isinstance(result, Result):  # apart: an application header named like a property stays one
        properties = {k: v for k, v in result.properties.items() if k in PROPERTIES}
        table = result.application_headers
    else:
        properties, table = split_headers(result.get("headers") or {})
    if properties:
        record["properties"] = {name: properties[name] for name in PROPERTIES if name in properties}
    if table:
        record["headers"] = table_to_json(table)
    body: bytes = result.get("body", b"")
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body"] = base64.b64encode(body).decode("ascii")
        record["body_encoding"] = "base64"
    return record


@dataclass
class Message:
    """A message to publish: where to, its basic properties, its application headers (apart, as
    `basic_publish(properties=..., headers=...)` takes them), and the body."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    exchange: str | None = None
    routing_key: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        need_type(self.body, bytes, "body")
        need_type(self.headers, dict, "headers")
        need_type(self.properties, dict, "properties")
        need_type(self.exchange, (str, type(None)), "exchange")
        need_type(self.routing_key, (str, type(None)), "routing_key")


def body_from_record(record: Mapping[str, Any], where: str = "message") -> bytes:
    """The body bytes of a record (`body` as UTF-8, or base64 with `body_encoding`)."""
    need_type(record, Mapping, "record")
    need_type(where, str, "where")
    body = record.get("body", "")
    encoding = record.get("body_encoding", "utf-8")
    if not isinstance(body, str):
        raise DataError(f"{where}: body must be a string")
    if encoding in ("utf-8", "utf8"):
        return body.encode("utf-8", "surrogatepass")
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise DataError(f"{where}: body is not valid base64: {exc}") from None
    raise DataError(f"{where}: unknown body_encoding {encoding!r} (expected utf-8 or base64)")


def message_from_record(record: Any, where: str = "message") -> Message:
    """A message to publish from a JSON record (see the module documentation).

    `record` is parsed JSON, so anything but an object is a `DataError` (bad input data);
    `where`, the caller's description of it, must be a string.
    """
    need_type(where, str, "where")
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object")
    headers: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    raw_headers = record.get("headers")
    if raw_headers is not None:
        headers.update(json_to_table(raw_headers, f"{where}: headers"))
    raw_properties = record.get("properties")
    if raw_properties is not None:
        if not isinstance(raw_properties, dict):
            raise DataError(f"{where}: properties must be a JSON object")
        for name, value in raw_properties.items():
            parsed = parse_property(name, value, f"{where}: properties")
            if parsed is not None:
                properties[name] = parsed
    exchange = record.get("exchange")
    routing_key = record.get("routing_key")
    for name, value in (("exchange", exchange), ("routing_key", routing_key)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: {name} must be a string")
    return Message(
        body=body_from_record(record, where),
        headers=headers,
        exchange=exchange,
        routing_key=routing_key,
        properties=properties,
    )


def parse_record_line(line: str | bytes, where: str) -> Message:
    """One JSON line as a message (`DataError` naming `where` if it is malformed)."""
    need_type(line, (str, bytes), "line")
    need_type(where, str, "where")
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: not valid JSON: {exc}") from None
    return message_from_record(data, where)
