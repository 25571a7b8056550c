"""Building messages from the command line, and publishing many with a window of confirms.

Used by `publish`, `restore`, `rpc` and `shovel`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import select
import stat
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import puka

from puka_cli.checks import need_callable, need_positive_int, need_type
from puka_cli.delivery_report import DeliveryReport
from puka_cli.errors import CliError, UsageError, describe
from puka_cli.exit_codes import ExitCode
from puka_cli.options import header_item, property_item

__all__ = ["Publisher", "add_message_options", "bodies", "properties_and_headers"]


def add_message_options(parser: argparse.ArgumentParser, *, lines: bool = True) -> None:
    """The options that say what a message is: body sources, headers and properties."""
    need_type(parser, argparse.ArgumentParser, "parser")
    need_type(lines, bool, "lines")
    parser.add_argument(
        "body",
        nargs="?",
        metavar="BODY",
        help="the message body (default: read from -f, else standard input)",
    )
    parser.add_argument(
        "-f",
        "--file",
        metavar="FILE",
        help="read the body from FILE ('-' for standard input)",
    )
    if lines:
        parser.add_argument(
            "-l",
            "--lines",
            action="store_true",
            help="one message per line of the input (empty lines are skipped)",
        )
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        type=header_item,
        default=[],
        metavar="KEY=VALUE",
        help="an application header (a string; KEY:=JSON for a typed value, e.g. n:=5, "
        'd:=\'{"$decimal":"1.5"}\'); repeatable',
    )
    parser.add_argument(
        "-P",
        "--property",
        action="append",
        type=property_item,
        default=[],
        metavar="NAME=VALUE",
        help="a basic property: content_type, content_encoding, delivery_mode, priority, "
        "correlation_id, reply_to, expiration, message_id, timestamp (seconds, ISO 8601 or "
        "'now'), type, user_id, app_id; repeatable",
    )
    parser.add_argument(
        "-C", "--content-type", metavar="TYPE", help="the content_type property (-P shortcut)"
    )
    parser.add_argument(
        "--persistent", action="store_true", help="delivery_mode 2: the broker keeps it on disk"
    )


def properties_and_headers(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(basic properties, application headers) from the options, apart: `-H type=x` is an
    application header named `type`, `-P type=x` the property."""
    need_type(args, argparse.Namespace, "args")
    properties: dict[str, Any] = dict(args.property)
    if args.content_type:
        properties["content_type"] = args.content_type
    if args.persistent:
        properties["delivery_mode"] = 2
    return properties, dict(args.header)


def _stdin() -> IO[bytes]:
    return sys.stdin.buffer


def bodies(args: argparse.Namespace, idle: Callable[[], object] | None = None) -> Iterator[bytes]:
    """The bodies to send: the BODY argument, the file, or standard input; split by -l.

    With `-l` on a pipe or terminal, `idle()` is called about once a second while no line
    comes, so the caller can keep its connection alive (heartbeats) during `tail -f | …`.
    Its arguments are checked when it is called, not when iteration starts.
    """
    need_type(args, argparse.Namespace, "args")
    need_callable(idle, "idle")
    return _bodies(args, idle)


def _bodies(args: argparse.Namespace, idle: Callable[[], object] | None) -> Iterator[bytes]:
    by_line = getattr(args, "lines", False)
    if args.body is not None and args.file is not None:
        raise UsageError("give the body as an argument or with -f, not both")
    if args.body is not None:
        data = args.body.encode("utf-8", "surrogateescape")
        if by_line:
            yield from (line for line in data.splitlines() if line)
        else:
            yield data
        return
    if args.file in (None, "-"):
        stream = _stdin()
        if by_line:
            yield from _lines(stream, idle)
        else:
            yield stream.read()
        return
    try:
        with open(args.file, "rb") as handle:
            if by_line:
                yield from _lines(handle)
            else:
                yield handle.read()
    except FileNotFoundError:
        raise CliError(f"no such file: {args.file}", 66) from None


def _stream_fd(stream: IO[bytes]) -> int | None:
    """The descriptor of a pipe or terminal behind `stream` (`None` for files and the rest)."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode) else None


def _lines(stream: IO[bytes], idle: Callable[[], object] | None = None) -> Iterator[bytes]:
    fd = _stream_fd(stream) if idle is not None else None
    if fd is None or idle is None:
        for line in iter(stream.readline, b""):
            body = line.rstrip(b"\r\n") if line.endswith(b"\n") else line
            if body:
                yield body
        return
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            idle()
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            body = line.rstrip(b"\r")
            if body:
                yield body
    if pending:
        yield pending


def _refusal(error: puka.PublishNacked | puka.PublishFailed) -> str:
    """What became of a message the broker refused, or that its retries gave up on."""
    if isinstance(error, puka.PublishNacked):
        return "refused by the broker (nack)"
    cause = error.cause
    what = (
        "refused by the broker (nack)"
        if isinstance(cause, puka.PublishNacked)
        else f"lost ({describe(cause)})"
        if cause is not None
        else "not sent"
    )
    sends = f"{error.attempts} time{'s' * (error.attempts != 1)}"
    return f"{what}, given up after failing {sends}"


class Publisher:
    """Publishes with at most `window` unconfirmed messages.

    By default the first message that is not delivered raises, in `publish` or `flush`:
    `CliError` (exit status 3) naming a `mandatory` message returned as unroutable, or
    `puka.PublishNacked` for one the broker refused. With `keep_going=True` both are counted in
    `report` instead and publishing goes on; the caller reports them (`DeliveryReport.check`).
    With a `retry` policy each message is published at least once (`basic_publish(...,
    retry=...)`): a refusal or a lost connection sends it again, and only one the policy gave
    up on (`puka.PublishFailed`) counts as failed.
    `on_confirmed(tag)` is called with each delivered message's `tag`, in publish order.
    """

    def __init__(
        self,
        client: puka.Client,
        *,
        window: int = 256,
        mandatory: bool = False,
        keep_going: bool = False,
        on_confirmed: Callable[[Any], object] | None = None,
        retry: puka.RetryPolicy | None = None,
    ) -> None:
        need_type(client, puka.Client, "client")
        need_type(retry, (puka.RetryPolicy, type(None)), "retry")
        need_positive_int(window, "window")
        need_type(mandatory, bool, "mandatory")
        need_type(keep_going, bool, "keep_going")
        need_callable(on_confirmed, "on_confirmed")
        self.client = client
        self.window = window
        self.mandatory = mandatory
        self.keep_going = keep_going
        self.on_confirmed = on_confirmed
        self.retry = retry
        self.pending: deque[tuple[int, Any, str]] = deque()
        self.published = 0
        self.report = DeliveryReport()

    @property
    def confirmed(self) -> int:
        """Messages confirmed (and, when `mandatory`, routed) so far."""
        return self.report.delivered

    @property
    def in_flight(self) -> int:
        """Messages published and not settled yet."""
        return len(self.pending)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        headers: dict[str, Any] | None,
        body: bytes,
        tag: Any = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        """Publish one message (waiting for the oldest confirm first if the window is full).

        With `properties` (a dict, even empty), `headers` holds application headers only, as
        in `basic_publish`; without, it is Puka's merged dict.
        """
        need_type(exchange, str, "exchange")
        need_type(routing_key, str, "routing_key")
        need_type(headers, (dict, type(None)), "headers")
        need_type(body, bytes, "body")
        need_type(properties, (dict, type(None)), "properties")
        while len(self.pending) >= self.window:
            self._settle_oldest()
        promise = self.client.basic_publish(
            exchange=exchange,
            routing_key=routing_key,
            mandatory=self.mandatory,
            headers=headers or None,
            properties=properties,
            body=body,
            retry=self.retry,
        )
        self.published += 1
        where = f"message {self.published}, exchange {exchange!r}, routing key {routing_key!r}"
        self.pending.append((promise, tag, where))

    def _settle_oldest(self) -> None:
        promise, tag, where = self.pending.popleft()
        report = self.report
        try:
            self.client.wait(promise)
        except puka.NoRoute:
            problem = f"{where}: returned as unroutable (312 NO_ROUTE)"
            if not self.keep_going:
                raise CliError(problem, ExitCode.UNDELIVERED) from None
            report.returned += 1
            report.note_problem(problem)
            return
        except (puka.PublishNacked, puka.PublishFailed) as error:
            if not self.keep_going:
                raise
            report.failed += 1
            report.note_problem(f"{where}: {_refusal(error)}")
            return
        except Exception as error:  # a channel or connection error: this one is lost too
            report.failed += 1
            report.note_problem(f"{where}: {describe(error)}")
            raise
        report.delivered += 1
        if self.on_confirmed is not None:
            self.on_confirmed(tag)

    def flush(self) -> None:
        """Wait until every message published so far is settled."""
        while self.pending:
            self._settle_oldest()

    def settle_after_error(self) -> None:
        """After an error: settle what can still be settled, count the rest as failed.

        Never raises, so that the caller can report `report` and then raise the error it has.
        A message whose fate is unknown (in flight when the connection ended) counts as failed.
        """
        while self.pending and not self.client.engine.closed:
            with contextlib.suppress(Exception):
                self._settle_oldest()
        if self.pending:
            self.report.failed += len(self.pending)
            self.report.note_problem(f"{self.pending[0][2]}: in flight when the connection ended")
            self.pending.clear()

    def publish_all(self, messages: Iterable[tuple[str, str, dict[str, Any] | None, bytes]]) -> int:
        """Publish every (exchange, routing key, headers, body), then flush; returns the count."""
        for exchange, routing_key, headers, body in messages:
            self.publish(exchange, routing_key, headers, body)
        self.flush()
        return self.published
