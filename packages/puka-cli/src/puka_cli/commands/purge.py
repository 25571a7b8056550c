"""`puka purge`: remove every ready message of queues."""

from __future__ import annotations

from typing import Any

from puka_cli.context import Context, result_of
from puka_cli.options import add_common

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add `purge` to the command line."""
    parser = add_common(
        subparsers,
        "purge",
        help="remove every ready message of one or more queues",
        epilog="Messages delivered and not yet acknowledged are not purged.\n\n"
        "example:\n  puka purge tasks retries",
    )
    parser.add_argument("queues", nargs="+", metavar="QUEUE", help="queue(s) to purge")
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    """Purge the queues, reporting how many messages each lost."""
    with ctx.connected() as client:
        for queue in ctx.args.queues:
            result = result_of(client, client.queue_purge(queue=queue))
            count = result["message_count"]
            ctx.output.result(
                {"queue": queue, "purged": count}, f"purged {count} message(s) from {queue!r}"
            )
    return 0
