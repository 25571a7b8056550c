"""`puka declare queue|exchange`: create queues and exchanges (or check them with --passive)."""

from __future__ import annotations

import argparse
from typing import Any

from puka_cli.context import Context, result_of
from puka_cli.options import add_common, add_subcommands, non_negative_int, typed_item

__all__ = ["queue_arguments", "register", "run_exchange", "run_queue"]

QUEUE_EXAMPLES = """\
examples:
  puka declare queue tasks --durable
  puka declare queue jobs --type quorum --dead-letter-exchange jobs.dlx
  puka declare queue cache --max-length 1000 --overflow drop-head -a x-expires=60000
  puka declare queue                          a server-named queue (printed)
"""


def add_arguments_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`-a/--argument KEY=VALUE` (repeatable)."""
    parser.add_argument(
        "-a",
        "--argument",
        action="append",
        type=typed_item,
        default=[],
        metavar="KEY=VALUE",
        help=f"{what} argument (integers and true/false are typed; KEY:=JSON for any value); "
        "repeatable",
    )


def register(subparsers: Any) -> None:
    """Add `declare queue` and `declare exchange` to the command line."""
    declare = add_common(subparsers, "declare", help="declare a queue or an exchange")
    kinds = add_subcommands(declare, "kind", "kind")

    queue = add_common(kinds, "queue", help="declare a queue", epilog=QUEUE_EXAMPLES)
    queue.add_argument(
        "name",
        nargs="?",
        default="",
        metavar="NAME",
        help="queue name (default: the broker picks one)",
    )
    queue.add_argument("--durable", action="store_true", help="survive a broker restart")
    queue.add_argument(
        "--auto-delete", action="store_true", help="delete it when its last consumer goes"
    )
    queue.add_argument(
        "--passive", action="store_true", help="only check that it exists (status 1 if not)"
    )
    queue.add_argument("--type", choices=("classic", "quorum", "stream"), help="x-queue-type")
    queue.add_argument("--max-length", type=non_negative_int, metavar="N", help="x-max-length")
    queue.add_argument(
        "--max-length-bytes", type=non_negative_int, metavar="N", help="x-max-length-bytes"
    )
    queue.add_argument(
        "--overflow",
        choices=("drop-head", "reject-publish", "reject-publish-dlx"),
        help="x-overflow: what happens beyond the maximum length",
    )
    queue.add_argument("--message-ttl", type=non_negative_int, metavar="MS", help="x-message-ttl")
    queue.add_argument(
        "--expires", type=non_negative_int, metavar="MS", help="x-expires: delete it when unused"
    )
    queue.add_argument("--dead-letter-exchange", metavar="EXCHANGE", help="x-dead-letter-exchange")
    queue.add_argument("--dead-letter-routing-key", metavar="KEY", help="x-dead-letter-routing-key")
    queue.add_argument("--max-priority", type=non_negative_int, metavar="N", help="x-max-priority")
    queue.add_argument(
        "--single-active-consumer", action="store_true", help="x-single-active-consumer"
    )
    add_arguments_option(queue, "a queue")
    queue.set_defaults(func=run_queue)

    exchange = add_common(
        kinds,
        "exchange",
        help="declare an exchange",
        epilog="example:\n  puka declare exchange events -t topic --durable",
    )
    exchange.add_argument("name", metavar="NAME", help="exchange name")
    exchange.add_argument(
        "-t",
        "--type",
        default="direct",
        metavar="TYPE",
        help="direct (default), fanout, topic, headers, or a plugin's type",
    )
    exchange.add_argument("--durable", action="store_true", help="survive a broker restart")
    exchange.add_argument(
        "--auto-delete", action="store_true", help="delete it when its last binding goes"
    )
    exchange.add_argument(
        "--internal", action="store_true", help="only other exchanges may publish to it"
    )
    exchange.add_argument(
        "--passive", action="store_true", help="only check that it exists (status 1 if not)"
    )
    exchange.add_argument(
        "--alternate-exchange", metavar="EXCHANGE", help="where unroutable messages go"
    )
    add_arguments_option(exchange, "an exchange")
    exchange.set_defaults(func=run_exchange)


_QUEUE_SHORTCUTS = (
    ("type", "x-queue-type"),
    ("max_length", "x-max-length"),
    ("max_length_bytes", "x-max-length-bytes"),
    ("overflow", "x-overflow"),
    ("message_ttl", "x-message-ttl"),
    ("expires", "x-expires"),
    ("dead_letter_exchange", "x-dead-letter-exchange"),
    ("dead_letter_routing_key", "x-dead-letter-routing-key"),
    ("max_priority", "x-max-priority"),
)


def queue_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The x-arguments of a queue from the shortcut options and `-a`."""
    arguments: dict[str, Any] = {}
    for dest, key in _QUEUE_SHORTCUTS:
        value = getattr(args, dest)
        if value is not None:
            arguments[key] = value
    if args.single_active_consumer:
        arguments["x-single-active-consumer"] = True
    arguments.update(args.argument)
    return arguments


def run_queue(ctx: Context) -> int:
    """Declare the queue; print its name and counts."""
    args = ctx.args
    with ctx.connected() as client:
        result = result_of(
            client,
            client.queue_declare(
                queue=args.name,
                durable=args.durable,
                auto_delete=args.auto_delete,
                passive=args.passive,
                arguments=queue_arguments(args) or None,
            ),
        )
    data = {
        "queue": result["queue"],
        "message_count": result["message_count"],
        "consumer_count": result["consumer_count"],
    }
    ctx.output.result(
        data,
        f"queue {data['queue']!r}: {data['message_count']} message(s), "
        f"{data['consumer_count']} consumer(s)",
    )
    return 0


def run_exchange(ctx: Context) -> int:
    """Declare the exchange."""
    args = ctx.args
    arguments: dict[str, Any] = {}
    if args.alternate_exchange:
        arguments["alternate-exchange"] = args.alternate_exchange
    arguments.update(args.argument)
    with ctx.connected() as client:
        client.wait(
            client.exchange_declare(
                exchange=args.name,
                type=args.type,
                durable=args.durable,
                auto_delete=args.auto_delete,
                internal=args.internal,
                passive=args.passive,
                arguments=arguments or None,
            )
        )
    what = "exists" if args.passive else "declared"
    ctx.output.result(
        {"exchange": args.name, "type": args.type, "declared": not args.passive},
        f"exchange {args.name!r} {what}",
    )
    return 0
