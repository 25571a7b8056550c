"""`puka delete queue|exchange`: delete queues and exchanges."""

from __future__ import annotations

from typing import Any

from puka_cli.context import Context, result_of
from puka_cli.options import add_common, add_subcommands

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add `delete queue` and `delete exchange` to the command line."""
    delete = add_common(subparsers, "delete", help="delete queues or exchanges")
    kinds = add_subcommands(delete, "kind", "kind")
    queue = add_common(
        kinds,
        "queue",
        help="delete queues (and their messages)",
        epilog="example:\n  puka delete queue tasks --if-empty",
    )
    queue.add_argument("names", nargs="+", metavar="NAME", help="queue(s) to delete")
    queue.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
    queue.add_argument("--if-empty", action="store_true", help="only if it has no messages")
    queue.set_defaults(func=run)
    exchange = add_common(
        kinds,
        "exchange",
        help="delete exchanges",
        epilog="example:\n  puka delete exchange events --if-unused",
    )
    exchange.add_argument("names", nargs="+", metavar="NAME", help="exchange(s) to delete")
    exchange.add_argument("--if-unused", action="store_true", help="only if it has no bindings")
    exchange.set_defaults(func=run, if_empty=False)


def run(ctx: Context) -> int:
    """Delete each named queue or exchange (deleting what does not exist is not an error)."""
    args = ctx.args
    with ctx.connected() as client:
        for name in args.names:
            if args.kind == "queue":
                result = result_of(
                    client,
                    client.queue_delete(
                        queue=name, if_unused=args.if_unused, if_empty=args.if_empty
                    ),
                )
                count = result["message_count"]
                ctx.output.result(
                    {"queue": name, "deleted": True, "message_count": count},
                    f"deleted queue {name!r} ({count} message(s))",
                )
            else:
                client.wait(client.exchange_delete(exchange=name, if_unused=args.if_unused))
                ctx.output.result({"exchange": name, "deleted": True}, f"deleted exchange {name!r}")
    return 0
