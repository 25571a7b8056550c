"""Entry point of the `puka` command: `main(argv) -> exit status`; also `python -m puka_cli`."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence

from puka_cli.context import Context
from puka_cli.errors import describe
from puka_cli.exit_codes import ExitCode, exit_code_for
from puka_cli.options import build_parser, fill_defaults, normalize_argv

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `puka` command line `argv` (default: `sys.argv[1:]`); return the exit status.

    Errors are reported as one line on stderr (with a traceback under `-v`); nothing is
    raised, so tests and scripts can call this in process.
    """
    arguments = normalize_argv(sys.argv[1:] if argv is None else argv)
    verbose = 0
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        fill_defaults(args)
        verbose = args.verbose
        with _logging(verbose):
            return int(args.func(Context(args)))
    except SystemExit as exit_:  # --help and --version
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        _report(None, "interrupted", verbose)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return ExitCode.IOERR
    except Exception as error:
        _report(error, describe(error), verbose)
        return exit_code_for(error)


@contextlib.contextmanager
def _logging(verbose: int) -> Iterator[None]:
    """puka-core's log lines while a command runs: none by default (`main` reports the error
    once), its warnings with `-v`, everything with `-vv`. Restored afterwards, since `main`
    may run inside another program (or a test session)."""
    logger = logging.getLogger("puka")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    handler: logging.Handler
    if verbose >= 2:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("puka: %(name)s: %(message)s"))
        logger.setLevel(logging.DEBUG)
    elif verbose == 1:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("puka: %(message)s"))
        logger.setLevel(logging.WARNING)
    else:
        handler = logging.NullHandler()
    logger.handlers = [handler]
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        logger.handlers = saved[2]


def _report(error: BaseException | None, message: str, verbose: int) -> None:
    if verbose and error is not None:
        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.write(f"puka: {message}\n")
    sys.stderr.flush()


def _quiet_stdout() -> None:
    """After a broken pipe: send what is left for stdout nowhere, so exiting does not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
