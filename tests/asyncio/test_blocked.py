"""connection.blocked / unblocked: a memory alarm on a private node holds publishes back."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import assert_no_leaks, counts, eventually, exclusive_queue, within
from tests.broker_node import PrivateBrokerNode

ALARM_WATERMARK = "0.0000001"
NORMAL_WATERMARK = "0.4"


@pytest.mark.hurts_broker
async def test_blocked_publish_waits_until_unblocked(
    private_node: PrivateBrokerNode, make_client: ClientFactory
) -> None:
    client = await make_client(private_node.url)
    blocked: list[str] = []
    unblocked: list[bool] = []
    client.engine.on_blocked = blocked.append
    client.engine.on_unblocked = lambda: unblocked.append(True)
    queue = await exclusive_queue(client)
    assert client.blocked is False

    async def is_blocked() -> bool:
        return client.blocked

    async def is_unblocked() -> bool:
        return not client.blocked

    try:
        await asyncio.to_thread(private_node.ctl, "set_vm_memory_high_watermark", ALARM_WATERMARK)
        publish = client.basic_publish("", queue, body=b"held back")
        # the broker stops reading a publishing connection once the alarm is on
        done, _ = await asyncio.wait([publish], timeout=1)
        assert not done, "the publish completed while the broker was in alarm"
        await eventually(is_blocked, what="connection.blocked")
        assert client.blocked is True
        assert len(blocked) == 1
        assert "memory" in blocked[0].lower()
        assert not publish.done()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                private_node.ctl, "set_vm_memory_high_watermark", NORMAL_WATERMARK
            )
    assert await within(publish, 30) == {}
    await eventually(is_unblocked, timeout=30, what="connection.unblocked")
    assert unblocked == [True]
    assert await counts(client, queue) == (1, 0)
    assert_no_leaks(client)
