"""`puka publish`: send messages, confirmed by the broker."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from puka_cli.context import Context
from puka_cli.errors import UsageError
from puka_cli.options import add_common, positive_int
from puka_cli.publishing import Publisher, add_message_options, bodies, properties_and_headers

__all__ = ["register", "run"]

EXAMPLES = """\
examples:
  puka publish -r tasks 'hello'                      to queue 'tasks' (default exchange)
  puka publish -e logs -r app.error -f report.json -C application/json --persistent
  tail -f app.log | puka publish -e logs -r app.info -l     one message per line
  puka publish -e events -r x --mandatory -H source=cli -H retries:=3 -P message_id=42 hi
"""


def register(subparsers: Any) -> None:
    """Add `publish` to the command line."""
    parser = add_common(
        subparsers,
        "publish",
        help="publish messages (confirmed by the broker unless --no-confirm)",
        epilog=EXAMPLES,
    )
    parser.add_argument(
        "-e",
        "--exchange",
        default="",
        metavar="EXCHANGE",
        help="exchange (default: '', direct to a queue)",
    )
    parser.add_argument("-r", "--routing-key", default="", metavar="KEY", help="routing key")
    add_message_options(parser)
    parser.add_argument(
        "--mandatory",
        action="store_true",
        help="the message must reach a queue: an unroutable one is an error",
    )
    parser.add_argument(
        "--no-confirm",
        action="store_true",
        help="do not wait for publisher confirms (faster; a refused message goes unnoticed)",
    )
    parser.add_argument(
        "-c",
        "--count",
        type=positive_int,
        default=1,
        metavar="N",
        help="publish each message N times",
    )
    parser.add_argument(
        "--window",
        type=positive_int,
        default=256,
        metavar="N",
        help="messages in flight awaiting their confirm (default: 256)",
    )
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    """Publish the messages the options describe."""
    args: argparse.Namespace = ctx.args
    if args.mandatory and args.no_confirm:
        raise UsageError("--mandatory needs confirms to report unroutable messages")
    properties, headers = properties_and_headers(args)
    progress = ctx.progress("published")
    with ctx.connected(pubacks=False if args.no_confirm else None) as client:
        publisher = Publisher(client, window=args.window, mandatory=args.mandatory)
        if args.body is None and args.file in (None, "-") and sys.stdin.isatty():
            ctx.warn("reading the body from standard input (end it with Ctrl-D)")
        for body in bodies(args, idle=lambda: client.loop(timeout=0.01)):
            for _ in range(args.count):
                publisher.publish(
                    args.exchange, args.routing_key, headers, body, properties=properties
                )
                progress.update(publisher.published)
        publisher.flush()
    progress.finish()
    summary = {
        "published": publisher.published,
        "confirmed": 0 if args.no_confirm else publisher.confirmed,
        "exchange": args.exchange,
        "routing_key": args.routing_key,
    }
    if ctx.output.is_json:
        ctx.output.result(summary)
    else:
        ctx.note(
            f"published {publisher.published} message(s)"
            + ("" if args.no_confirm else ", confirmed")
        )
    return 0
