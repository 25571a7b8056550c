"""`puka topology apply FILE`: declare exchanges, queues and bindings; idempotent.

Each object is checked and reported on its own: `created` (it did not exist), `ok` (it exists
with the same settings), `mismatch` (it exists with other settings: the broker's 406
PRECONDITION_FAILED message says which; the object is left as it is) or `error` (any other
refusal). Bindings are `bound` (binding is idempotent). With `--dry-run` nothing is created:
missing objects are reported `missing` (existing ones are still checked for mismatches, which
changes nothing). The exit status is 1 if any object failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import puka

from puka_cli.context import Context
from puka_cli.errors import CliError
from puka_cli.exit_codes import ExitCode
from puka_cli.options import add_common, add_subcommands
from puka_cli.topology_file import Binding, Exchange, Queue, Topology, load_topology

__all__ = ["apply", "register", "run_apply"]


def register(subparsers: Any) -> None:
    """Add `topology apply` to the command line."""
    topology = add_common(subparsers, "topology", help="declare a whole topology from a file")
    commands = add_subcommands(topology, "topology_command", "topology command")
    apply_parser = add_common(
        commands,
        "apply",
        help="declare the exchanges, queues and bindings of a JSON file (idempotent)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        epilog="The file is RabbitMQ's definitions format (an export applies as it is):\n"
        '  {"exchanges": [{"name": "events", "type": "topic", "durable": true}],\n'
        '   "queues": [{"name": "orders", "durable": true,\n'
        '               "arguments": {"x-queue-type": "quorum"}}],\n'
        '   "bindings": [{"source": "events", "destination": "orders",\n'
        '                 "destination_type": "queue", "routing_key": "order.*"}]}\n\n'
        "example:\n  puka topology apply topology.json --dry-run",
    )
    apply_parser.add_argument("file", metavar="FILE", help="the JSON file ('-' for standard input)")
    apply_parser.add_argument(
        "--dry-run", action="store_true", help="create nothing: report what is missing or differs"
    )
    apply_parser.set_defaults(func=run_apply)


def _outcome(
    client: puka.Client,
    passive: Callable[[], int],
    active: Callable[[], int] | None,
    dry_run: bool,
) -> tuple[str, str | None]:
    """Check then declare one object: (status, error text)."""
    try:
        client.wait(passive())
    except puka.NotFound:
        if dry_run or active is None:
            return ("missing", None) if dry_run else ("error", "not found")
        try:
            client.wait(active())
        except puka.AMQPError as exc:
            return "error", str(exc)
        return "created", None
    except puka.AMQPError as exc:
        return "error", str(exc)
    if active is None:
        return "ok", None
    try:
        client.wait(active())
    except puka.PreconditionFailed as exc:
        return "mismatch", str(exc)
    except puka.AMQPError as exc:
        return "error", str(exc)
    return "ok", None


def _exchange(client: puka.Client, item: Exchange, dry_run: bool) -> tuple[str, str | None]:
    def passive() -> int:
        return client.exchange_declare(exchange=item.name, passive=True)

    def active() -> int:
        return client.exchange_declare(
            exchange=item.name,
            type=item.type,
            durable=item.durable,
            auto_delete=item.auto_delete,
            internal=item.internal,
            arguments=item.arguments or None,
        )

    # amq.* and the default exchange exist always and cannot be declared actively
    builtin = item.name == "" or item.name.startswith("amq.")
    return _outcome(client, passive, None if builtin else active, dry_run)


def _queue(client: puka.Client, item: Queue, dry_run: bool) -> tuple[str, str | None]:
    def passive() -> int:
        return client.queue_declare(queue=item.name, passive=True)

    def active() -> int:
        return client.queue_declare(
            queue=item.name,
            durable=item.durable,
            auto_delete=item.auto_delete,
            exclusive=item.exclusive,
            arguments=item.arguments or None,
        )

    return _outcome(client, passive, active, dry_run)


def _binding(client: puka.Client, item: Binding, dry_run: bool) -> tuple[str, str | None]:
    try:
        if dry_run:
            client.wait(client.exchange_declare(exchange=item.source, passive=True))
            if item.destination_type == "queue":
                client.wait(client.queue_declare(queue=item.destination, passive=True))
            else:
                client.wait(client.exchange_declare(exchange=item.destination, passive=True))
            return "would-bind", None
        if item.destination_type == "queue":
            client.wait(
                client.queue_bind(
                    queue=item.destination,
                    exchange=item.source,
                    routing_key=item.routing_key,
                    arguments=item.arguments or None,
                )
            )
        else:
            client.wait(
                client.exchange_bind(
                    destination=item.destination,
                    source=item.source,
                    routing_key=item.routing_key,
                    arguments=item.arguments or None,
                )
            )
    except puka.NotFound as exc:
        return ("missing" if dry_run else "error"), str(exc)
    except puka.AMQPError as exc:
        return "error", str(exc)
    return "bound", None


def apply(client: puka.Client, topology: Topology, dry_run: bool = False) -> list[dict[str, Any]]:
    """Declare everything in `topology`; one report per object (see the module docstring).

    A refused declaration closes only its channel: the client stays usable for the rest.
    """
    reports: list[dict[str, Any]] = []
    steps: list[tuple[str, Any, Any]] = [
        *(("exchange", item, _exchange) for item in topology.exchanges),
        *(("queue", item, _queue) for item in topology.queues),
        *(("binding", item, _binding) for item in topology.bindings),
    ]
    for kind, item, declare in steps:
        status, error = declare(client, item, dry_run)
        report: dict[str, Any] = {"kind": kind, "status": status}
        if kind == "binding":
            report.update(
                source=item.source,
                destination=item.destination,
                destination_type=item.destination_type,
                routing_key=item.routing_key,
            )
        else:
            report["name"] = item.name
        if error is not None:
            report["error"] = error
        report["label"] = item.label
        reports.append(report)
    return reports


_FAILED = frozenset({"mismatch", "error"})


def run_apply(ctx: Context) -> int:
    """Apply a topology file and report each object."""
    args = ctx.args
    if args.file == "-":
        text = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        try:
            with open(args.file, "rb") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise CliError(f"no such file: {args.file}", ExitCode.NOINPUT) from None
        name = args.file
    topology = load_topology(text, name)
    with ctx.connected() as client:
        reports = apply(client, topology, dry_run=args.dry_run)
    for report in reports:
        label = report.pop("label")
        line = f"{report['status']:>10}  {label}"
        if "error" in report:
            line += f": {report['error']}"
        ctx.output.result(report, line)
    failed = sum(1 for report in reports if report["status"] in _FAILED)
    if failed:
        raise CliError(f"{failed} of {len(reports)} object(s) failed")
    return 0
