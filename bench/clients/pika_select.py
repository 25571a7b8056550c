"""pika's `SelectConnection`: the callback style, pika's fastest (and only pipelining) one.

Each workload is a small chain of callbacks on one channel, run by the connection's ioloop.
Publishes are issued in batches of 1000 with `ioloop.call_later(0, ...)` between batches, so
the ioloop writes as the loop goes instead of buffering everything; confirms come to the
`confirm_delivery(ack_nack_callback=...)` callback (single or `multiple`). Synchronous methods
take completion callbacks; pika sends a channel's synchronous methods one at a time (it queues
the rest), so "pipelined" declares are pipelined in the program, not on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pika.spec
from pika.channel import Channel

from bench.common import LARGE_CONSUME_PREFETCH, LARGE_PREFETCH, POLL_INTERVAL, PREFETCH, Context

BATCH = 1000


class Session:
    """One SelectConnection with one channel; `ready(channel)` starts the workload."""

    def __init__(self, ctx: Context, ready: Callable[[Channel], None]) -> None:
        self.ready = ready
        self.error: object = None
        self.finished = False
        self.channel: Channel | None = None
        self.connection = pika.SelectConnection(
            pika.URLParameters(ctx.broker.url),
            on_open_callback=self._opened,
            on_open_error_callback=self._failed,
            on_close_callback=self._closed,
        )
        self.ioloop = self.connection.ioloop

    def _opened(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._channel_opened)

    def _channel_opened(self, channel: Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._channel_closed)
        self.ready(channel)

    def _failed(self, connection: Any, error: object) -> None:
        self.error = error
        self.ioloop.stop()

    def _closed(self, connection: Any, reason: object) -> None:
        if not self.finished:
            self.error = reason
        self.ioloop.stop()

    def _channel_closed(self, channel: Channel, reason: object) -> None:
        if not self.finished:
            self.error = reason
            self.connection.close()

    def fail(self, error: str) -> None:
        """Stop with an error."""
        self.error = error
        self.connection.close()

    def finish(self) -> None:
        """The workload is done: close the connection, which ends `run`."""
        self.finished = True
        self.connection.close()

    def run(self) -> None:
        """Run the ioloop until the workload finishes; raise if it failed."""
        self.ioloop.start()
        if self.error is not None or not self.finished:
            raise RuntimeError(f"pika: {self.error or 'stopped early'}")


class Confirms:
    """Publisher confirms (single or multiple) counted up to the last tag."""

    def __init__(self, session: Session, done: Callable[[], None], last: int) -> None:
        self.session = session
        self.done = done
        self.last = last
        self.upto = 0
        self.singles: set[int] = set()

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        if not isinstance(method, pika.spec.Basic.Ack):
            self.session.fail("the broker nacked a publish")
            return
        tag = method.delivery_tag
        if method.multiple:
            self.upto = max(self.upto, tag)
            self.singles = {t for t in self.singles if t > self.upto}
        elif tag > self.upto:
            self.singles.add(tag)
        while self.upto + 1 in self.singles:
            self.upto += 1
            self.singles.discard(self.upto)
        if self.upto >= self.last:
            self.done()


def _publish_batches(
    session: Session, channel: Channel, queue: str, bodies: list[bytes], then: Callable[[], None]
) -> None:
    """basic_publish in batches, letting the ioloop write between them."""
    position = 0

    def batch() -> None:
        nonlocal position
        end = min(position + BATCH, len(bodies))
        publish = channel.basic_publish
        for body in bodies[position:end]:
            publish("", queue, body)
        position = end
        if position < len(bodies):
            session.ioloop.call_later(0, batch)
        else:
            then()

    batch()


def publish(ctx: Context) -> None:
    """Publish in batches; then poll a passive queue_declare until all are queued."""
    session: Session

    def ready(channel: Channel) -> None:
        def poll() -> None:
            channel.queue_declare(ctx.queue, passive=True, callback=counted)

        def counted(frame: Any) -> None:
            if frame.method.message_count >= ctx.count:
                ctx.stop()
                ctx.published = ctx.count
                session.finish()
            else:
                session.ioloop.call_later(POLL_INTERVAL, poll)

        ctx.start()
        _publish_batches(session, channel, ctx.queue, ctx.bodies, poll)

    session = Session(ctx, ready)
    session.run()


def confirm_pipelined(ctx: Context) -> None:
    """confirm_delivery with an ack callback; publish everything in batches."""
    session: Session

    def ready(channel: Channel) -> None:
        def done() -> None:
            ctx.stop()
            ctx.published = ctx.count
            session.finish()

        confirms = Confirms(session, done, ctx.count)

        def selected(frame: Any) -> None:
            ctx.start()
            _publish_batches(session, channel, ctx.queue, ctx.bodies, lambda: None)

        channel.confirm_delivery(ack_nack_callback=confirms.on_confirm, callback=selected)

    session = Session(ctx, ready)
    session.run()


def confirm_each(ctx: Context) -> None:
    """Publish the next message from the previous one's confirm callback."""
    session: Session
    clock = time.perf_counter
    sent_at = 0.0

    def ready(channel: Channel) -> None:
        def send() -> None:
            nonlocal sent_at
            sent_at = clock()
            channel.basic_publish("", ctx.queue, ctx.bodies[ctx.published])

        def on_confirm(frame: Any) -> None:
            if not isinstance(frame.method, pika.spec.Basic.Ack):
                session.fail("the broker nacked a publish")
                return
            ctx.latencies.append(clock() - sent_at)
            ctx.published += 1
            if ctx.published < ctx.count:
                send()
            else:
                ctx.stop()
                session.finish()

        def selected(frame: Any) -> None:
            ctx.start()
            send()

        channel.confirm_delivery(ack_nack_callback=on_confirm, callback=selected)

    session = Session(ctx, ready)
    session.run()


def _consume(ctx: Context, *, auto_ack: bool, prefetch: int = PREFETCH) -> None:
    session: Session
    take, count = ctx.take, ctx.count

    def on_message(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        take(body)
        if not auto_ack:
            channel.basic_ack(method.delivery_tag)
        if ctx.received == count:
            ctx.stop()
            session.finish()

    def ready(channel: Channel) -> None:
        ctx.start()
        if auto_ack:
            channel.basic_consume(ctx.queue, on_message, auto_ack=True)
        else:
            channel.basic_qos(
                prefetch_count=prefetch,
                callback=lambda _frame: channel.basic_consume(ctx.queue, on_message),
            )

    session = Session(ctx, ready)
    session.run()


def consume_ack(ctx: Context) -> None:
    """basic_qos(1000), basic_consume; the callback acks."""
    _consume(ctx, auto_ack=False)


def consume_noack(ctx: Context) -> None:
    """basic_consume(auto_ack=True)."""
    _consume(ctx, auto_ack=True)


def large_consume(ctx: Context) -> None:
    """basic_qos(1), basic_consume of the 4 MiB messages; the callback acks."""
    _consume(ctx, auto_ack=False, prefetch=LARGE_CONSUME_PREFETCH)


def rpc(ctx: Context) -> None:
    """Auto-ack consume of the reply queue; each reply's callback sends the next request."""
    session: Session
    clock = time.perf_counter
    sent_at = 0.0
    sent = 0

    def ready(channel: Channel) -> None:
        def send() -> None:
            nonlocal sent_at, sent
            sent_at = clock()
            properties = pika.BasicProperties(reply_to=ctx.reply_queue, correlation_id=str(sent))
            channel.basic_publish("", ctx.queue, ctx.bodies[sent], properties)
            sent += 1

        def on_reply(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            ctx.take(body)
            ctx.latencies.append(clock() - sent_at)
            if sent < ctx.count:
                send()
            else:
                ctx.stop()
                session.finish()

        def consuming(frame: Any) -> None:
            ctx.start()
            send()

        channel.basic_consume(ctx.reply_queue, on_reply, auto_ack=True, callback=consuming)

    session = Session(ctx, ready)
    session.run()


def declare_seq(ctx: Context) -> None:
    """queue_declare the next queue from the previous one's callback."""
    session: Session
    clock = time.perf_counter
    sent_at = 0.0

    def ready(channel: Channel) -> None:
        def send() -> None:
            nonlocal sent_at
            sent_at = clock()
            channel.queue_declare(ctx.declare_names[len(ctx.declared)], callback=declared)

        def declared(frame: Any) -> None:
            ctx.latencies.append(clock() - sent_at)
            ctx.declared.append(frame.method.queue)
            if len(ctx.declared) < ctx.count:
                send()
            else:
                ctx.stop()
                session.finish()

        ctx.start()
        send()

    session = Session(ctx, ready)
    session.run()


def declare_pipelined(ctx: Context) -> None:
    """queue_declare every queue at once, each with a callback."""
    session: Session

    def ready(channel: Channel) -> None:
        def declared(frame: Any) -> None:
            ctx.declared.append(frame.method.queue)
            if len(ctx.declared) == ctx.count:
                ctx.stop()
                session.finish()

        ctx.start()
        for name in ctx.declare_names:
            channel.queue_declare(name, callback=declared)

    session = Session(ctx, ready)
    session.run()


def large(ctx: Context) -> None:
    """Publish the 4 MiB messages with confirms, all at once; once all are confirmed, consume
    them (prefetch 16, ack each)."""
    session: Session
    take, count = ctx.take, ctx.count

    def ready(channel: Channel) -> None:
        def on_message(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
            take(body)
            ch.basic_ack(method.delivery_tag)
            if ctx.received == count:
                ctx.stop()
                session.finish()

        def confirmed() -> None:
            ctx.published = count
            channel.basic_qos(
                prefetch_count=LARGE_PREFETCH,
                callback=lambda _frame: channel.basic_consume(ctx.queue, on_message),
            )

        confirms = Confirms(session, confirmed, count)

        def selected(frame: Any) -> None:
            ctx.start()
            for _ in range(count):
                channel.basic_publish("", ctx.queue, ctx.big)

        channel.confirm_delivery(ack_nack_callback=confirms.on_confirm, callback=selected)

    session = Session(ctx, ready)
    session.run()


RUNNERS: dict[str, Callable[[Context], None]] = {
    "publish": publish,
    "confirm-pipelined": confirm_pipelined,
    "confirm-each": confirm_each,
    "consume-ack": consume_ack,
    "consume-noack": consume_noack,
    "rpc": rpc,
    "declare-seq": declare_seq,
    "declare-pipelined": declare_pipelined,
    "large": large,
    "large-consume": large_consume,
}
