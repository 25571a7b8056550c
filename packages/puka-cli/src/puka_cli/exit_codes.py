"""Exit statuses of the `puka` command (sysexits.h where one fits) and the error → status map.

| status | meaning |
|---|---|
| 0 | success |
| 1 | any other error (one line on stderr) |
| 2 | `get`: the queue was empty |
| 3 | a message was not delivered: returned as unroutable, nacked, or lost in flight |
| 64 | usage error (bad option, bad URL) |
| 65 | malformed input data (a JSON line, a topology file) |
| 66 | an input file does not exist |
| 69 | the broker is unavailable (connection refused, unknown host, TLS or handshake failure) |
| 73 | an output file cannot be created |
| 74 | an I/O error on a local file |
| 75 | a temporary failure: the connection was lost or closed by the broker, a timeout |
| 77 | access refused (wrong credentials, no permission on the virtual host or resource) |
| 130 | interrupted (Ctrl-C) |
"""

from __future__ import annotations

import enum

import puka

from puka_cli.errors import CliError

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(enum.IntEnum):
    """The statuses `puka` exits with."""

    OK = 0
    ERROR = 1
    EMPTY = 2
    UNDELIVERED = 3
    USAGE = 64
    DATAERR = 65
    NOINPUT = 66
    UNAVAILABLE = 69
    CANTCREAT = 73
    IOERR = 74
    TEMPFAIL = 75
    NOPERM = 77
    INTERRUPTED = 130


def exit_code_for(error: BaseException) -> int:
    """The exit status for an error that ended a command."""
    if isinstance(error, CliError):
        return error.code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, puka.InvalidURL):
        return ExitCode.USAGE
    if isinstance(error, puka.NoRoute):
        return ExitCode.UNDELIVERED
    if isinstance(error, (puka.AccessRefused, puka.NotAllowed)):
        return ExitCode.NOPERM
    if isinstance(error, puka.ConnectFailed):
        return ExitCode.UNAVAILABLE
    if isinstance(
        error,
        (
            puka.ConnectionLost,
            puka.ClientClosed,
            puka.ConnectionForced,
            puka.ConsumerCancelled,
            puka.PublishNacked,
            puka.ResourceError,
            TimeoutError,
        ),
    ):
        return ExitCode.TEMPFAIL
    if isinstance(error, FileNotFoundError):
        return ExitCode.NOINPUT
    if isinstance(error, OSError):
        return ExitCode.IOERR
    return ExitCode.ERROR
