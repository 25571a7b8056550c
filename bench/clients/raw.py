"""The raw-socket ceiling: each workload as a minimal hand-written AMQP peer would do it.

Every frame it sends is encoded before `start()` (with `puka_spec`), except acks, which are one
`struct.pack` each; the timed loops only write bytes with `sendall` and parse what comes back
with `struct` (`rawamqp.read_deliveries`, `rawamqp.wait_confirms`). It shows what the broker
and the loopback allow on this machine; no client library can be expected to reach it. Where the
broker is the limit, it takes the broker's fastest route: pipelined declares are spread over
128 channels (RabbitMQ runs one channel's methods one at a time, different channels in
parallel), opened within the timed section.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

from puka_spec import BasicProperties, encode_content, encode_method_frame, methods

from bench.common import LARGE_CONSUME_PREFETCH, LARGE_PREFETCH, POLL_INTERVAL, PREFETCH, Context
from bench.rawamqp import RawConnection, batched, publish_frames, read_deliveries, wait_confirms

_FRAME = struct.Struct(">BHI")
_COUNT = struct.Struct(">I")
DECLARE_CHANNELS = 128


def _read_payload(conn: RawConnection) -> bytes:
    """The payload of the next method frame (a reply), parsed by hand."""
    while True:
        buf, pos = conn.buf, conn.pos
        if len(buf) - pos >= 8:
            kind, _channel, size = _FRAME.unpack_from(buf, pos)
            end = pos + 7 + size
            if end < len(buf):
                conn.pos = end + 1
                if kind == 1:
                    return buf[pos + 7 : end]
                continue
        data = conn.sock.recv(262144)
        if not data:
            raise ConnectionError("the broker closed the connection")
        conn.buf = buf[pos:] + data
        conn.pos = 0


def _declare_ok_count(payload: bytes) -> int:
    """message_count of a queue.declare-ok payload (class, method, shortstr queue, count)."""
    if payload[:4] != b"\x00\x32\x00\x0b":
        raise ConnectionError("expected queue.declare-ok")
    return int(_COUNT.unpack_from(payload, 5 + payload[4])[0])


def _wait_until_queued(conn: RawConnection, poll: bytes, count: int) -> None:
    while True:
        conn.send(poll)
        if _declare_ok_count(_read_payload(conn)) >= count:
            return
        time.sleep(POLL_INTERVAL)


def publish(ctx: Context) -> None:
    """Write the pre-encoded publishes, poll with a pre-encoded passive declare."""
    with RawConnection(ctx.broker) as conn:
        chunks = list(batched(publish_frames(1, ctx.queue, ctx.bodies, conn.frame_max)))
        poll = encode_method_frame(1, methods.QueueDeclare(queue=ctx.queue, passive=True))
        ctx.start()
        for chunk in chunks:
            conn.send(chunk)
        _wait_until_queued(conn, poll, ctx.count)
        ctx.stop()
        ctx.published = ctx.count


def confirm_pipelined(ctx: Context) -> None:
    """Write every publish, then read acks until the last tag is confirmed."""
    with RawConnection(ctx.broker) as conn:
        conn.rpc(1, methods.ConfirmSelect())
        chunks = list(batched(publish_frames(1, ctx.queue, ctx.bodies, conn.frame_max)))
        ctx.start()
        for chunk in chunks:
            conn.send(chunk)
        wait_confirms(conn, ctx.count)
        ctx.stop()
        ctx.published = ctx.count


def confirm_each(ctx: Context) -> None:
    """Write one publish, read its ack, repeat."""
    with RawConnection(ctx.broker) as conn:
        conn.rpc(1, methods.ConfirmSelect())
        frames = list(publish_frames(1, ctx.queue, ctx.bodies, conn.frame_max))
        latencies = ctx.latencies
        clock = time.perf_counter
        ctx.start()
        for tag, frame in enumerate(frames, 1):
            t0 = clock()
            conn.send(frame)
            wait_confirms(conn, tag)
            latencies.append(clock() - t0)
        ctx.stop()
        ctx.published = ctx.count


def _consume(ctx: Context, *, ack: bool, prefetch: int = PREFETCH) -> None:
    with RawConnection(ctx.broker) as conn:
        frames = []
        if ack:
            frames.append(encode_method_frame(1, methods.BasicQos(0, prefetch, False)))
        frames.append(encode_method_frame(1, methods.BasicConsume(queue=ctx.queue, no_ack=not ack)))
        ctx.start()
        conn.send(b"".join(frames))
        read_deliveries(conn, ctx.count, ctx.take, ack=ack)
        ctx.stop()


def consume_ack(ctx: Context) -> None:
    """basic.qos 1000 + basic.consume; one ack frame per message, written per read batch."""
    _consume(ctx, ack=True)


def consume_noack(ctx: Context) -> None:
    """basic.consume with no_ack; bodies sliced out of the read buffer."""
    _consume(ctx, ack=False)


def large_consume(ctx: Context) -> None:
    """basic.qos 1 + basic.consume of the pre-filled 4 MiB messages; each body joined from its
    frames, one ack frame per message (the broker sends the next one after it)."""
    _consume(ctx, ack=True, prefetch=LARGE_CONSUME_PREFETCH)


def rpc(ctx: Context) -> None:
    """Write a pre-encoded request (reply_to, correlation_id), read its reply, repeat."""
    with RawConnection(ctx.broker) as conn:
        conn.consume(ctx.reply_queue, no_ack=True)
        method = methods.BasicPublish(exchange="", routing_key=ctx.queue)
        requests = [
            encode_content(
                1,
                method,
                BasicProperties(reply_to=ctx.reply_queue, correlation_id=str(i)),
                body,
                conn.frame_max,
            )
            for i, body in enumerate(ctx.bodies)
        ]
        latencies = ctx.latencies
        clock = time.perf_counter
        take = ctx.take
        ctx.start()
        for request in requests:
            t0 = clock()
            conn.send(request)
            read_deliveries(conn, 1, take, ack=False)
            latencies.append(clock() - t0)
        ctx.stop()


def _declare_frames(ctx: Context) -> list[bytes]:
    return [encode_method_frame(1, methods.QueueDeclare(queue=n)) for n in ctx.declare_names]


def _declared_name(payload: bytes) -> str:
    if payload[:4] != b"\x00\x32\x00\x0b":
        raise ConnectionError("expected queue.declare-ok")
    return payload[5 : 5 + payload[4]].decode()


def declare_seq(ctx: Context) -> None:
    """One pre-encoded queue.declare, read its declare-ok, repeat."""
    with RawConnection(ctx.broker) as conn:
        frames = _declare_frames(ctx)
        clock = time.perf_counter
        ctx.start()
        for frame in frames:
            t0 = clock()
            conn.send(frame)
            ctx.declared.append(_declared_name(_read_payload(conn)))
            ctx.latencies.append(clock() - t0)
        ctx.stop()


def declare_pipelined(ctx: Context) -> None:
    """Open 128 channels and spread the queue.declares over them, all in one write, then read
    every reply (RabbitMQ runs a channel's methods one at a time, but channels in parallel)."""
    channels = min(DECLARE_CHANNELS, ctx.count)
    with RawConnection(ctx.broker) as conn:
        opens = b"".join(encode_method_frame(2 + c, methods.ChannelOpen()) for c in range(channels))
        declares = b"".join(
            encode_method_frame(2 + i % channels, methods.QueueDeclare(queue=name))
            for i, name in enumerate(ctx.declare_names)
        )
        ctx.start()
        conn.send(opens + declares)
        replies = [_read_payload(conn) for _ in range(channels + ctx.count)]
        ctx.stop()
        ctx.declared = [_declared_name(p) for p in replies if p[:4] != b"\x00\x14\x00\x0b"]


def large(ctx: Context) -> None:
    """Publish the 4 MiB messages with confirms (one pre-encoded message written N times),
    then consume them with prefetch 16, one ack each."""
    with RawConnection(ctx.broker, channels=2) as conn:
        conn.rpc(1, methods.ConfirmSelect())
        (message,) = publish_frames(1, ctx.queue, [ctx.big], conn.frame_max)
        consume = encode_method_frame(2, methods.BasicQos(0, LARGE_PREFETCH, False))
        consume += encode_method_frame(2, methods.BasicConsume(queue=ctx.queue))
        ctx.start()
        for _ in range(ctx.count):
            conn.send(message)
        wait_confirms(conn, ctx.count)
        ctx.published = ctx.count
        conn.send(consume)
        read_deliveries(conn, ctx.count, ctx.take, ack=True)
        ctx.stop()


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
