"""atheris target: method, content header (basic properties) and field table decoding.

Every decoder must return a value or raise one of puka_spec's typed errors (never IndexError,
struct.error, KeyError, UnicodeDecodeError, OverflowError or OSError), and whatever decodes
must encode again and decode to the same value. Run by hand (see README.md).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["puka_spec"]):
    from puka_spec import (
        AMQPError,
        EncodingError,
        decode_array,
        decode_header,
        decode_method,
        decode_table,
        encode_array,
        encode_table,
    )
    from puka_spec.properties import BasicProperties


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


def test_one_input(data: bytes) -> None:
    """One fuzz input: which decoder, then its payload."""
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 3)
    payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        if which == 0:
            method = decode_method(payload)
            again = decode_method(method.encode())
            values = [getattr(method, name) for name, _kind in method.FIELDS]
            if again != method and not _has_nan(values):
                raise AssertionError(f"{method!r} re-decodes as {again!r}")
        elif which == 1:
            _class_id, _size, props = decode_header(payload)
            again_props, _ = BasicProperties.decode(props.encode(), 0)
            if again_props != props and not _has_nan(props.headers):
                raise AssertionError(f"{props!r} re-decodes as {again_props!r}")
        elif which == 2:
            table, _end = decode_table(payload)
            try:
                again_table, _ = decode_table(encode_table(table))
            except EncodingError:
                return  # e.g. a raw out-of-range timestamp int beyond 64 bits cannot happen
            if not _has_nan(table) and again_table != table:
                raise AssertionError(f"{table!r} re-decodes as {again_table!r}")
        else:
            array, _end = decode_array(payload)
            try:
                again_array, _ = decode_array(encode_array(array))
            except EncodingError:
                return
            if not _has_nan(array) and again_array != array:
                raise AssertionError(f"{array!r} re-decodes as {again_array!r}")
    except AMQPError:
        pass


def main() -> None:
    """Run the fuzzer (atheris takes libFuzzer's flags, e.g. -max_total_time=120)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
