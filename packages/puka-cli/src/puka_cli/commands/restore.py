"""`puka restore`: publish the messages of a JSON-lines file (a `dump`), confirmed.

Every message is published `mandatory` with a publisher confirm, at least once: one the broker
refuses (a nack), or whose outcome a lost connection left unknown, is sent again for up to
`--retry-for` seconds (puka-core's `retry=`), and with `--reconnect` the connection recovers
(moving to another node of a cluster) and the retries go on. One that no queue takes is
returned by the broker and counted, never dropped. The command ends with one line on stderr,
`restored N, returned M, failed K`, and exits with status 3 if M or K is not 0.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import IO, Any

from puka_cli.context import Context
from puka_cli.errors import CliError, DataError, UsageError
from puka_cli.exit_codes import ExitCode
from puka_cli.messages import Message, parse_record_line
from puka_cli.options import add_common, add_retry_for, positive_int, retry_policy
from puka_cli.publishing import Publisher

__all__ = ["read_messages", "register", "run"]

EXAMPLES = """\
Each line is a message in puka's JSON schema:
  {"exchange": "", "routing_key": "q", "properties": {"content_type": "text/plain",
   "delivery_mode": 2}, "headers": {"n": 1, "price": {"$decimal": "9.99"}}, "body": "hi"}
A binary body is base64 with "body_encoding": "base64"; header values JSON cannot carry are
tagged: {"$bytes": b64}, {"$decimal": "1.5"}, {"$timestamp": "2024-01-01T00:00:00Z"},
{"$float": 1.0}, {"$int": "123…"}.

Where each message goes:
  QUEUE or -r KEY                 to that queue, through the default exchange
  -r KEY --keep-exchange          to each line's recorded exchange, with routing key KEY
  -e EXCHANGE [-r KEY]            to EXCHANGE, with KEY (default: each line's routing key)
  none of them                    to each line's recorded exchange and routing key

Every message is mandatory, confirmed, and sent again when the broker refuses it (a nack) or
a lost connection leaves its outcome unknown, for up to --retry-for seconds; with --reconnect
a lost connection is recovered (to another of the URLs given) and the restore goes on. A
message sent again may be stored twice (messages are restored as they were: one without a
message_id gets none). At the end one line on stderr says what became of them:
'restored N, returned M, failed K' (returned: no queue took it; failed: still refused when
--retry-for ran out, or in flight when the connection ended without --reconnect). Exit
status 3 if M or K is not 0, unless another error (such as a missing exchange) has a status
of its own.

examples:
  puka restore orders -f orders.jsonl
  puka restore -r orders-copy -f orders.jsonl           every line to queue orders-copy
  puka dump orders --drain | puka restore -u amqp://other-host/ orders
  puka restore orders -f orders.jsonl --reconnect -u amqp://rabbit1,amqp://rabbit2
"""


def register(subparsers: Any) -> None:
    """Add `restore` to the command line."""
    parser = add_common(
        subparsers,
        "restore",
        help="publish messages from JSON lines (a dump), mandatory and confirmed",
        epilog=EXAMPLES,
    )
    parser.add_argument("queue", nargs="?", metavar="QUEUE", help="publish every message to QUEUE")
    parser.add_argument(
        "-f", "--file", default="-", metavar="FILE", help="read FILE (default: '-', standard input)"
    )
    parser.add_argument("-e", "--exchange", metavar="EXCHANGE", help="publish to this exchange")
    parser.add_argument(
        "-r",
        "--routing-key",
        metavar="KEY",
        help="with this routing key; without -e, to queue KEY through the default exchange",
    )
    parser.add_argument(
        "--keep-exchange",
        action="store_true",
        help="with -r: publish each message to the exchange its line records (not to '')",
    )
    parser.add_argument(
        "--mandatory",
        action="store_true",
        help="accepted for compatibility: every message is mandatory now",
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=256,
        metavar="N",
        help="messages in flight awaiting their confirm (default: 256)",
    )
    add_retry_for(parser)
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="when the connection is lost, reconnect (to another URL, if given) and go on",
    )
    parser.set_defaults(func=run)


def read_messages(stream: IO[bytes], name: str) -> Iterator[Message]:
    """The messages of a JSON-lines stream (blank lines skipped); `DataError` names the line."""
    for number, line in enumerate(iter(stream.readline, b""), 1):
        if line.strip():
            yield parse_record_line(line, f"{name}, line {number}")


def run(ctx: Context) -> int:
    """Publish every message of the file."""
    args = ctx.args
    if args.queue is not None and (args.exchange is not None or args.routing_key is not None):
        raise UsageError("give QUEUE or -e/-r, not both")
    if args.keep_exchange and (args.routing_key is None or args.exchange is not None):
        raise UsageError("--keep-exchange goes with -r KEY, without QUEUE or -e")
    if args.file == "-":
        stream: IO[bytes] = sys.stdin.buffer
        name = "<stdin>"
    else:
        try:
            stream = open(args.file, "rb")  # noqa: SIM115 - closed in the finally below
        except FileNotFoundError:
            raise CliError(f"no such file: {args.file}", ExitCode.NOINPUT) from None
        name = args.file
    progress = ctx.progress("restored")
    try:
        if stream.seekable():
            # Check the whole file first: a malformed line should not leave half of it restored.
            for number, message in enumerate(read_messages(stream, name), 1):
                _destination(args, message, f"{name}, message {number}")
            stream.seek(0)
        with ctx.connected(pubacks=True, reconnect=args.reconnect) as client:
            publisher = Publisher(
                client,
                window=args.window,
                mandatory=True,
                keep_going=True,
                retry=retry_policy(args.retry_for),
            )
            try:
                for number, message in enumerate(read_messages(stream, name), 1):
                    where = f"{name}, message {number}"
                    exchange, routing_key = _destination(args, message, where)
                    publisher.publish(
                        exchange,
                        routing_key,
                        message.headers,
                        message.body,
                        properties=message.properties,
                    )
                    progress.update(publisher.published)
                publisher.flush()
            except BaseException:
                publisher.settle_after_error()  # so that the summary below is exact
                progress.finish()
                ctx.warn(publisher.report.summary("restored"))
                raise
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
        progress.finish()
    report = publisher.report
    ctx.output.result({**report.counts("restored"), "file": args.file})
    report.check("restored")
    ctx.warn(report.summary("restored"))
    return 0


def _destination(args: Any, message: Message, where: str) -> tuple[str, str]:
    """(exchange, routing key) of one message: see "Where each message goes" in the help."""
    if args.queue is not None:
        return "", args.queue
    if args.exchange is not None:
        routing_key = args.routing_key if args.routing_key is not None else message.routing_key
        return args.exchange, routing_key or ""
    if args.routing_key is not None:
        return (message.exchange or "" if args.keep_exchange else ""), args.routing_key
    if message.exchange is None and message.routing_key is None:
        raise DataError(f"{where}: no exchange or routing_key, and no QUEUE or -e/-r given")
    return message.exchange or "", message.routing_key or ""
