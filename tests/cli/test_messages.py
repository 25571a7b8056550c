"""The JSON-lines message schema: tagged values, records, and their exact round trip."""

from __future__ import annotations

import datetime
import json
import math
from decimal import Decimal
from typing import Any

import pytest
from puka.messages import headers_to_properties
from puka_cli.errors import DataError
from puka_cli.messages import (
    from_json_value,
    json_to_table,
    message_from_record,
    parse_property,
    parse_record_line,
    record_from_result,
    table_to_json,
    to_json_value,
)
from puka_cli.output import json_dumps
from puka_spec import BasicProperties

UTC = datetime.timezone.utc

EVERY_TYPE: dict[str, Any] = {
    "str": "héllo",
    "empty": "",
    "int": 42,
    "negative": -7,
    "int64": 2**40,
    "uint64": 2**64 - 1,
    "float": 1.0,
    "float_frac": -2.5,
    "nan": float("nan"),
    "inf": float("inf"),
    "bool": True,
    "false": False,
    "none": None,
    "bytes": b"\x00\xff\x10binary",
    "decimal": Decimal("12.340"),
    "neg_decimal": Decimal("-0.5"),
    "ts": datetime.datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC),
    "list": [1, 2.0, "x", b"y", [None, {"a": Decimal("1")}]],
    "table": {"nested": {"deep": 1}, "f": 0.25},
    "dollar": {"$bytes": "not a tag"},
}


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_every_field_type_survives_json_text() -> None:
    text = json_dumps(table_to_json(EVERY_TYPE))
    back = json_to_table(json.loads(text))
    assert _same(back, EVERY_TYPE)


def test_ints_and_floats_stay_apart() -> None:
    assert to_json_value(1) == 1
    assert to_json_value(1.0) == {"$float": 1.0}
    assert type(from_json_value({"$float": 1})) is float
    assert from_json_value(3) == 3 and type(from_json_value(3)) is int


def test_big_ints_are_tagged_beyond_the_json_safe_range() -> None:
    assert to_json_value(2**53) == 2**53
    assert to_json_value(2**53 + 1) == {"$int": str(2**53 + 1)}
    assert from_json_value({"$int": "18446744073709551615"}) == 2**64 - 1


def test_a_table_that_looks_like_a_tag_is_wrapped() -> None:
    assert table_to_json({"$decimal": "x"}) == {"$table": {"$decimal": "x"}}
    assert json_to_table({"$table": {"$decimal": "x"}}) == {"$decimal": "x"}
    assert from_json_value({"k": {"$table": {"$bytes": "y"}}}) == {"k": {"$bytes": "y"}}


def test_timestamps_accept_seconds_and_offsets() -> None:
    moment = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    assert from_json_value({"$timestamp": "2024-01-01T00:00:00Z"}) == moment
    assert from_json_value({"$timestamp": "2024-01-01T01:00:00+01:00"}) == moment
    assert from_json_value({"$timestamp": 1704067200}) == moment
    naive = datetime.datetime(2024, 1, 1)
    assert to_json_value(naive) == {"$timestamp": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "bad",
    [
        {"$bytes": "not base64!"},
        {"$decimal": "abc"},
        {"$decimal": "NaN"},
        {"$timestamp": "yesterday"},
        {"$float": "lots"},
        {"$int": "12x"},
        {"$bytes": 5},
    ],
)
def test_bad_tags_are_data_errors(bad: Any) -> None:
    with pytest.raises(DataError):
        from_json_value(bad, "h")


def test_wire_encoding_of_the_decoded_values_is_identical() -> None:
    """What the schema gives back encodes to the same field-table bytes as the original."""
    headers = {k: v for k, v in EVERY_TYPE.items() if k not in ("nan",)}
    back = json_to_table(json.loads(json_dumps(table_to_json(headers))))
    assert headers_to_properties(back) == headers_to_properties(headers)


def _delivery(body: bytes, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "exchange": "ex",
        "routing_key": "rk",
        "redelivered": False,
        "delivery_tag": 3,
        "body": body,
        "headers": headers,
    }


def test_record_of_a_text_message() -> None:
    record = record_from_result(
        _delivery(b"hi \xc3\xa9", {"content_type": "text/plain", "x": 1}), queue="q"
    )
    assert record == {
        "exchange": "ex",
        "routing_key": "rk",
        "redelivered": False,
        "delivery_tag": 3,
        "queue": "q",
        "properties": {"content_type": "text/plain"},
        "headers": {"x": 1},
        "body": "hi é",
    }


def test_record_of_a_binary_message_round_trips() -> None:
    body = bytes(range(256))
    headers = {"delivery_mode": 2, "timestamp": 1700000000, "priority": 9, "h": b"\x00"}
    record = json.loads(json_dumps(record_from_result(_delivery(body, headers))))
    assert record["body_encoding"] == "base64"
    message = message_from_record(record)
    assert message.body == body
    # apart, as basic_publish(properties=..., headers=...) takes them (issue 19 item 3)
    assert message.properties == {"delivery_mode": 2, "timestamp": 1700000000, "priority": 9}
    assert message.headers == {"h": b"\x00"}
    assert (message.exchange, message.routing_key) == ("ex", "rk")


def test_every_property_round_trips() -> None:
    properties = {
        "content_type": "application/json",
        "content_encoding": "gzip",
        "delivery_mode": 2,
        "priority": 5,
        "correlation_id": "c",
        "reply_to": "r",
        "expiration": "1000",
        "message_id": "m",
        "timestamp": 1700000000,
        "type": "t",
        "user_id": "guest",
        "app_id": "a",
    }
    assert set(properties) == set(BasicProperties.NAMES) - {"headers", "reserved"}
    record = record_from_result(_delivery(b"{}", dict(properties)))
    assert record["properties"] == properties
    message = message_from_record(record)
    assert message.properties == properties and message.headers == {}


def test_records_are_validated() -> None:
    with pytest.raises(DataError, match="unknown property"):
        message_from_record({"properties": {"colour": "red"}})
    with pytest.raises(DataError, match="priority"):
        message_from_record({"properties": {"priority": 256}})
    with pytest.raises(DataError, match="base64"):
        message_from_record({"body": "%%%", "body_encoding": "base64"})
    with pytest.raises(DataError, match="body_encoding"):
        message_from_record({"body": "x", "body_encoding": "rot13"})
    with pytest.raises(DataError, match="line 3"):
        parse_record_line("{oops", "line 3")
    with pytest.raises(DataError, match="object"):
        message_from_record([1, 2])


def test_properties_from_the_command_line() -> None:
    assert parse_property("delivery_mode", "persistent") == 2
    assert parse_property("priority", "7") == 7
    assert parse_property("timestamp", "1970-01-02T00:00:00Z") == 86400
    assert abs(parse_property("timestamp", "now") - datetime.datetime.now(UTC).timestamp()) < 5
    assert parse_property("expiration", 5000) == "5000"
    with pytest.raises(DataError):
        parse_property("delivery_mode", "often")


def test_an_application_header_named_like_a_property_survives_a_dump_and_restore(
    cli: Any, amqp_url: str, unique_name: Any, tmp_path: Any
) -> None:
    """Issue 19 item 3 in the CLI: dump keeps a header named `type` apart from the `type`
    property, restore and shovel publish them apart, `publish -H` sends an application header."""
    import puka

    source, target = unique_name("props-src"), unique_name("props-dst")
    client = puka.Client(amqp_url)
    client.wait(client.connect())
    try:
        for queue in (source, target):
            client.wait(client.queue_declare(queue=queue))
        client.wait(
            client.basic_publish(
                "",
                source,
                properties={"type": "the-property"},
                headers={"type": "the-header", "priority": "high"},
                body=b"x",
            )
        )
        dump = tmp_path / "dump.jsonl"
        assert cli("dump", source, "-f", str(dump)).code == 0
        record = json.loads(dump.read_text().splitlines()[0])
        assert record["properties"] == {"type": "the-property"}
        assert record["headers"] == {"type": "the-header", "priority": "high"}
        assert cli("restore", "-f", str(dump), "-r", target).code == 0
        assert cli("shovel", source, target, "--until-empty").code == 0  # the original
        assert cli("publish", "-r", target, "-H", "type=from-cli", "one more").code == 0
        for _ in range(2):  # restored, then shovelled
            moved = client.wait(client.basic_get(queue=target, no_ack=True))
            assert moved.properties == {"type": "the-property"}
            assert moved.application_headers == {"type": "the-header", "priority": "high"}
        published = client.wait(client.basic_get(queue=target, no_ack=True))
        assert published.properties.get("type") is None
        assert published.application_headers == {"type": "from-cli"}
    finally:
        for queue in (source, target):
            client.wait(client.queue_delete(queue=queue))
        client.wait(client.close())
