"""`puka rpc` (call) and `puka rpc serve`: request/reply over RabbitMQ's direct reply-to."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from typing import Any

import puka

from puka_cli.commands.consume import message_environment
from puka_cli.consuming import Deliveries
from puka_cli.context import Context, Interrupt
from puka_cli.errors import CliError
from puka_cli.exit_codes import ExitCode
from puka_cli.messages import record_from_result
from puka_cli.options import add_common, add_subcommands, non_negative_int, positive_int, seconds
from puka_cli.publishing import add_message_options, bodies, properties_and_headers

__all__ = ["register", "run_call", "run_serve"]

REPLY_TO = "amq.rabbitmq.reply-to"

_RETURN_POLL = 0.05  # seconds between checks for a returned request while awaiting the reply

CALL_EXAMPLES = """\
The request carries reply_to=amq.rabbitmq.reply-to and a fresh correlation_id (unless -P sets
one); the reply with that correlation_id is printed. No reply within --timeout: exit status 75.
The request is mandatory: if no queue takes it (a misspelled queue or routing key), the broker
returns it and the command fails at once with exit status 3.

examples:
  puka rpc -r calc '{"op": "add", "args": [1, 2]}' -F jsonl
  echo 42 | puka rpc call -e services -r square --timeout 2 -F raw
"""

SERVE_EXAMPLES = """\
Each request's reply goes to its reply_to with its correlation_id; the request is acknowledged
once the reply is confirmed. Without --exec the reply is the request body (an echo server).
When CMD fails the request is rejected without requeueing and no reply is sent.

examples:
  puka rpc serve calc --exec 'python3 calc.py'
  puka rpc serve echo --declare -c 1
"""


def register(subparsers: Any) -> None:
    """Add `rpc call` (also plain `rpc`) and `rpc serve` to the command line."""
    rpc = add_common(
        subparsers,
        "rpc",
        help="request/reply: send a request and print the reply, or serve requests",
        description="Request/reply over direct reply-to. 'puka rpc [OPTIONS] [BODY]' is "
        "'puka rpc call'.",
    )
    commands = add_subcommands(rpc, "rpc_command", "rpc command")

    call = add_common(
        commands, "call", help="send a request and print its reply", epilog=CALL_EXAMPLES
    )
    call.add_argument(
        "-e", "--exchange", default="", metavar="EXCHANGE", help="exchange (default: '')"
    )
    call.add_argument(
        "-r",
        "--routing-key",
        required=True,
        metavar="KEY",
        help="routing key (the server's queue with -e '')",
    )
    add_message_options(call, lines=False)
    call.add_argument(
        "--timeout",
        type=seconds,
        default=10.0,
        metavar="SEC",
        help="wait this long for the reply (default: 10)",
    )
    call.set_defaults(func=run_call)

    serve = add_common(
        commands, "serve", help="answer requests from a queue", epilog=SERVE_EXAMPLES
    )
    serve.add_argument("queue", metavar="QUEUE", help="the queue requests arrive on")
    serve.add_argument(
        "--exec",
        dest="exec_command",
        metavar="CMD",
        help="run CMD (sh -c) per request: request body on stdin, its stdout is the reply",
    )
    serve.add_argument("--declare", action="store_true", help="declare QUEUE first (non-durable)")
    serve.add_argument(
        "-c", "--count", type=positive_int, metavar="N", help="stop after N requests"
    )
    serve.add_argument(
        "--prefetch",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="requests taken at a time (default: 10)",
    )
    serve.set_defaults(func=run_serve)


def run_call(ctx: Context) -> int:
    """Send one request and print the reply."""
    args = ctx.args
    properties, headers = properties_and_headers(args)
    correlation_id = properties.get("correlation_id") or uuid.uuid4().hex
    properties["correlation_id"] = correlation_id
    properties["reply_to"] = REPLY_TO
    body = b"".join(bodies(args))
    with ctx.connected() as client:
        replies = client.basic_consume(queue=REPLY_TO, no_ack=True)
        # Direct reply-to: publish on the channel that consumes amq.rabbitmq.reply-to. That
        # channel has no confirms, so puka cannot pair a basic.return with this publish: it
        # counts it in engine.unpaired_returns, which nothing else on this client adds to.
        returns_before = client.engine.unpaired_returns
        client.wait(
            client.basic_publish(
                exchange=args.exchange,
                routing_key=args.routing_key,
                mandatory=True,
                properties=properties,
                headers=headers,
                body=body,
                channel_of=replies,
            )
        )
        where = f"exchange {args.exchange!r}, routing key {args.routing_key!r}"
        deadline = time.monotonic() + args.timeout
        while True:
            left = deadline - time.monotonic()
            reply = client.wait(replies, timeout=min(left, _RETURN_POLL)) if left > 0 else None
            if client.engine.unpaired_returns != returns_before:
                raise CliError(
                    f"the request is unroutable: no queue takes {where} (312 NO_ROUTE)",
                    ExitCode.UNDELIVERED,
                )
            if reply is None:
                if left > 0:
                    continue
                raise CliError(f"no reply within {args.timeout:g} s ({where})", ExitCode.TEMPFAIL)
            if (reply.get("headers") or {}).get("correlation_id") == correlation_id:
                break
            ctx.note("dropped a reply with another correlation_id")
        ctx.output.message(record_from_result(reply), reply["body"])
        client.wait(client.basic_cancel(replies))
    return 0


def _answer(command: str | None, request: puka.Result) -> tuple[int, bytes]:
    if command is None:
        return 0, request["body"]
    completed = subprocess.run(  # noqa: S602 - running the user's shell command is the point
        command,
        shell=True,
        input=request["body"],
        stdout=subprocess.PIPE,
        env={**os.environ, **message_environment(request)},
        check=False,
    )
    return completed.returncode, completed.stdout


def run_serve(ctx: Context) -> int:
    """Answer requests until `--count` or Ctrl-C."""
    args = ctx.args
    served = 0
    with ctx.connected() as client, Interrupt() as interrupt:
        if args.declare:
            client.wait(client.queue_declare(queue=args.queue))
        promise = client.basic_consume(queue=args.queue, prefetch_count=args.prefetch)
        ctx.waiting(f"requests on queue {args.queue!r}")
        deliveries = Deliveries(client, promise, count=args.count, interrupt=interrupt)
        for request in deliveries:
            request_properties = request.properties  # not an application header named so
            reply_to = request_properties.get("reply_to")
            if not reply_to:
                ctx.warn("a request without reply_to: rejected")
                client.basic_reject(request, requeue=False)
                continue
            status, body = _answer(args.exec_command, request)
            if status != 0:
                ctx.warn(f"command exited with status {status}: request rejected")
                client.basic_reject(request, requeue=False)
                continue
            reply_headers: dict[str, Any] = {}
            if request_properties.get("correlation_id") is not None:
                reply_headers["correlation_id"] = request_properties["correlation_id"]
            client.wait(
                client.basic_publish(
                    exchange="", routing_key=reply_to, headers=reply_headers, body=body
                )
            )
            client.basic_ack(request)
            served += 1
            ctx.note(f"answered request {served} (reply_to {reply_to!r})")
        rest = deliveries.stop()
        if rest:
            client.basic_nack(rest[-1], multiple=True, requeue=True)
    return 130 if deliveries.stopped == "interrupted" else 0
