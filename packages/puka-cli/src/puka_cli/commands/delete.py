"""`puka delete queue|exchange`: delete queues and exchanges, saying when one was not there.

RabbitMQ answers `queue.delete` and `exchange.delete` of a missing name with a plain OK, so
each name is first checked with a passive declare (404 NOT_FOUND when it is missing). The
check and the delete are two steps: if another client deletes the object between them, the
delete still succeeds and `puka` reports it deleted; if another client creates it just after
the check, `puka` reports it missing and leaves the new one alone.
"""

from __future__ import annotations

from typing import Any

import puka

from puka_cli.context import Context, result_of
from puka_cli.errors import CliError
from puka_cli.exit_codes import ExitCode
from puka_cli.options import add_common, add_subcommands

__all__ = ["register", "run"]

MISSING = """\
A name that does not exist is reported as "was not there" and makes the exit status 1, once
the other names are deleted; with --if-exists it is reported on stdout and the exit status
stays 0. The existence check is a passive declare just before the delete: an object
created or deleted by someone else between the two is not noticed.
"""


def register(subparsers: Any) -> None:
    """Add `delete queue` and `delete exchange` to the command line."""
    delete = add_common(subparsers, "delete", help="delete queues or exchanges")
    kinds = add_subcommands(delete, "kind", "kind")
    queue = add_common(
        kinds,
        "queue",
        help="delete queues (and their messages)",
        epilog=MISSING + "\nexamples:\n  puka delete queue tasks --if-empty\n"
        "  puka delete queue tmp-1 tmp-2 --if-exists",
    )
    queue.add_argument("names", nargs="+", metavar="NAME", help="queue(s) to delete")
    queue.add_argument("--if-unused", action="store_true", help="only if it has no consumers")
    queue.add_argument("--if-empty", action="store_true", help="only if it has no messages")
    _if_exists(queue)
    queue.set_defaults(func=run)
    exchange = add_common(
        kinds,
        "exchange",
        help="delete exchanges",
        epilog=MISSING + "\nexample:\n  puka delete exchange events --if-unused",
    )
    exchange.add_argument("names", nargs="+", metavar="NAME", help="exchange(s) to delete")
    exchange.add_argument("--if-unused", action="store_true", help="only if it has no bindings")
    _if_exists(exchange)
    exchange.set_defaults(func=run, if_empty=False)


def _if_exists(parser: Any) -> None:
    parser.add_argument(
        "--if-exists",
        action="store_true",
        help="a name that does not exist is not an error (exit status 0; default: 1)",
    )


def _exists(client: puka.Client, kind: str, name: str) -> bool:
    """Whether the queue or exchange exists (a passive declare: 404 NOT_FOUND if not)."""
    if kind == "queue":
        promise = client.queue_declare(queue=name, passive=True)
    else:
        promise = client.exchange_declare(exchange=name, passive=True)
    try:
        client.wait(promise)
    except puka.NotFound:
        return False
    return True


def run(ctx: Context) -> int:
    """Delete each named queue or exchange; report the ones that were not there."""
    args = ctx.args
    kind: str = args.kind
    missing: list[str] = []
    with ctx.connected() as client:
        for name in args.names:
            if not _exists(client, kind, name):
                missing.append(name)
                text = f"{kind} {name!r} was not there"
                ctx.output.result(
                    {kind: name, "deleted": False, "existed": False},
                    text if args.if_exists else None,
                )
                continue
            if kind == "queue":
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
    if missing and not args.if_exists:
        shown = ", ".join(repr(name) for name in missing)
        verb = "was" if len(missing) == 1 else "were"
        raise CliError(f"{kind} {shown} {verb} not there (404 NOT_FOUND)", ExitCode.ERROR)
    return 0
