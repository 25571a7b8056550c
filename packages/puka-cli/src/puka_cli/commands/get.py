"""`puka get`: fetch messages one at a time (basic.get); exit status 2 if the queue is empty."""

from __future__ import annotations

from typing import Any

import puka

from puka_cli.commands.consume import add_separator, separator
from puka_cli.context import Context, result_of
from puka_cli.exit_codes import ExitCode
from puka_cli.messages import record_from_result
from puka_cli.options import add_common, positive_int

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add `get` to the command line."""
    parser = add_common(
        subparsers,
        "get",
        help="fetch messages from a queue (exit status 2 if it is empty)",
        epilog="example:\n  puka get tasks -F raw > body.bin\n  puka get tasks -c 5 --requeue",
    )
    parser.add_argument("queue", metavar="QUEUE", help="the queue")
    parser.add_argument(
        "-c", "--count", type=positive_int, default=1, metavar="N", help="fetch up to N messages"
    )
    settle = parser.add_mutually_exclusive_group()
    settle.add_argument(
        "--requeue",
        action="store_const",
        const="requeue",
        dest="ack_mode",
        help="put the messages back where they were (in order) once written",
    )
    settle.add_argument(
        "--reject",
        action="store_const",
        const="reject",
        dest="ack_mode",
        help="reject the messages without requeueing (dead-letter them)",
    )
    settle.add_argument(
        "--ack-mode",
        choices=("ack", "requeue", "reject"),
        default="ack",
        help="what happens to a message once written (default: ack, removing it)",
    )
    add_separator(parser)
    parser.set_defaults(func=run, ack_mode="ack")


def run(ctx: Context) -> int:
    """Fetch up to `--count` messages."""
    args = ctx.args
    output = ctx.output
    output.separator = separator(args)
    got = 0
    with ctx.connected() as client:
        kept: list[puka.Result] = []
        for _ in range(args.count):
            result = result_of(client, client.basic_get(queue=args.queue))
            if result.get("empty"):
                break
            got += 1
            output.message(record_from_result(result, queue=args.queue), result["body"])
            if args.ack_mode == "ack":
                client.basic_ack(result)
            elif args.ack_mode == "reject":
                client.basic_reject(result, requeue=False)
            else:
                kept.append(result)
        # Each unsettled get parks its channel, so the next get runs on another channel: a
        # `multiple` nack would cover one message only. Requeue them one by one.
        for result in kept:
            client.basic_nack(result, requeue=True)
    if got == 0:
        ctx.note(f"queue {args.queue!r} is empty")
        return ExitCode.EMPTY
    return 0
