"""`puka bind` and `puka unbind`: bindings of queues and exchanges to exchanges."""

from __future__ import annotations

from typing import Any

from puka_cli.commands.declare import add_arguments_option
from puka_cli.context import Context
from puka_cli.options import add_common, add_subcommands

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add `bind queue|exchange` and `unbind queue|exchange` to the command line."""
    for verb in ("bind", "unbind"):
        action = "bind" if verb == "bind" else "remove the binding of"
        parent = add_common(
            subparsers, verb, help=f"{action} a queue or an exchange to an exchange"
        )
        kinds = add_subcommands(parent, "kind", "kind")
        for kind in ("queue", "exchange"):
            parser = add_common(
                kinds,
                kind,
                help=f"{action} {kind} NAME to exchange -e",
                epilog=f"example:\n  puka {verb} {kind} "
                + (
                    "orders -e events -r 'order.*'" if kind == "queue" else "audit -e events -r '#'"
                ),
            )
            parser.add_argument(
                "name",
                metavar="NAME",
                help="the queue" if kind == "queue" else "the destination exchange",
            )
            parser.add_argument(
                "-e",
                "--exchange",
                required=True,
                metavar="EXCHANGE",
                help="the exchange messages come from",
            )
            parser.add_argument(
                "-r", "--routing-key", default="", metavar="KEY", help="binding key (default: '')"
            )
            add_arguments_option(parser, "a binding (for headers exchanges)")
            parser.set_defaults(func=run, verb=verb)


def run(ctx: Context) -> int:
    """Bind or unbind."""
    args = ctx.args
    arguments = dict(args.argument) or None
    with ctx.connected() as client:
        if args.kind == "queue":
            queue_call = client.queue_bind if args.verb == "bind" else client.queue_unbind
            promise = queue_call(
                queue=args.name,
                exchange=args.exchange,
                routing_key=args.routing_key,
                arguments=arguments,
            )
        else:
            exchange_call = client.exchange_bind if args.verb == "bind" else client.exchange_unbind
            promise = exchange_call(
                destination=args.name,
                source=args.exchange,
                routing_key=args.routing_key,
                arguments=arguments,
            )
        client.wait(promise)
    done = "bound" if args.verb == "bind" else "unbound"
    ctx.output.result(
        {
            "source": args.exchange,
            "destination": args.name,
            "destination_type": args.kind,
            "routing_key": args.routing_key,
            args.verb: True,
        },
        f"{done} {args.kind} {args.name!r} {'to' if done == 'bound' else 'from'} exchange "
        f"{args.exchange!r} with key {args.routing_key!r}",
    )
    return 0
