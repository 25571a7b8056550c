"""Building messages from the command line, and publishing many with a window of confirms.

Used by `publish`, `restore`, `rpc` and `shovel`.
"""

from __future__ import annotations

import argparse
import io
import os
import select
import stat
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import puka

from puka_cli.errors import CliError, UsageError
from puka_cli.options import header_item, property_item

__all__ = ["Publisher", "add_message_options", "bodies", "message_headers"]


def add_message_options(parser: argparse.ArgumentParser, *, lines: bool = True) -> None:
    """The options that say what a message is: body sources, headers and properties."""
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


def message_headers(args: argparse.Namespace) -> dict[str, Any]:
    """Puka's merged headers dict (application headers plus properties) from the options."""
    headers: dict[str, Any] = dict(args.header)
    headers.update(args.property)
    if args.content_type:
        headers["content_type"] = args.content_type
    if args.persistent:
        headers["delivery_mode"] = 2
    return headers


def _stdin() -> IO[bytes]:
    return sys.stdin.buffer


def bodies(args: argparse.Namespace, idle: Callable[[], object] | None = None) -> Iterator[bytes]:
    """The bodies to send: the BODY argument, the file, or standard input; split by -l.

    With `-l` on a pipe or terminal, `idle()` is called about once a second while no line
    comes, so the caller can keep its connection alive (heartbeats) during `tail -f | …`.
    """
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


class Publisher:
    """Publishes with at most `window` unconfirmed messages; errors raise in `publish`/`flush`.

    An unroutable `mandatory` message raises `CliError` naming it; a nack raises
    `puka.PublishNacked`. `on_confirmed(tag)` is called with each message's `tag` once
    confirmed, in publish order.
    """

    def __init__(
        self,
        client: puka.Client,
        *,
        window: int = 256,
        mandatory: bool = False,
        on_confirmed: Any = None,
    ) -> None:
        self.client = client
        self.window = max(1, window)
        self.mandatory = mandatory
        self.on_confirmed = on_confirmed
        self.pending: deque[tuple[int, Any, str]] = deque()
        self.published = 0
        self.confirmed = 0

    def publish(
        self,
        exchange: str,
        routing_key: str,
        headers: dict[str, Any] | None,
        body: bytes,
        tag: Any = None,
    ) -> None:
        """Publish one message (waiting for the oldest confirm first if the window is full)."""
        while len(self.pending) >= self.window:
            self._settle_oldest()
        promise = self.client.basic_publish(
            exchange=exchange,
            routing_key=routing_key,
            mandatory=self.mandatory,
            headers=headers or None,
            body=body,
        )
        self.published += 1
        self.pending.append((promise, tag, f"exchange {exchange!r}, routing key {routing_key!r}"))

    def _settle_oldest(self) -> None:
        promise, tag, where = self.pending.popleft()
        try:
            self.client.wait(promise)
        except puka.NoRoute:
            raise CliError(
                f"message {self.confirmed + 1} was returned as unroutable (312 NO_ROUTE, {where})"
            ) from None
        self.confirmed += 1
        if self.on_confirmed is not None:
            self.on_confirmed(tag)

    def flush(self) -> None:
        """Wait until every message published so far is confirmed."""
        while self.pending:
            self._settle_oldest()

    def publish_all(self, messages: Iterable[tuple[str, str, dict[str, Any] | None, bytes]]) -> int:
        """Publish every (exchange, routing key, headers, body), then flush; returns the count."""
        for exchange, routing_key, headers, body in messages:
            self.publish(exchange, routing_key, headers, body)
        self.flush()
        return self.published
