"""Field tables and arrays: every RabbitMQ type, round trips, and malformed input."""

from __future__ import annotations

import contextlib
import datetime
import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from puka_spec import EncodingError, decode_array, decode_table, encode_array, encode_table
from puka_spec.exceptions import FrameError
from puka_spec.table import MAX_NESTING

from .strategies import UTC, field_tables, field_values


@given(field_tables)
def test_tables_round_trip(table: dict) -> None:  # type: ignore[type-arg]
    data = encode_table(table)
    decoded, end = decode_table(data)
    assert end == len(data)
    assert decoded == table


@given(st.lists(field_values, max_size=10))
def test_arrays_round_trip(array: list) -> None:  # type: ignore[type-arg]
    data = encode_array(array)
    assert decode_array(data) == (array, len(data))


@given(field_tables, st.binary(max_size=20))
def test_decoding_ignores_what_follows(table: dict, trailing: bytes) -> None:  # type: ignore[type-arg]
    data = encode_table(table)
    assert decode_table(b"pre" + data + trailing, 3) == (table, 3 + len(data))


def _entry(kind: bytes, payload: bytes) -> bytes:
    entry = b"\x01k" + kind + payload
    return struct.pack(">I", len(entry)) + entry


@pytest.mark.parametrize(
    ("kind", "payload", "value"),
    [
        (b"t", b"\x01", True),
        (b"t", b"\x00", False),
        (b"b", b"\xff", -1),
        (b"B", b"\xff", 255),
        (b"s", b"\xff\xfe", -2),
        (b"u", b"\xff\xfe", 65534),
        (b"I", b"\xff\xff\xff\xfd", -3),
        (b"i", b"\xff\xff\xff\xfd", 4294967293),
        (b"l", b"\xff" * 8, -1),
        (b"L", b"\xff" * 8, 2**64 - 1),
        (b"f", struct.pack(">f", 1.5), 1.5),
        (b"d", struct.pack(">d", -2.25), -2.25),
        (b"D", b"\x02\x00\x00\x01\x2c", Decimal("3.00")),
        (b"D", b"\x01\xff\xff\xff\xf6", Decimal("-1.0")),
        (b"S", b"\x00\x00\x00\x04\xc5\xbc\xc3\xb3", "żó"),
        (b"S", b"\x00\x00\x00\x02\xff\xfe", b"\xff\xfe"),  # not UTF-8: bytes
        (b"x", b"\x00\x00\x00\x03\x00\x01\x02", b"\x00\x01\x02"),
        (b"A", b"\x00\x00\x00\x06I\x00\x00\x00\x01V", [1, None]),
        (
            b"T",
            b"\x00\x00\x00\x00\x65\x53\xf1\x00",
            datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
        ),
        (b"F", b"\x00\x00\x00\x03\x01aV", {"a": None}),
        (b"V", b"", None),
    ],
)
def test_every_rabbitmq_type_decodes(kind: bytes, payload: bytes, value: object) -> None:
    table, _ = decode_table(_entry(kind, payload))
    assert table == {"k": value}
    assert type(table["k"]) is type(value)


def test_encoding_picks_types() -> None:
    assert encode_table({"a": 1})[4:] == b"\x01aI\x00\x00\x00\x01"
    assert encode_table({"a": 2**40})[4:] == b"\x01al" + struct.pack(">q", 2**40)
    assert encode_table({"a": 2**63})[4:] == b"\x01aL" + struct.pack(">Q", 2**63)
    assert encode_table({"a": True})[4:] == b"\x01at\x01"
    assert encode_table({"a": b"\x00"})[4:] == b"\x01ax\x00\x00\x00\x01\x00"
    assert encode_table({"a": "é"})[4:] == b"\x01aS\x00\x00\x00\x02\xc3\xa9"
    assert encode_table(None) == encode_table({}) == b"\x00\x00\x00\x00"


def test_naive_datetimes_are_utc_and_whole_seconds() -> None:
    naive = datetime.datetime(2024, 1, 2, 3, 4, 5, 999_999)
    table, _ = decode_table(encode_table({"t": naive}))
    assert table["t"] == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_timestamp_out_of_datetime_range_stays_an_int() -> None:
    table, _ = decode_table(_entry(b"T", b"\xff" * 8))
    assert table == {"k": 2**64 - 1}


@pytest.mark.parametrize(
    "value",
    [
        2**64,
        -(2**63) - 1,
        object(),
        {1: "non-str key"},
        {"k" * 256: 1},
        Decimal("NaN"),
        Decimal(2**40),
        Decimal("1e-300"),
        datetime.datetime(1960, 1, 1),
    ],
)
def test_unencodable_values_raise_encoding_error(value: object) -> None:
    with pytest.raises(EncodingError):
        encode_table(value if isinstance(value, dict) else {"v": value})  # type: ignore[arg-type]


def test_nesting_is_bounded_both_ways() -> None:
    deep: dict = {}  # type: ignore[type-arg]
    node = deep
    for _ in range(MAX_NESTING - 1):
        node["n"] = {}
        node = node["n"]
    data = encode_table(deep)
    assert decode_table(data)[0] == deep
    node["n"] = {}
    with pytest.raises(EncodingError, match="deeper"):
        encode_table(deep)
    # a hand-made table nested 65 deep is refused by the decoder
    inner = b"\x00\x00\x00\x00"
    for _ in range(MAX_NESTING):
        entry = b"\x01nF" + inner
        inner = struct.pack(">I", len(entry)) + entry
    with pytest.raises(FrameError, match="deeper"):
        decode_table(inner)


def test_self_referencing_table_is_an_encoding_error() -> None:
    loop: dict = {}  # type: ignore[type-arg]
    loop["self"] = loop
    with pytest.raises(EncodingError):
        encode_table(loop)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x10\x01k",  # length past the end
        b"\x00\x00",  # length itself truncated
        b"\x00\x00\x00\x03\x01kZ",  # unknown type
        b"\x00\x00\x00\x04\x02\xff\xfeV",  # key not UTF-8
        b"\x00\x00\x00\x08\x01kS\x00\x00\x00\x09",  # long string past the table
        b"\x00\x00\x00\x06\x01kI\x00\x00",  # int past the table
        b"\x00\x00\x00\x04\x01kA\x00",  # array length truncated
        b"\x00\x00\x00\x0a\x01kF\x00\x00\x00\x05\x01aV",  # inner table past the outer end
    ],
)
def test_malformed_tables_raise_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_table(data)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_table(data)
