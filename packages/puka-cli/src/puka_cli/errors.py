"""The errors a command raises on purpose: a one-line message and an exit status."""

from __future__ import annotations

import puka

__all__ = ["CliError", "DataError", "UsageError", "describe"]


class CliError(Exception):
    """A command failed: `str(error)` is the one line shown, `code` the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """The command line is wrong (exit status 64)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 64)


class DataError(CliError):
    """Input data (a JSON line, a topology file) is malformed (exit status 65)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 65)


def describe(error: BaseException) -> str:
    """The one line that reports `error` (never a password: puka's messages redact them)."""
    if isinstance(error, (CliError, puka.AMQPError, puka.PukaError, puka.InvalidURL)):
        text = str(error)
    elif isinstance(error, OSError) and error.strerror:
        text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__
