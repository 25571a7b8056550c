"""Turn a method's field list into unrolled encode/decode code.

Adjacent fixed-width fields, runs of bits (packed into octets, low bit first) and the length
prefix of a following string are merged into one precompiled `struct.Struct`, so a typical method
is one `pack`/`unpack_from` plus a slice per string.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from spec_model import FIXED_TYPES, Field, Method

REPEATING_PROPERTIES = frozenset(
    ("content-type", "content-encoding", "reply-to", "expiration", "type", "user-id", "app-id")
)
"""Short-string properties whose values repeat from message to message: their encoders go through
the `puka_spec.table.SHORTSTRS` cache. Message and correlation ids are unique, so they do not."""


@dataclass
class Structs:
    """The `struct.Struct` constants a module needs, named by their format."""

    formats: dict[str, str] = field(default_factory=dict)

    def name(self, fmt: str) -> str:
        ident = "_S_" + fmt
        self.formats[ident] = ">" + fmt
        return ident

    def items(self) -> list[tuple[str, str]]:
        return sorted(self.formats.items())


def _bit_groups(fields: list[Field]) -> list[list[Field] | Field]:
    """Group runs of bit fields (at most 8 per octet); other fields stand alone."""
    out: list[list[Field] | Field] = []
    for f in fields:
        if f.type == "bit":
            last = out[-1] if out else None
            if isinstance(last, list) and len(last) < 8:
                last.append(f)
            else:
                out.append([f])
        else:
            out.append(f)
    return out


def _bits_expr(bits: list[Field]) -> str:
    terms = [f"({1 << i} if self.{b.py_name} else 0)" for i, b in enumerate(bits) if not b.reserved]
    return " | ".join(terms) if terms else "0"


def _bytes_literal(data: bytes) -> str:
    return 'b"' + "".join(f"\\x{b:02x}" for b in data) + '"'


def encode_lines(method: Method, structs: Structs) -> list[str]:
    """The body of `encode(self) -> bytes` (class and method ids included).

    Fixed-width runs become one `pack` (or a bytes constant when every value in them is a constant:
    the method ids and reserved fields), a lone bit octet an `OCTETS` lookup, and short strings
    come from the `SHORTSTRS` cache (length octet included) through `_cached`, its bound `get`.
    """
    parts: list[str] = []
    fmt = "HH"
    args = [str(method.class_index), str(method.index)]

    def flush() -> None:
        nonlocal fmt, args
        if not fmt:
            return
        if all(a.isdigit() for a in args):
            data = struct.pack(">" + fmt, *(int(a) for a in args))
            parts.append(_bytes_literal(data))
        elif fmt == "B" and " if self." in args[0]:  # a bit octet: always 0..255
            parts.append(f"OCTETS[{args[0]}]")
        else:
            parts.append(f"{structs.name(fmt)}.pack({', '.join(args)})")
        fmt, args = "", []

    for item in _bit_groups(method.fields):
        if isinstance(item, list):
            fmt += "B"
            args.append(_bits_expr(item))
            continue
        f = item
        if f.type in FIXED_TYPES:
            fmt += FIXED_TYPES[f.type]
            args.append("0" if f.reserved else f"self.{f.py_name}")
        elif f.type == "shortstr":
            if f.reserved:
                fmt += "B"
                args.append("0")
                continue
            flush()
            value = f"self.{f.py_name}"
            what = f"{method.full_name} {f.name}"
            parts.append(f'_cached({value}) or encode_shortstr({value}, "{what}")')
        elif f.type == "longstr":
            if f.reserved:
                fmt += "I"
                args.append("0")
                continue
            var = f"self.{f.py_name}"
            fmt += "I"
            args.append(f"len({var})")
            flush()
            parts.append(var)
        elif f.type == "table":
            flush()
            parts.append(f"encode_table_at(self.{f.py_name}, 0)")
        else:  # pragma: no cover - the XML has no other types
            raise ValueError(f"unknown type {f.type}")
    flush()
    if len(parts) == 1:
        return [f"return {parts[0]}"]
    return [f'return b"".join(({", ".join(parts)},))']


def decode_lines(method: Method, structs: Structs) -> list[str]:
    """The body of `decode(cls, buf, offset)`; `offset` is just past the method id.

    The offset always moves past what was read, even when a string slice comes back short, so a
    caller detects a payload that was too short by the returned offset.
    """
    lines: list[str] = ["m = _new(cls)"] if method.args else []
    fmt = ""
    targets: list[str] = []
    size = 0
    after: list[str] = []  # statements that run after the pending unpack (bit extraction)
    sizes = {"B": 1, "H": 2, "I": 4, "Q": 8}

    def flush(length: str = "") -> None:
        """Emit the pending unpack; `length`: the string whose length it ends with follows."""
        nonlocal fmt, targets, size, after
        step = f"{size} + {length}" if length else str(size)
        if fmt:
            if all(t == "_" for t in targets):
                pass
            elif fmt == "B":  # one octet: indexing beats unpack_from
                lines.append(f"{targets[0]} = buf[offset]")
            else:
                lhs = ", ".join(targets) + ("," if len(targets) == 1 else "")
                lines.append(f"{lhs} = {structs.name(fmt)}.unpack_from(buf, offset)")
            lines.append(f"offset += {step}")
            lines.extend(after)
        fmt, targets, size, after = "", [], 0, []

    def fixed(code: str, target: str) -> None:
        nonlocal fmt, size
        fmt += code
        size += sizes[code]
        targets.append(target)

    nbits = 0
    for item in _bit_groups(method.fields):
        if isinstance(item, list):
            if all(b.reserved for b in item):
                fixed("B", "_")
                continue
            var = f"bits{nbits}"
            nbits += 1
            fixed("B", var)
            after.extend(
                f"m.{b.py_name} = ({var} & {1 << i}) != 0"
                for i, b in enumerate(item)
                if not b.reserved
            )
            continue
        f = item
        if f.type in FIXED_TYPES:
            fixed(FIXED_TYPES[f.type], "_" if f.reserved else f"m.{f.py_name}")
        elif f.type in ("shortstr", "longstr"):
            code = "B" if f.type == "shortstr" else "I"
            var = f"{f.py_name}_n"
            fixed(code, var)
            flush(var)
            if f.reserved:
                continue
            value = f"buf[offset - {var} : offset]"
            if f.type == "shortstr":  # an empty one (the default exchange, say): no slice
                value += f'.decode() if {var} else ""'
            lines.append(f"m.{f.py_name} = {value}")
        elif f.type == "table":
            flush()
            lines.append(f"m.{f.py_name}, offset = decode_table_unchecked(buf, offset)")
        else:  # pragma: no cover
            raise ValueError(f"unknown type {f.type}")
    flush()
    lines.append("return m, offset" if method.args else "return cls(), offset")
    return lines
