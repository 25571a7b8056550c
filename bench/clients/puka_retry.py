"""Puka's blocking client publishing at least once: `basic_publish(..., retry=True)`.

Held against the `puka` client's pipelined confirms (issue 23: at least 0.9 of its rate). The
same workload, written the same way (every publish issued, then `wait_for_all`); each publish
is guarded by the engine's retrier and given a `message_id`. Nothing fails, so nothing is sent
again: this is what the guarantee costs when all goes well.
"""

from __future__ import annotations

import puka

from bench.common import Context


def confirm_pipelined(ctx: Context) -> None:
    """Publish every message at least once, then wait for every confirm."""
    client = puka.Client(ctx.broker.url)
    client.wait(client.connect())
    queue = ctx.queue
    ctx.start()
    promises = [
        client.basic_publish(exchange="", routing_key=queue, body=b, retry=True) for b in ctx.bodies
    ]
    ctx.published = len(client.wait_for_all(promises))
    ctx.stop()
    client.wait(client.close())


RUNNERS = {"confirm-pipelined": confirm_pipelined}
