"""Argument checks of the CLI's library-like helpers: a wrong argument fails at the call.

Each check raises `TypeError` (wrong type) or `ValueError` (right type, wrong value) with a
message that names the argument, so a caller sees which one it got wrong instead of meeting
an `AttributeError` deep inside (or, worse, a message silently built from the wrong thing).
"""

from __future__ import annotations

from typing import Any

__all__ = ["need_callable", "need_positive_int", "need_type"]


def _names(types: type | tuple[type, ...]) -> str:
    if isinstance(types, type):
        return types.__name__
    return " or ".join(t.__name__ for t in types)


def need_type(value: Any, types: type | tuple[type, ...], name: str) -> None:
    """`TypeError` unless `value` is an instance of `types` (`bool` is never an `int` here)."""
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise TypeError(f"{name} must be {_names(types)}, not bool")
    if not isinstance(value, types):
        raise TypeError(f"{name} must be {_names(types)}, not {type(value).__name__}")


def need_positive_int(value: Any, name: str) -> None:
    """`TypeError` unless `value` is an `int`, `ValueError` unless it is at least 1."""
    need_type(value, int, name)
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")


def need_callable(value: Any, name: str, *, optional: bool = True) -> None:
    """`TypeError` unless `value` is callable (or `None`, when `optional`)."""
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")
