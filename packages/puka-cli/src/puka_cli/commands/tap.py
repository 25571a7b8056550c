"""`puka tap`: watch what flows through exchanges, from a temporary queue of capped length."""

from __future__ import annotations

import argparse
from typing import Any

from puka_cli.commands.consume import add_limits, add_separator, separator
from puka_cli.consuming import Deliveries
from puka_cli.context import Context, Interrupt, result_of
from puka_cli.errors import UsageError
from puka_cli.messages import record_from_result
from puka_cli.options import add_common, positive_int

__all__ = ["bindings", "register", "run"]

EXAMPLES = """\
The tap queue is exclusive, server-named and deleted when puka exits; it holds at most
--max-length messages (the oldest are dropped first), so a slow terminal never fills the broker.

examples:
  puka tap amq.topic:'order.#'                  a topic exchange, one binding key
  puka tap logs events:user.created             'logs' with key '#', 'events' with a key
  puka tap -e amq.direct -r a -r b -c 10 -F jsonl
"""


def register(subparsers: Any) -> None:
    """Add `tap` to the command line."""
    parser = add_common(
        subparsers,
        "tap",
        help="watch messages published to exchanges (a temporary, capped queue)",
        epilog=EXAMPLES,
    )
    parser.add_argument(
        "taps",
        nargs="*",
        metavar="EXCHANGE[:KEY]",
        help="an exchange to tap and the binding key (default '#': everything on a topic or "
        "fanout exchange)",
    )
    parser.add_argument(
        "-e",
        "--exchange",
        action="append",
        default=[],
        metavar="EXCHANGE",
        help="an exchange to tap",
    )
    parser.add_argument(
        "-r",
        "--routing-key",
        action="append",
        default=[],
        metavar="KEY",
        help="binding key(s) for the -e exchanges (default: '#')",
    )
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=1000,
        metavar="N",
        help="cap of the tap queue; the oldest messages are dropped beyond it (default: 1000)",
    )
    add_limits(parser)
    add_separator(parser)
    parser.set_defaults(func=run)


def bindings(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (exchange, binding key) pairs the options ask for."""
    pairs: list[tuple[str, str]] = []
    for tap in args.taps:
        exchange, colon, key = tap.partition(":")
        pairs.append((exchange, key if colon else "#"))
    keys = args.routing_key or ["#"]
    if args.routing_key and not args.exchange:
        raise UsageError("-r/--routing-key needs -e/--exchange")
    pairs.extend((exchange, key) for exchange in args.exchange for key in keys)
    if not pairs:
        raise UsageError("name at least one exchange to tap (EXCHANGE[:KEY] or -e)")
    for exchange, _ in pairs:
        if not exchange:
            raise UsageError("the default exchange '' cannot be tapped (it has no bindings)")
    return pairs


def run(ctx: Context) -> int:
    """Tap the exchanges until a limit is reached or Ctrl-C."""
    args = ctx.args
    pairs = bindings(args)
    output = ctx.output
    output.separator = separator(args)
    with ctx.connected() as client, Interrupt() as interrupt:
        declared = result_of(
            client,
            client.queue_declare(
                exclusive=True,
                auto_delete=True,
                arguments={"x-max-length": args.max_length, "x-overflow": "drop-head"},
            ),
        )
        queue: str = declared["queue"]
        client.wait_for_all(
            [client.queue_bind(queue=queue, exchange=ex, routing_key=key) for ex, key in pairs]
        )
        ctx.note(f"tapping {', '.join(f'{ex}:{key}' for ex, key in pairs)} via {queue!r}")
        promise = client.basic_consume(queue=queue, no_ack=True, exclusive=True)
        ctx.waiting("messages through " + ", ".join(f"{ex}:{key}" for ex, key in pairs))
        deliveries = Deliveries(
            client,
            promise,
            queues=[queue],
            count=args.count,
            idle_timeout=args.idle_timeout,
            until_empty=args.until_empty,
            interrupt=interrupt,
        )
        for result in deliveries:
            output.message(record_from_result(result), result["body"])
        deliveries.stop()
        client.wait(client.queue_delete(queue=queue))
    return 130 if deliveries.stopped == "interrupted" else 0
