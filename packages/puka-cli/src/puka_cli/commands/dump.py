"""`puka dump`: write a queue's messages as JSON lines, leaving the queue as it was or draining it.

Non-destructive by default: the messages are consumed without acknowledgement and, once
written, all requeued at once (RabbitMQ puts requeued messages back in their original
positions), so the queue keeps the same messages in the same order; only their `redelivered`
flag is set. With `--drain` each message is acknowledged (removed) only after it is written
and the file is flushed and fsynced; a crash in between leaves it in the queue, never lost.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from typing import IO, Any

import puka

from puka_cli.consuming import Deliveries, requeue_rest
from puka_cli.context import Context, Interrupt, result_of
from puka_cli.errors import CliError
from puka_cli.exit_codes import ExitCode
from puka_cli.messages import record_from_result
from puka_cli.options import add_common, positive_int
from puka_cli.output import json_dumps

__all__ = ["register", "run", "sync"]

EXAMPLES = """\
The dump is always JSON lines, one message a line in the message schema (see 'puka restore'),
whatever -F says; with -f, -F applies to the summary printed on stdout.

examples:
  puka dump orders -f orders.jsonl                copy (the queue is left as it was)
  puka dump orders -f orders.jsonl --drain        move: ack each message once on disk
  puka dump orders -c 10 | jq .body               the first ten, to stdout
"""


def register(subparsers: Any) -> None:
    """Add `dump` to the command line."""
    parser = add_common(
        subparsers,
        "dump",
        help="save a queue's messages to JSON lines (non-destructive unless --drain)",
        epilog=EXAMPLES,
    )
    parser.add_argument("queue", metavar="QUEUE", help="the queue to dump")
    parser.add_argument(
        "-f", "--file", metavar="FILE", help="write to FILE (default: standard output)"
    )
    parser.add_argument(
        "-c", "--count", type=positive_int, metavar="N", help="dump at most N messages"
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help="remove the messages: each is acknowledged once written, flushed and fsynced",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=100,
        metavar="N",
        help="with --drain, fsync and acknowledge every N messages (default: 100)",
    )
    parser.set_defaults(func=run)


def sync(stream: IO[bytes]) -> None:
    """Flush `stream` and, if it is a regular file, fsync it to disk."""
    stream.flush()
    with contextlib.suppress(AttributeError, OSError, ValueError):
        fd = stream.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)


@contextlib.contextmanager
def _target(ctx: Context, path: str | None) -> Iterator[IO[bytes]]:
    if path is None or path == "-":
        yield ctx.output.stream
        return
    try:
        handle = open(path, "wb")  # noqa: SIM115 - closed below, after the last sync
    except OSError as exc:
        raise CliError(f"cannot create {path}: {exc.strerror}", ExitCode.CANTCREAT) from None
    try:
        yield handle
    finally:
        handle.close()


def run(ctx: Context) -> int:
    """Dump the queue."""
    args = ctx.args
    written = 0
    with ctx.connected() as client, Interrupt() as interrupt, _target(ctx, args.file) as out:
        ready = result_of(client, client.queue_declare(queue=args.queue, passive=True))[
            "message_count"
        ]
        target = ready if args.count is None else min(args.count, ready)
        progress = ctx.progress(f"dumping {args.queue}", target)
        deliveries: Deliveries | None = None
        if target:
            prefetch = 2 * args.batch if args.drain else 0  # 0: nothing settles until the end
            promise = client.basic_consume(queue=args.queue, prefetch_count=prefetch)
            deliveries = Deliveries(
                client,
                promise,
                queues=[args.queue],
                count=target,
                until_empty=True,
                interrupt=interrupt,
            )
            written = _copy(client, deliveries, out, args.drain, args.batch, progress.update)
        sync(out)
        progress.finish()
    summary = {"queue": args.queue, "dumped": written, "drained": args.drain, "file": args.file}
    if args.file not in (None, "-"):
        verb = "moved" if args.drain else "copied"
        ctx.output.result(
            summary, f"{verb} {written} message(s) from {args.queue!r} to {args.file}"
        )
    else:
        ctx.note(f"dumped {written} message(s) from {args.queue!r}")
    if deliveries is not None and deliveries.stopped == "interrupted":
        return 130
    return 0


def _copy(
    client: puka.Client,
    deliveries: Deliveries,
    out: IO[bytes],
    drain: bool,
    batch: int,
    progress: Any,
) -> int:
    """Write the messages; ack (drain) or requeue them; return how many were written."""
    written = 0
    last: puka.Result | None = None  # the last written message not yet acknowledged
    try:
        for result in deliveries:
            record = record_from_result(result)
            record.pop("delivery_tag", None)
            out.write(json_dumps(record).encode("utf-8") + b"\n")
            written += 1
            last = result
            if drain and written % batch == 0:
                sync(out)
                client.basic_ack(result, multiple=True)
                last = None
            progress(written)
    finally:
        # Also on errors: what was written and synced may be acknowledged, the rest goes back.
        if drain and last is not None and not client.engine.closed:
            sync(out)
            client.basic_ack(last, multiple=True)
            last = None
    rest = deliveries.stop()
    if drain:
        requeue_rest(client, rest[-1] if rest else None)
    else:
        requeue_rest(client, rest[-1] if rest else last)
    return written
