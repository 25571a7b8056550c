"""Field tables and arrays: the typed values AMQP carries in arguments and headers.

Every type RabbitMQ reads or writes is decoded (see the table below). Encoding picks a type from
the Python value:

| Python value | wire type | decoded back as |
|---|---|---|
| `None` | `V` void | `None` |
| `bool` | `t` boolean | `bool` |
| `int` in int32 range | `I` signed 32-bit | `int` |
| `int` in int64 range | `l` signed 64-bit | `int` |
| `int` in uint64 range | `L` unsigned 64-bit | `int` |
| `float` | `d` double | `float` |
| `decimal.Decimal` | `D` decimal (scale octet, signed 32-bit value) | `Decimal` |
| `str` | `S` long string, UTF-8 | `str` |
| `bytes`, `bytearray`, `memoryview` | `x` byte array | `bytes` |
| `datetime.datetime` | `T` timestamp, whole seconds; naive means UTC | aware UTC `datetime` |
| `dict` | `F` nested table | `dict` |
| `list`, `tuple` | `A` array | `list` |

On decoding, `b B s u i` (8-, 16- and unsigned 32-bit integers) become `int` and `f` becomes
`float`. An `S` long string that is not valid UTF-8 is returned as `bytes` (other clients put
binary data there), so `bytes` ↔ `x` is the exact round trip for binary data and `str` ↔ `S`
for text. A timestamp outside the range of `datetime` is returned as its raw `int`.

Lengths are counted in UTF-8 bytes. Nesting is limited to 64 levels both ways; malformed input
raises `FrameError` (reply code 501), an unencodable value raises `EncodingError`.
"""

from __future__ import annotations

import datetime
import struct
from decimal import Decimal
from typing import Union

from puka_spec.exceptions import EncodingError, FrameError

__all__ = [
    "MAX_NESTING",
    "FieldArray",
    "FieldTable",
    "FieldValue",
    "decode_array",
    "decode_table",
    "encode_array",
    "encode_table",
    "timestamp_seconds",
]

FieldValue = Union[
    None,
    bool,
    int,
    float,
    str,
    bytes,
    Decimal,
    datetime.datetime,
    "FieldTable",
    "FieldArray",
]
"""A value a field table or array can hold."""
FieldTable = dict[str, FieldValue]
"""A field table: string keys (at most 255 UTF-8 bytes) to typed values."""
FieldArray = list[FieldValue]
"""A field array: a list of typed values."""

MAX_NESTING = 64
"""Deepest nesting of tables and arrays accepted or produced."""

_EMPTY = b"\x00\x00\x00\x00"
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)

_U8 = struct.Struct(">B")
_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_DEC = struct.Struct(">Bi")
_STR_HEAD = struct.Struct(">BI")  # type S and the string's length
_INT_VALUE = struct.Struct(">Bi")  # type I and a signed 32-bit value
_LONG_VALUE = struct.Struct(">Bq")  # type l and a signed 64-bit value

_T_STR = b"S"
_T_INT = b"I"
_T_LONG = b"l"
_T_ULONG = b"L"
_T_BOOL_TRUE = b"t\x01"
_T_BOOL_FALSE = b"t\x00"
_T_VOID = b"V"


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def encode_table(table: FieldTable | None) -> bytes:
    """Encode a field table, with its 4-byte length prefix.

    `None` and `{}` both encode as the empty table.
    """
    return encode_table_at(table, 0)


def encode_array(array: FieldArray | tuple[FieldValue, ...]) -> bytes:
    """Encode a field array, with its 4-byte length prefix."""
    return _encode_array(array, 0)


OCTETS = tuple(bytes((n,)) for n in range(256))
"""`OCTETS[n]` is the one-byte `bytes` of `n`, 0 ≤ n ≤ 255: length octets and bit fields."""

SHORTSTRS_MAX = 512
SHORTSTRS: dict[str, bytes] = {}
"""Short strings encoded lately → their wire form (length octet and UTF-8 bytes).

Names repeat: exchanges, routing keys, queues, consumer tags, content types, table keys. Generated
encoders look a `str` up here first, `SHORTSTRS.get(s) or encode_shortstr(s, what)`, and only
encode it on a miss. Only valid short strings of type `str` are stored, and the dict is emptied
when it holds `SHORTSTRS_MAX` of them, so it stays small whatever the application sends.
"""


_cached = SHORTSTRS.get  # a short string's wire form, when SHORTSTRS has it


def encode_shortstr(value: str, what: str) -> bytes:
    """`value` as a short string (length octet and UTF-8 bytes), remembered in `SHORTSTRS`.

    Raises `EncodingError` ("`what` is longer than 255 bytes") for a string too long.
    """
    data = value.encode()
    if len(data) > 255:
        raise EncodingError(f"{what} is longer than 255 bytes")
    data = OCTETS[len(data)] + data
    if type(value) is str:
        if len(SHORTSTRS) >= SHORTSTRS_MAX:
            SHORTSTRS.clear()
        SHORTSTRS[value] = data
    return data


def _encode_key(key: object) -> bytes:
    """A field table key on a `SHORTSTRS` miss."""
    if not isinstance(key, str):
        raise EncodingError(f"field table key {key!r} is not a str")
    try:
        return encode_shortstr(key, "field table key")
    except EncodingError:
        raise EncodingError(f"field table key {key[:40]!r}… is longer than 255 bytes") from None


def encode_table_at(table: FieldTable | None, depth: int) -> bytes:
    """`encode_table` for a table nested `depth` levels deep (generated encoders pass 0)."""
    if depth >= MAX_NESTING:
        raise EncodingError(f"field tables nest deeper than {MAX_NESTING} levels")
    if not table:
        return _EMPTY
    parts: list[bytes] = []
    for key, value in table.items():
        parts.append(_cached(key) or _encode_key(key))
        if type(value) is str:  # by far the most common value: inlined
            data = value.encode()
            parts.append(_STR_HEAD.pack(83, len(data)))
            parts.append(data)
        elif type(value) is int and -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
            # the next most common (counters, ids, times), inlined too; not bool: its own type
            if -0x80000000 <= value <= 0x7FFFFFFF:
                parts.append(_INT_VALUE.pack(73, value))
            else:
                parts.append(_LONG_VALUE.pack(108, value))
        else:
            parts.append(_encode_value(value, depth))
    payload = b"".join(parts)
    return _U32.pack(len(payload)) + payload


def _encode_array(array: FieldArray | tuple[FieldValue, ...], depth: int) -> bytes:
    if depth >= MAX_NESTING:
        raise EncodingError(f"field arrays nest deeper than {MAX_NESTING} levels")
    payload = b"".join([_encode_value(v, depth) for v in array])
    return _U32.pack(len(payload)) + payload


def _encode_value(value: object, depth: int) -> bytes:
    if isinstance(value, str):
        vb = value.encode("utf-8")
        return _T_STR + _U32.pack(len(vb)) + vb
    if value is True:
        return _T_BOOL_TRUE
    if value is False:
        return _T_BOOL_FALSE
    if isinstance(value, int):
        if -0x80000000 <= value <= 0x7FFFFFFF:
            return _T_INT + _I32.pack(value)
        if -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
            return _T_LONG + _I64.pack(value)
        if 0 <= value <= 0xFFFFFFFFFFFFFFFF:
            return _T_ULONG + _U64.pack(value)
        raise EncodingError(f"integer {value} does not fit in 64 bits")
    if value is None:
        return _T_VOID
    if isinstance(value, dict):
        return b"F" + encode_table_at(value, depth + 1)
    if isinstance(value, (list, tuple)):
        return b"A" + _encode_array(value, depth + 1)
    if isinstance(value, float):
        return b"d" + _F64.pack(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        vb = bytes(value)
        return b"x" + _U32.pack(len(vb)) + vb
    if isinstance(value, Decimal):
        return b"D" + _encode_decimal(value)
    if isinstance(value, datetime.datetime):
        return b"T" + _encode_timestamp(value)
    raise EncodingError(f"cannot put a {type(value).__name__} in a field table")


def _encode_decimal(value: Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise EncodingError(f"decimal {value} is not finite")
    unscaled = 0
    for digit in digits:
        unscaled = unscaled * 10 + digit
    if exponent > 0:
        unscaled *= 10**exponent
        exponent = 0
    if sign:
        unscaled = -unscaled
    scale = -exponent
    if scale > 255 or not -0x80000000 <= unscaled <= 0x7FFFFFFF:
        raise EncodingError(f"decimal {value} does not fit AMQP's scale octet and 32-bit value")
    return _DEC.pack(scale, unscaled)


def timestamp_seconds(value: datetime.datetime) -> int:
    """An AMQP timestamp: whole seconds since 1970 UTC (a naive `datetime` is taken as UTC).

    Raises `EncodingError` for a moment before 1970.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    seconds = (value - _EPOCH) // datetime.timedelta(seconds=1)
    if not 0 <= seconds <= 0xFFFFFFFFFFFFFFFF:
        raise EncodingError(f"timestamp {value.isoformat()} is before 1970")
    return seconds


def _encode_timestamp(value: datetime.datetime) -> bytes:
    return _U64.pack(timestamp_seconds(value))


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def decode_table(buf: bytes, offset: int = 0) -> tuple[FieldTable, int]:
    """Decode the field table at `offset` of `buf`; return it and the offset after it.

    Raises `FrameError` when the bytes are not a well-formed table.
    """
    try:
        return decode_table_unchecked(buf, offset, 0)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed field table: {exc}") from None


def decode_array(buf: bytes, offset: int = 0) -> tuple[FieldArray, int]:
    """Decode the field array at `offset` of `buf`; return it and the offset after it."""
    try:
        return _decode_array(buf, offset, 0)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"malformed field array: {exc}") from None


def decode_table_unchecked(buf: bytes, offset: int, depth: int = 0) -> tuple[FieldTable, int]:
    """Decode a field table, letting `IndexError`, `struct.error` and `UnicodeDecodeError` out.

    For generated decoders that translate those errors once for a whole method.
    """
    if depth >= MAX_NESTING:
        raise FrameError(f"field tables nest deeper than {MAX_NESTING} levels")
    (length,) = _U32.unpack_from(buf, offset)
    offset += 4
    end = offset + length
    if end > len(buf):
        raise FrameError(f"field table of {length} bytes runs past the end of the frame")
    table: FieldTable = {}
    while offset < end:
        n = buf[offset]
        offset += 1 + n
        key = buf[offset - n : offset].decode()
        if buf[offset] == 83:  # S, by far the most common: inlined
            (n,) = _U32.unpack_from(buf, offset + 1)
            offset += 5 + n  # a short slice leaves offset past `end`: caught below
            raw = buf[offset - n : offset]
            try:
                table[key] = raw.decode()
            except UnicodeDecodeError:
                table[key] = raw
        else:
            table[key], offset = _decode_value(buf, offset, depth)
    if offset != end:
        raise FrameError("field table entries overrun the table's length")
    return table, offset


def _decode_array(buf: bytes, offset: int, depth: int) -> tuple[FieldArray, int]:
    if depth >= MAX_NESTING:
        raise FrameError(f"field arrays nest deeper than {MAX_NESTING} levels")
    (length,) = _U32.unpack_from(buf, offset)
    offset += 4
    end = offset + length
    if end > len(buf):
        raise FrameError(f"field array of {length} bytes runs past the end of the frame")
    array: FieldArray = []
    append = array.append
    while offset < end:
        value, offset = _decode_value(buf, offset, depth)
        append(value)
    if offset != end:
        raise FrameError("field array entries overrun the array's length")
    return array, offset


def _decode_value(buf: bytes, offset: int, depth: int) -> tuple[FieldValue, int]:
    kind = buf[offset]
    offset += 1
    if kind == 83:  # S
        (n,) = _U32.unpack_from(buf, offset)
        offset += 4
        raw = buf[offset : offset + n]
        if len(raw) != n:
            raise FrameError("long string runs past the end of the frame")
        try:
            return raw.decode(), offset + n
        except UnicodeDecodeError:
            return raw, offset + n
    if kind == 73:  # I
        return _I32.unpack_from(buf, offset)[0], offset + 4
    if kind == 116:  # t
        return buf[offset] != 0, offset + 1
    if kind == 70:  # F
        return decode_table_unchecked(buf, offset, depth + 1)
    if kind == 108:  # l
        return _I64.unpack_from(buf, offset)[0], offset + 8
    if kind == 65:  # A
        return _decode_array(buf, offset, depth + 1)
    if kind == 86:  # V
        return None, offset
    if kind == 120:  # x
        (n,) = _U32.unpack_from(buf, offset)
        offset += 4
        raw = buf[offset : offset + n]
        if len(raw) != n:
            raise FrameError("byte array runs past the end of the frame")
        return raw, offset + n
    if kind == 84:  # T
        (seconds,) = _U64.unpack_from(buf, offset)
        try:
            return _EPOCH + datetime.timedelta(seconds=seconds), offset + 8
        except OverflowError:
            return seconds, offset + 8
    if kind == 100:  # d
        return _F64.unpack_from(buf, offset)[0], offset + 8
    if kind == 68:  # D
        scale, unscaled = _DEC.unpack_from(buf, offset)
        return Decimal(unscaled).scaleb(-scale), offset + 5
    if kind == 98:  # b
        return _I8.unpack_from(buf, offset)[0], offset + 1
    if kind == 66:  # B
        return buf[offset], offset + 1
    if kind == 115:  # s
        return _I16.unpack_from(buf, offset)[0], offset + 2
    if kind == 117:  # u
        return _U16.unpack_from(buf, offset)[0], offset + 2
    if kind == 105:  # i
        return _U32.unpack_from(buf, offset)[0], offset + 4
    if kind == 76:  # L
        return _U64.unpack_from(buf, offset)[0], offset + 8
    if kind == 102:  # f
        return _F32.unpack_from(buf, offset)[0], offset + 4
    raise FrameError(f"unknown field type {chr(kind)!r} (0x{kind:02x}) in a field table")
