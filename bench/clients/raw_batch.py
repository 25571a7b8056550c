"""The raw-socket ceiling of an acked consume whose acks are merged: one `multiple` ack per read.

As `raw.py`'s consume with acks (basic.qos 1000, basic.consume, bodies sliced out of the read
buffer with `struct`), but instead of one ack frame per message it writes, once per batch of
bytes read, one `basic.ack` with `multiple` set of the last message taken
(`rawamqp.read_deliveries(multiple=True)`): the fewest bytes and the fewest writes a consumer
that settles every message can send. Puka's consume with one `basic_ack` per message is held
against it (its engine merges consecutive acks into such a frame).
"""

from __future__ import annotations

from collections.abc import Callable

from puka_spec import encode_method_frame, methods

from bench.common import PREFETCH, Context
from bench.rawamqp import RawConnection, read_deliveries


def consume_ack(ctx: Context) -> None:
    """basic.qos 1000 + basic.consume; one `multiple` ack frame per read batch."""
    with RawConnection(ctx.broker) as conn:
        frames = encode_method_frame(1, methods.BasicQos(0, PREFETCH, False))
        frames += encode_method_frame(1, methods.BasicConsume(queue=ctx.queue))
        ctx.start()
        conn.send(frames)
        read_deliveries(conn, ctx.count, ctx.take, ack=True, multiple=True)
        ctx.stop()


RUNNERS: dict[str, Callable[[Context], None]] = {"consume-ack": consume_ack}
