"""`puka stat queue|exchange`: whether queues and exchanges exist; messages and consumers."""

from __future__ import annotations

from typing import Any

import puka

from puka_cli.context import Context, result_of
from puka_cli.errors import CliError
from puka_cli.options import add_common, add_subcommands

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add `stat queue` and `stat exchange` to the command line."""
    stat = add_common(
        subparsers,
        "stat",
        help="show queues (messages, consumers) or check that exchanges exist",
    )
    kinds = add_subcommands(stat, "kind", "kind")
    queue = add_common(
        kinds,
        "queue",
        help="ready messages and consumers of queues (status 1 if one is missing)",
        epilog="example:\n  puka stat queue tasks retries -F jsonl",
    )
    queue.add_argument("names", nargs="+", metavar="NAME", help="queue(s)")
    queue.set_defaults(func=run)
    exchange = add_common(
        kinds,
        "exchange",
        help="check that exchanges exist (status 1 if one is missing)",
        epilog="example:\n  puka stat exchange events",
    )
    exchange.add_argument("names", nargs="+", metavar="NAME", help="exchange(s)")
    exchange.set_defaults(func=run)


def run(ctx: Context) -> int:
    """Passively declare each name and report what the broker says."""
    args = ctx.args
    missing: list[str] = []
    with ctx.connected() as client:
        for name in args.names:
            try:
                if args.kind == "queue":
                    result = result_of(client, client.queue_declare(queue=name, passive=True))
                else:
                    client.wait(client.exchange_declare(exchange=name, passive=True))
            except puka.NotFound:
                missing.append(name)
                ctx.output.result(
                    {args.kind: name, "exists": False}, f"{args.kind} {name!r}: not found"
                )
                continue
            if args.kind == "queue":
                messages, consumers = result["message_count"], result["consumer_count"]
                ctx.output.result(
                    {
                        "queue": name,
                        "exists": True,
                        "message_count": messages,
                        "consumer_count": consumers,
                    },
                    f"queue {name!r}: {messages} message(s), {consumers} consumer(s)",
                )
            else:
                ctx.output.result({"exchange": name, "exists": True}, f"exchange {name!r}: exists")
    if missing:
        raise CliError(f"{args.kind} not found: {', '.join(repr(n) for n in missing)}")
    return 0
