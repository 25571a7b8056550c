"""`puka consume`: receive messages from queues, print them or hand each to a command."""

from __future__ import annotations

import argparse
import os
import subprocess
from typing import Any

import puka

from puka_cli.consuming import Deliveries, requeue_rest
from puka_cli.context import Context, Interrupt
from puka_cli.errors import CliError, UsageError
from puka_cli.messages import record_from_result, split_headers, table_to_json
from puka_cli.options import add_common, non_negative_int, positive_int, seconds
from puka_cli.output import json_dumps

__all__ = [
    "ACK_MODES",
    "add_limits",
    "add_separator",
    "message_environment",
    "quoted_queues",
    "register",
    "run",
    "run_command",
    "separator",
]

ACK_MODES = ("ack", "auto", "reject", "requeue")

EXAMPLES = """\
ack modes:
  ack      acknowledge each message once it is written out (or its --exec command succeeded)
  auto     a message is acknowledged as it arrives, before it is written (at most once);
           without --count the consume is no_ack (fastest: what is in flight when the
           command is interrupted is lost)
  reject   reject each message once handled, without requeueing (it is dead-lettered or dropped)
  requeue  leave the queue as it was: every message goes back, in order, when the command ends

examples:
  puka consume tasks -c 10 -F jsonl > ten.jsonl
  puka consume tasks --until-empty -F raw --separator '\\n'
  puka consume tasks --exec 'jq .id >> ids.txt'      ack only when the command succeeds
"""


def add_limits(parser: argparse.ArgumentParser) -> None:
    """`-c/--count`, `--idle-timeout` and `--until-empty`."""
    parser.add_argument(
        "-c", "--count", type=positive_int, metavar="N", help="stop after N messages"
    )
    parser.add_argument(
        "--idle-timeout",
        type=seconds,
        metavar="SEC",
        help="stop when no message arrives for SEC seconds",
    )
    parser.add_argument(
        "--until-empty",
        action="store_true",
        help="stop once the queues are empty",
    )


def add_separator(parser: argparse.ArgumentParser) -> None:
    """`--separator` for `-F raw`."""
    parser.add_argument(
        "--separator",
        metavar="TEXT",
        help="with -F raw, write TEXT after each body (backslash escapes such as \\n work)",
    )


def register(subparsers: Any) -> None:
    """Add `consume` to the command line."""
    parser = add_common(
        subparsers,
        "consume",
        help="consume messages from one or more queues",
        epilog=EXAMPLES,
    )
    parser.add_argument("queues", nargs="+", metavar="QUEUE", help="queue(s) to consume")
    add_limits(parser)
    parser.add_argument(
        "--prefetch",
        type=non_negative_int,
        default=100,
        metavar="N",
        help="unacknowledged messages the broker may send ahead, 0 for no limit (default: 100)",
    )
    parser.add_argument(
        "--ack-mode",
        choices=ACK_MODES,
        default="ack",
        help="how messages are settled (default: ack; see below)",
    )
    parser.add_argument(
        "--no-ack", action="store_const", const="auto", dest="ack_mode", help="--ack-mode auto"
    )
    parser.add_argument(
        "--exec",
        metavar="CMD",
        dest="exec_command",
        help="run CMD (with sh -c) for each message: the body on its stdin, AMQP_* variables "
        "describing the message; acknowledge only if it exits with 0",
    )
    parser.add_argument(
        "--on-failure",
        choices=("stop", "requeue", "reject"),
        default="stop",
        help="when CMD fails: requeue the message and stop with an error (stop, the default), "
        "requeue it and go on, or reject it without requeueing and go on",
    )
    add_separator(parser)
    parser.set_defaults(func=run, ack_mode="ack")


def quoted_queues(queues: list[str]) -> str:
    """`queue 'a'` or `queues 'a', 'b'`: what a consume waits on, for `Context.waiting`."""
    return ("queue " if len(queues) == 1 else "queues ") + ", ".join(repr(q) for q in queues)


def separator(args: argparse.Namespace) -> bytes:
    """The `--separator` bytes, with backslash escapes applied."""
    text = getattr(args, "separator", None)
    if not text:
        return b""
    unescaped: str = text.encode("latin-1", "backslashreplace").decode("unicode_escape")
    return unescaped.encode("utf-8")


def message_environment(result: puka.Result) -> dict[str, str]:
    """Environment variables describing a message, for `--exec` commands."""
    env = {
        "AMQP_EXCHANGE": str(result.get("exchange", "")),
        "AMQP_ROUTING_KEY": str(result.get("routing_key", "")),
        "AMQP_REDELIVERED": "1" if result.get("redelivered") else "0",
        "AMQP_DELIVERY_TAG": str(result.get("delivery_tag", "")),
    }
    properties, table = split_headers(result.get("headers") or {})
    for name, value in properties.items():
        env["AMQP_" + name.upper()] = str(value)
    env["AMQP_HEADERS"] = json_dumps(table_to_json(table))
    return env


def run_command(command: str, body: bytes, env: dict[str, str], client: puka.Client) -> int:
    """Run `command` with `body` on its stdin; keep the connection alive while it runs."""
    process = subprocess.Popen(  # noqa: S602 - running the user's shell command is the point
        command, shell=True, stdin=subprocess.PIPE, env={**os.environ, **env}
    )
    data: bytes | None = body
    while True:
        try:
            process.communicate(data, timeout=0.05)
            return process.returncode
        except subprocess.TimeoutExpired:
            data = None  # sent already; later calls only wait
            client.loop(timeout=0.2)  # heartbeats, while messages queue up in the consume


def run(ctx: Context) -> int:
    """Consume the queues until a limit is reached or Ctrl-C."""
    args = ctx.args
    mode: str = args.ack_mode
    if args.exec_command and mode in ("auto", "requeue"):
        raise UsageError(f"--exec needs --ack-mode ack or reject, not {mode}")
    output = ctx.output
    output.separator = separator(args)
    # auto with a count: ack on arrival, so that the broker sends no more than the count
    no_ack = mode == "auto" and args.count is None
    ack_first = mode == "auto" and not no_ack
    prefetch = args.prefetch
    if mode == "requeue":
        prefetch = 0  # nothing is settled until the end: any limit would stall the consume
    elif args.count is not None and (prefetch == 0 or prefetch > args.count):
        prefetch = args.count
    progress = ctx.progress("consumed", args.count)
    failed: str | None = None
    with ctx.connected() as client, Interrupt() as interrupt:
        if args.until_empty:
            for queue in args.queues:  # a missing queue is an error now, not at the first check
                client.wait(client.queue_declare(queue=queue, passive=True))
        promise = client.basic_consume_multi(args.queues, prefetch_count=prefetch, no_ack=no_ack)
        ctx.waiting(quoted_queues(args.queues))
        deliveries = Deliveries(
            client,
            promise,
            queues=args.queues,
            count=args.count,
            idle_timeout=args.idle_timeout,
            until_empty=args.until_empty,
            interrupt=interrupt,
        )
        last_kept: puka.Result | None = None  # the last message left unsettled on purpose
        for result in deliveries:
            if ack_first:
                client.basic_ack(result)
            if args.exec_command:
                env = message_environment(result)
                status = run_command(args.exec_command, result["body"], env, client)
                if status != 0 and interrupt.requested:
                    client.basic_reject(result, requeue=True)  # Ctrl-C reached the command too
                    break
                if status != 0:
                    if args.on_failure == "reject":
                        client.basic_reject(result, requeue=False)
                        ctx.warn(f"command exited with status {status}: message rejected")
                        continue
                    client.basic_reject(result, requeue=True)
                    if args.on_failure == "requeue":
                        ctx.warn(f"command exited with status {status}: message requeued")
                        continue
                    failed = f"command exited with status {status}: message requeued"
                    break
            else:
                output.message(record_from_result(result), result["body"])
            if mode == "ack":
                client.basic_ack(result)
            elif mode == "reject":
                client.basic_reject(result, requeue=False)
            elif mode == "requeue":
                last_kept = result
            progress.update(deliveries.received)
        rest = deliveries.stop()
        if not no_ack:
            requeue_rest(client, rest[-1] if rest else last_kept)
        progress.finish()
    if failed is not None:
        raise CliError(failed)
    if deliveries.stopped == "interrupted" or interrupt.requested:
        return 130
    return 0
