"""The command line itself: option values, usage errors, exit statuses, help, version."""

from __future__ import annotations

import argparse
import errno
from typing import Any

import puka
import pytest
from puka_cli.__main__ import main
from puka_cli.errors import CliError, DataError, describe
from puka_cli.exit_codes import ExitCode, exit_code_for
from puka_cli.options import (
    build_parser,
    fill_defaults,
    header_item,
    normalize_argv,
    property_item,
    typed_item,
)


def test_headers_are_strings_unless_typed() -> None:
    assert header_item("a=1") == ("a", "1")
    assert header_item("a=b=c") == ("a", "b=c")
    assert header_item("n:=5") == ("n", 5)
    assert header_item('d:={"$decimal": "1.5"}')[1].as_tuple().exponent == -1
    with pytest.raises(argparse.ArgumentTypeError):
        header_item("novalue")
    with pytest.raises(argparse.ArgumentTypeError):
        header_item("n:={bad json")


def test_arguments_are_typed() -> None:
    assert typed_item("x-max-length=10") == ("x-max-length", 10)
    assert typed_item("x-single-active-consumer=true") == ("x-single-active-consumer", True)
    assert typed_item("x-queue-type=quorum") == ("x-queue-type", "quorum")
    assert typed_item('x:=["a", 1]') == ("x", ["a", 1])


def test_properties_are_checked() -> None:
    assert property_item("priority=3") == ("priority", 3)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown property"):
        property_item("colour=red")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rpc", "-r", "q", "body"], ["rpc", "call", "-r", "q", "body"]),
        (["-u", "amqp://h/", "rpc", "hi"], ["-u", "amqp://h/", "rpc", "call", "hi"]),
        (["rpc", "serve", "q"], ["rpc", "serve", "q"]),
        (["rpc", "call", "-r", "q"], ["rpc", "call", "-r", "q"]),
        (["rpc", "--help"], ["rpc", "--help"]),
        (["-F", "rpc", "get", "rpc"], ["-F", "rpc", "get", "rpc"]),
        (["publish", "rpc"], ["publish", "rpc"]),
    ],
)
def test_rpc_call_is_implicit(argv: list[str], expected: list[str]) -> None:
    assert normalize_argv(argv) == expected


def test_global_options_work_after_the_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["get", "q", "-F", "jsonl", "-u", "amqp://x/", "-v"])
    fill_defaults(args, {})
    assert (args.format, args.url, args.verbose) == ("jsonl", "amqp://x/", 1)
    args = parser.parse_args(["-F", "json", "get", "q"])
    fill_defaults(args, {"AMQP_URL": "amqp://env/"})
    assert (args.format, args.url, args.heartbeat) == ("json", "amqp://env/", None)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("puka-cli ")


def test_help_of_every_command_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["publish", "--help"], ["declare", "queue", "--help"]):
        assert main(argv) == 0
    assert "usage: puka declare queue" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nosuchcommand"],
        ["get"],
        ["get", "q", "--count", "0"],
        ["publish", "--bogus"],
        ["declare"],
        ["-F", "xml", "ping"],
        ["-u", "http://example.com/", "ping"],
        ["-u", "amqp://h/", "--cacert", "ca.pem", "ping"],
        ["tap"],
        ["shovel", "src"],
        ["publish", "-r", "q", "body", "-f", "file"],
        ["consume", "q", "--exec", "true", "--ack-mode", "auto"],
    ],
)
def test_usage_errors_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("puka: ")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["get", "q", "--bogus"], "usage: puka get "),
        (["publish", "--bogus", "-r", "q", "x"], "usage: puka publish "),
        (["delete", "queue", "q", "--bogus"], "usage: puka delete queue "),
        (["declare", "exchange", "--nope", "x"], "usage: puka declare exchange "),
        (["rpc", "-r", "q", "--bogus"], "usage: puka rpc call "),
        (["rpc", "serve", "q", "--bogus"], "usage: puka rpc serve "),
        (["restore", "-x"], "usage: puka restore "),
        (["shovel", "a", "b", "--bogus=1"], "usage: puka shovel "),
        (["--bogus", "get", "q"], "usage: puka [-h]"),  # before the command: puka's own
    ],
)
def test_an_unknown_option_shows_its_commands_usage(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert err.strip().splitlines()[-1].startswith("puka: unrecognized arguments: -")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CliError("x", 3), 3),
        (puka.NoRoute("NO_ROUTE"), ExitCode.UNDELIVERED),
        (puka.PublishNacked("nack"), 75),
        (DataError("x"), 65),
        (puka.InvalidURL("bad"), 64),
        (puka.ConnectFailed("refused"), 69),
        (puka.ConnectTimeout("slow"), 69),
        (puka.AccessRefused("no"), 77),
        (puka.NotAllowed("vhost"), 77),
        (puka.ConnectionLost("gone"), 75),
        (puka.ConnectionForced("closed"), 75),
        (puka.HeartbeatTimeout("silent"), 75),
        (puka.NotFound("no queue"), 1),
        (KeyboardInterrupt(), 130),
        (FileNotFoundError(errno.ENOENT, "No such file", "f"), 66),
        (PermissionError(errno.EACCES, "denied", "f"), 74),
        (ValueError("other"), 1),
    ],
)
def test_exit_codes(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (puka.NotFound("NOT_FOUND - no queue 'q'"), "404 NOT_FOUND - no queue 'q'"),
        (FileNotFoundError(errno.ENOENT, "No such file", "f.json"), "f.json: No such file"),
        (ValueError("two\nlines"), "ValueError: two"),
    ],
)
def test_errors_are_one_line(error: Any, text: str) -> None:
    assert describe(error).startswith(text)
    assert "\n" not in describe(error)


def test_passwords_never_appear_in_url_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-u", "amqp://user:hunter2@host:port/", "ping"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert "***" in err
