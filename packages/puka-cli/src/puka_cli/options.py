"""The command line: the parser, the global options, and option value types shared by commands.

Global options (`-u/--url`, TLS files, `--heartbeat`, `-F/--format`, `-v`, …) may be given
before or after the command name: each command's parser has them too, with defaults filled in
once by `fill_defaults`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import puka

from puka_cli.__about__ import __version__
from puka_cli.errors import CliError, UsageError
from puka_cli.messages import from_json_value, parse_property
from puka_cli.output import FORMATS

__all__ = [
    "DEFAULT_URL",
    "GLOBAL_DESTS",
    "GLOBAL_NOTE",
    "Parser",
    "add_common",
    "build_parser",
    "fill_defaults",
    "header_item",
    "normalize_argv",
    "property_item",
    "typed_item",
]

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
"""The URL used without `-u` and `$AMQP_URL`: a local RabbitMQ with its default user."""

_GLOBAL_DEFAULTS: dict[str, Any] = {
    "url": None,
    "shuffle": False,
    "cacert": None,
    "cert": None,
    "key": None,
    "no_verify": False,
    "heartbeat": None,
    "connect_timeout": None,
    "connection_name": None,
    "format": "text",
    "verbose": 0,
}
GLOBAL_DESTS = frozenset(_GLOBAL_DEFAULTS)
"""The `argparse` destinations of the global options."""

GLOBAL_NOTE = (
    "Global options (-u URL, -F FORMAT, -v, TLS files, ...) also work here: see 'puka --help'."
)
"""The line that ends each command's help."""

# Global options that take a value (for `normalize_argv`).
_VALUE_OPTIONS = frozenset(
    {
        "-u",
        "--url",
        "--cacert",
        "--cert",
        "--key",
        "--heartbeat",
        "--connect-timeout",
        "--connection-name",
        "-F",
        "--format",
    }
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with room for option names, descriptions kept as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors raise `UsageError` (exit status 64).

    Unknown arguments are refused by the parser of the command they were given to, so the
    usage shown is that command's (`puka get q --bogus` shows `usage: puka get ...`), not the
    top level's, which is what a plain `ArgumentParser` does.
    """

    def error(self, message: str) -> NoReturn:
        """Show the usage line and raise `UsageError`."""
        self.print_usage(sys.stderr)
        raise UsageError(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse `args`; refuse any that this parser or its subcommands do not know."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


# ---------------------------------------------------------------------------------------------
# Option value types
# ---------------------------------------------------------------------------------------------


def _split_item(text: str, what: str) -> tuple[str, str, bool]:
    """`key=value` or `key:=json` → (key, value, is_json)."""
    equals = text.find("=")
    if equals <= 0:
        raise argparse.ArgumentTypeError(
            f"expected {what} as KEY=VALUE (or KEY:=JSON), got {text!r}"
        )
    if text[equals - 1] == ":" and equals > 1:
        return text[: equals - 1], text[equals + 1 :], True
    return text[:equals], text[equals + 1 :], False


def _json_item(key: str, value: str) -> Any:
    try:
        return from_json_value(json.loads(value), key)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{key}: not valid JSON: {exc}") from None
    except CliError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def header_item(text: str) -> tuple[str, Any]:
    """`-H key=value` (a string header) or `-H key:=JSON` (typed, tags allowed)."""
    key, value, is_json = _split_item(text, "a header")
    return key, _json_item(key, value) if is_json else value


def typed_item(text: str) -> tuple[str, Any]:
    """`-a key=value` for queue/exchange/binding arguments: integers and true/false typed.

    `x-max-length=10` gives the integer 10, `x-single-active-consumer=true` a boolean, anything
    else a string; `key:=JSON` gives exactly the JSON value (tags allowed).
    """
    key, value, is_json = _split_item(text, "an argument")
    if is_json:
        return key, _json_item(key, value)
    if value in ("true", "false"):
        return key, value == "true"
    try:
        return key, int(value, 10)
    except ValueError:
        return key, value


def property_item(text: str) -> tuple[str, Any]:
    """`-P name=value`: a basic property, converted to its type (`timestamp=now` works)."""
    key, value, is_json = _split_item(text, "a property")
    try:
        parsed = json.loads(value) if is_json else value
        return key, parse_property(key, parsed, "-P")
    except (CliError, json.JSONDecodeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer ≥ 0."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def seconds(text: str) -> float:
    """A positive duration in seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------


class _HiddenHelp:
    """An argument group that adds options with their help hidden (commands' copies)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser

    def add_argument(self, *flags: str, **kwargs: Any) -> argparse.Action:
        kwargs["help"] = argparse.SUPPRESS
        return self.parser.add_argument(*flags, **kwargs)


def _global_options(parser: argparse.ArgumentParser, *, hidden: bool = False) -> None:
    """Add the global options to `parser`, with no defaults (see `fill_defaults`).

    Commands get them `hidden`: accepted after the command name, listed once, under `puka`.
    """
    suppress = argparse.SUPPRESS
    group: Any = (
        _HiddenHelp(parser)
        if hidden
        else parser.add_argument_group("connection and output (global options)")
    )
    group.add_argument(
        "-u",
        "--url",
        default=suppress,
        metavar="URL",
        help="broker URL, amqp[s]://user:pass@host:port/vhost?query; several, comma-separated, "
        f"are a cluster (default: $AMQP_URL, else {DEFAULT_URL.replace('%', '%%')})",
    )
    group.add_argument(
        "--shuffle",
        action="store_true",
        default=suppress,
        help="try the URLs of a cluster in a random order (default: in the order given)",
    )
    group.add_argument(
        "--cacert", default=suppress, metavar="FILE", help="PEM file of the CAs to trust (amqps)"
    )
    group.add_argument(
        "--cert", default=suppress, metavar="FILE", help="PEM file of the client certificate"
    )
    group.add_argument(
        "--key", default=suppress, metavar="FILE", help="PEM file of the client's private key"
    )
    group.add_argument(
        "--no-verify",
        action="store_true",
        default=suppress,
        help="do not check the broker's certificate and host name (unsafe; amqps)",
    )
    group.add_argument(
        "--heartbeat",
        type=non_negative_int,
        default=suppress,
        metavar="SEC",
        help="heartbeat interval to propose, 0 for none (default: the broker's)",
    )
    group.add_argument(
        "--connect-timeout",
        type=seconds,
        default=suppress,
        metavar="SEC",
        help="give up connecting after this long (default: 10)",
    )
    group.add_argument(
        "--connection-name",
        default=suppress,
        metavar="NAME",
        help="connection name shown by the broker (default: 'puka COMMAND')",
    )
    group.add_argument(
        "-F",
        "--format",
        choices=FORMATS,
        default=suppress,
        help="output format: text (default), json, jsonl (one JSON document a line) or raw "
        "(message bodies only)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=suppress,
        help="more detail on stderr, and tracebacks on errors; -vv logs the protocol client",
    )


def add_common(subparsers: Any, name: str, **kwargs: Any) -> Parser:
    """A command's parser, with the global options and `puka`'s help formatter."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    if "help" in kwargs and "description" not in kwargs:
        kwargs["description"] = kwargs["help"][:1].upper() + kwargs["help"][1:] + "."
    epilog = kwargs.get("epilog")
    kwargs["epilog"] = f"{epilog.rstrip()}\n\n{GLOBAL_NOTE}" if epilog else GLOBAL_NOTE
    parser: Parser = subparsers.add_parser(name, **kwargs)
    _global_options(parser, hidden=True)
    return parser


def add_subcommands(
    parser: argparse.ArgumentParser, dest: str, title: str, metavar: str | None = None
) -> Any:
    """Subcommands under `parser` (the choice is stored in `dest`; one must be given)."""
    return parser.add_subparsers(
        dest=dest, title=title, metavar=metavar, required=True, parser_class=Parser
    )


def build_parser() -> Parser:
    """The whole command line: `puka`, its global options and every command."""
    from puka_cli.commands import register_all  # noqa: PLC0415 - the commands import this module

    parser = Parser(
        prog="puka",
        formatter_class=HelpFormatter,
        description=(
            "Puka's command line for RabbitMQ (AMQP 0-9-1): publish, consume, tap, shovel,\n"
            "dump/restore, declare/bind/delete and load-test from the shell."
        ),
        epilog=(
            "Global options may come before or after the command. Run 'puka COMMAND --help' for\n"
            "a command's options. Exit status: 0 ok, 1 error, 2 empty queue (get), 3 a message\n"
            "not delivered (returned, nacked or lost in flight), 64 usage, 65 bad input data,\n"
            "66 no input file, 69 broker unavailable, 75 temporary failure (connection lost),\n"
            "77 access refused, 130 interrupted."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"puka-cli {__version__} (puka-core {_core_version()})",
    )
    _global_options(parser)
    subparsers = add_subcommands(parser, "command", "commands", "COMMAND")
    register_all(subparsers)
    return parser


def _core_version() -> str:
    import puka  # noqa: PLC0415

    return str(puka.__version__)


def fill_defaults(args: argparse.Namespace, environ: dict[str, str] | None = None) -> None:
    """Give every global option not on the command line its default (`$AMQP_URL` for the URL)."""
    env = os.environ if environ is None else environ
    for dest, default in _GLOBAL_DEFAULTS.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)
    if args.url is None:
        args.url = env.get("AMQP_URL") or DEFAULT_URL


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """`puka rpc [OPTIONS] [BODY]` means `puka rpc call …`: insert the implicit `call`."""
    args = list(argv)
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":
            return args
        if word.startswith("-"):
            if word in _VALUE_OPTIONS:
                index += 1
            index += 1
            continue
        if word == "rpc":
            following = args[index + 1] if index + 1 < len(args) else None
            if following not in ("call", "serve", "-h", "--help"):
                args.insert(index + 1, "call")
        return args
    return args


#: How long a refused or lost message is sent again, by default (`--retry-for`).
RETRY_FOR_DEFAULT = 30.0


def add_retry_for(parser: argparse.ArgumentParser) -> None:
    """Add `--retry-for SECONDS`: publishes at least once (see `retry_policy`)."""
    parser.add_argument(
        "--retry-for",
        type=non_negative_float,
        default=RETRY_FOR_DEFAULT,
        metavar="SECONDS",
        help="send a message the broker refused (nack), or whose outcome a lost connection left "
        "unknown, again for up to SECONDS after its first failure (default: "
        f"{RETRY_FOR_DEFAULT:g}; 0: never)",
    )


def retry_policy(seconds: float) -> puka.RetryPolicy | None:
    """The at-least-once policy of `--retry-for SECONDS` (`None` for 0: no retries).

    Messages are copied as they are: none is given a `message_id` it did not have.
    """
    if seconds <= 0:
        return None
    return puka.RetryPolicy(deadline=seconds, max_delay=1.0, add_message_id=False)
