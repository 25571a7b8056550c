"""`puka shovel`: move messages from a queue to an exchange or queue, never losing one.

Each message is consumed without acknowledgement, published to the destination with a
publisher confirm, and acknowledged on the source only once the destination confirmed it. If
anything fails in between, the broker requeues the unacknowledged messages on the source: a
message may be delivered twice (at-least-once), never lost. Ctrl-C stops taking messages,
waits for the confirms of those in flight (acknowledging them), requeues the rest and exits
with status 130.

Every publish is mandatory and at least once: one the destination refuses (a nack) is sent again
(on a new channel: see puka-core's `retry=`) for up to `--retry-for` seconds. A message the
destination returns as unroutable, or still refuses then, is requeued on the source and stops
the shovel: it ends with one line on stderr, `moved N, returned M, failed K`, and exit status 3
when M or K is not 0.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import puka

from puka_cli.commands.consume import add_limits
from puka_cli.consuming import queues_empty
from puka_cli.context import Context, Interrupt, close
from puka_cli.delivery_report import DeliveryReport
from puka_cli.errors import CliError, UsageError, describe
from puka_cli.exit_codes import ExitCode, exit_code_for
from puka_cli.options import (
    add_common,
    add_retry_for,
    non_negative_float,
    positive_int,
    retry_policy,
)

__all__ = ["Shovel", "register", "run"]

EXAMPLES = """\
examples:
  puka shovel orders orders-copy --until-empty          queue to queue, same broker
  puka shovel orders -e archive -r orders --dest-url amqp://backup-host/
  puka shovel orders orders-v2 --reconnect              keep going through connection losses

Every message is published mandatory and confirmed before it is acknowledged on the source.
One the destination refuses (a nack) is sent again for up to --retry-for seconds. One that
no queue takes at the destination (or that it still refuses then) goes back to the source and
stops the shovel. The last line on stderr says 'moved N, returned M,
failed K'; exit status 3 if M or K is not 0.
"""

_SLICE = 0.05  # longest wait between checks (Ctrl-C, limits, rate)
_SETTLE_TIMEOUT = 30.0  # how long to wait for in-flight confirms when stopping


def register(subparsers: Any) -> None:
    """Add `shovel` to the command line."""
    parser = add_common(
        subparsers,
        "shovel",
        help="move messages from a queue to another queue or exchange (acks after confirms)",
        epilog=EXAMPLES,
    )
    parser.add_argument("source", metavar="QUEUE", help="the source queue")
    parser.add_argument(
        "destination",
        nargs="?",
        metavar="DEST_QUEUE",
        help="destination queue (through the default exchange); or use -e/-r",
    )
    parser.add_argument("-e", "--exchange", metavar="EXCHANGE", help="destination exchange")
    parser.add_argument(
        "-r",
        "--routing-key",
        metavar="KEY",
        help="destination routing key (default: DEST_QUEUE, else each message's own)",
    )
    parser.add_argument(
        "--dest-url",
        metavar="URL",
        help="destination broker (default: the source's, over the same connection)",
    )
    add_limits(parser)
    parser.add_argument(
        "--prefetch",
        type=positive_int,
        default=100,
        metavar="N",
        help="messages in flight at a time (default: 100)",
    )
    parser.add_argument(
        "--rate",
        type=non_negative_float,
        default=0.0,
        metavar="MSG/S",
        help="move at most this many messages a second (default: no limit)",
    )
    parser.add_argument(
        "--reconnect",
        action="store_true",
        help="when a connection is lost, reconnect and go on (default: exit with status 75)",
    )
    add_retry_for(parser)
    parser.set_defaults(func=run)


class Shovel:
    """One shovel session: a source consume, a destination publisher, the messages between."""

    def __init__(
        self,
        args: Any,
        source: puka.Client,
        dest: puka.Client,
        interrupt: Interrupt,
        totals: DeliveryReport,
    ) -> None:
        self.args = args
        self.source = source
        self.dest = dest
        self.interrupt = interrupt
        self.totals = totals  # .delivered: confirmed by the destination and acknowledged
        self.backlog: deque[puka.Result] = deque()  # delivered, not yet published
        self.in_flight: dict[int, puka.Result] = {}  # publish promise -> source message
        self.error: BaseException | None = None
        self.undelivered = False  # a message was returned or refused: stop, report, exit 3
        self.on_consuming: Callable[[], object] | None = None  # called once consuming
        self.started = 0  # published in this session
        self.consume: int | None = None
        self.last_activity = time.monotonic()
        self._next_send = time.monotonic()
        self.retry = retry_policy(args.retry_for)

    @property
    def clients(self) -> list[puka.Client]:
        """The distinct clients (one if source and destination share a connection)."""
        return [self.source] if self.dest is self.source else [self.source, self.dest]

    # --- callbacks ------------------------------------------------------------------------

    def on_delivery(self, promise: int, result: puka.Result) -> None:
        """A message from the source (or the consume's error)."""
        if result.is_error:
            if self.error is None:
                self.error = result.exception or CliError("the source consume failed")
            return
        self.last_activity = time.monotonic()
        self.backlog.append(result)
        if not self.interrupt.requested and self.error is None:
            self._publish_backlog()  # straight on, without waiting for the loop to return

    def on_confirm(self, promise: int, result: puka.Result) -> None:
        """The destination confirmed (or refused) a message: settle it on the source."""
        message = self.in_flight.pop(promise, None)
        if message is None:
            return
        if result.is_error:
            with contextlib.suppress(puka.PukaError, puka.AMQPError):
                self.source.basic_nack(message, requeue=True)
            error = result.exception
            exchange, key = self._target(message)
            where = f"exchange {exchange!r}, routing key {key!r}"
            if isinstance(error, puka.PublishFailed) and error.cause is not None:
                where += f", sent {error.attempts} times"
                error = error.cause  # what it last failed with: a nack, or the connection
            if isinstance(error, puka.NoRoute):
                self.totals.returned += 1
                self.totals.note_problem(f"returned as unroutable (312 NO_ROUTE, {where})")
                self.undelivered = True
            elif isinstance(error, puka.PublishNacked):
                self.totals.failed += 1
                self.totals.note_problem(f"refused by the destination (nack, {where})")
                self.undelivered = True
            else:
                if isinstance(error, puka.SoftError):  # e.g. a missing exchange: not delivered
                    self.totals.failed += 1  # (a lost connection is retried, not counted)
                if self.error is None:
                    self.error = error or CliError("the destination refused a message")
            return
        with contextlib.suppress(puka.PukaError, puka.AMQPError):
            # If the source connection is gone, the broker requeued the message already: it
            # will come again (a duplicate at the destination, never a loss).
            self.source.basic_ack(message)
            self.totals.delivered += 1

    # --- the loop -------------------------------------------------------------------------

    def _target(self, message: puka.Result) -> tuple[str, str]:
        args = self.args
        exchange = args.exchange if args.exchange is not None else ""
        if args.routing_key is not None:
            key = args.routing_key
        elif args.destination is not None:
            key = args.destination
        else:
            key = message.get("routing_key", "")
        return exchange, key

    def _limit_reached(self) -> bool:
        count = self.args.count
        return count is not None and self.totals.delivered + len(self.in_flight) >= count

    def _publish_backlog(self) -> None:
        if self.undelivered or self.error is not None:
            return  # stopping: what is left goes back to the source
        rate = self.args.rate
        while self.backlog and not self._limit_reached():
            if rate:
                now = time.monotonic()
                if now < self._next_send:
                    return
                self._next_send = max(self._next_send + 1.0 / rate, now - 1.0)
            message = self.backlog.popleft()
            exchange, key = self._target(message)
            promise = self.dest.basic_publish(
                exchange=exchange,
                routing_key=key,
                mandatory=True,
                properties=message.properties,  # apart: headers named like properties stay
                headers=message.application_headers,
                body=message["body"],
                callback=self.on_confirm,
                retry=self.retry,
            )
            self.in_flight[promise] = message
            self.started += 1

    def _stop_reason(self) -> str | None:
        args = self.args
        if self.error is not None:
            return "error"
        if self.undelivered:
            return "undelivered"
        if self.interrupt.requested:
            return "interrupted"
        if args.count is not None and self.totals.delivered >= args.count:
            return "count"
        idle = not self.backlog and not self.in_flight
        quiet = time.monotonic() - self.last_activity
        if idle and args.idle_timeout is not None and quiet >= args.idle_timeout:
            return "idle"
        if idle and args.until_empty and quiet >= 0.1 and queues_empty(self.source, [args.source]):
            self.source.loop(timeout=0.05)  # anything still in transit
            if not self.backlog:
                return "empty"
        return None

    def run(self, progress: Any) -> str:
        """Shovel until a limit, an error or Ctrl-C; returns why it stopped."""
        args = self.args
        self.consume = self.source.basic_consume(
            queue=args.source, prefetch_count=args.prefetch, callback=self.on_delivery
        )
        if self.on_consuming is not None:
            self.on_consuming()
        while True:
            self._publish_backlog()
            reason = self._stop_reason()
            if reason is not None:
                break
            timeout = _SLICE
            if args.rate and self.backlog:
                timeout = min(_SLICE, max(0.0, self._next_send - time.monotonic()))
            puka.loop(self.clients, timeout=timeout)
            progress.update(self.totals.delivered)
        self.finish()
        progress.update(self.totals.delivered, force=True)
        return reason

    def finish(self) -> None:
        """Stop consuming, settle what is in flight, requeue the rest."""
        source = self.source
        if source.engine.closed or self.dest.engine.closed:
            return  # the broker requeues every unacknowledged message of a lost connection
        with contextlib.suppress(puka.PukaError, puka.AMQPError):
            if self.consume is not None:
                source.wait(source.basic_cancel(self.consume))
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        while self.in_flight and time.monotonic() < deadline and not self.dest.engine.closed:
            puka.loop(self.clients, timeout=_SLICE)
        if self.backlog and not source.engine.closed:
            # every message delivered before these is settled now: one nack covers them
            with contextlib.suppress(puka.PukaError, puka.AMQPError):
                source.basic_nack(self.backlog[-1], multiple=True, requeue=True)
            self.backlog.clear()


def run(ctx: Context) -> int:
    """Shovel messages; with `--reconnect`, start again after a connection loss."""
    args = ctx.args
    if args.destination is None and args.exchange is None:
        raise UsageError("give a destination: DEST_QUEUE or -e/--exchange")
    if args.destination is not None and args.exchange not in (None, ""):
        raise UsageError("give DEST_QUEUE or -e/--exchange, not both")
    progress = ctx.progress("shovelled", args.count)
    totals = DeliveryReport()
    attempt = 0
    with Interrupt() as interrupt:
        while True:
            error: BaseException | None
            try:
                reason, error = _session(ctx, interrupt, progress, totals)
            except Exception as exc:
                reason, error = "error", exc
            if reason != "error" or error is None:
                break
            if not (args.reconnect and exit_code_for(error) in _RETRY_CODES):
                progress.finish()
                ctx.warn(totals.summary("moved"))
                raise error
            attempt += 1
            delay = min(5.0, 0.25 * 2 ** min(attempt, 5))
            ctx.warn(f"{describe(error)}; reconnecting in {delay:g} s")
            _sleep(delay, interrupt)
            if interrupt.requested:
                reason = "interrupted"
                break
    progress.finish()
    ctx.output.result({**totals.counts("moved"), "source": args.source, "stopped": reason})
    totals.check("moved")
    ctx.warn(totals.summary("moved"))
    return 130 if reason == "interrupted" else 0


_RETRY_CODES = (ExitCode.TEMPFAIL, ExitCode.UNAVAILABLE)


def _sleep(delay: float, interrupt: Interrupt) -> None:
    deadline = time.monotonic() + delay
    while not interrupt.requested and time.monotonic() < deadline:
        time.sleep(0.05)


def _session(
    ctx: Context, interrupt: Interrupt, progress: Any, totals: DeliveryReport
) -> tuple[str, BaseException | None]:
    """One connection (or two) worth of shovelling; returns why it stopped, and the error."""
    args = ctx.args
    separate = args.dest_url is not None
    source = ctx.client(role="source" if separate else None)
    dest = source
    try:
        if separate:
            dest = ctx.client(url=args.dest_url, role="destination")
        shovel = Shovel(args, source, dest, interrupt, totals)
        shovel.on_consuming = lambda: ctx.waiting(f"queue {args.source!r}")
        reason = shovel.run(progress)
        return reason, shovel.error
    finally:
        for client in {id(c): c for c in (source, dest)}.values():
            close(client)
