"""connection.blocked / unblocked: a memory alarm on a private node blocks publishing."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import puka
import pytest

from tests.broker_node import PrivateBrokerNode
from tests.integration.helpers import SOON, close_quietly, drain, wait_ok

ALARM_WATERMARK = "0.0000001"
NORMAL_WATERMARK = "0.4"


@pytest.mark.hurts_broker
def test_blocked_then_unblocked_publish_not_lost(private_node: PrivateBrokerNode) -> None:
    client = puka.Client(private_node.url)
    blocked_calls: list[tuple[Any, ...]] = []
    unblocked_calls: list[tuple[Any, ...]] = []
    client.on_blocked = lambda *args: blocked_calls.append(args)
    client.on_unblocked = lambda *args: unblocked_calls.append(args)
    try:
        wait_ok(client, client.connect(), timeout=SOON * 3)
        queue = wait_ok(client, client.queue_declare(exclusive=True))["queue"]
        assert client.blocked is False
        results: dict[str, Any] = {}
        try:
            private_node.ctl("set_vm_memory_high_watermark", ALARM_WATERMARK)
            first = client.basic_publish(exchange="", routing_key=queue, body=b"first")
            deadline = time.monotonic() + 30
            while not client.blocked and time.monotonic() < deadline:
                if "first" not in results:
                    result = client.wait(first, timeout=0.2)
                    if result is not None:
                        results["first"] = result
                else:
                    client.loop(timeout=0.2)
            assert client.blocked is True, "connection.blocked never arrived"
            assert len(blocked_calls) == 1
            # the broker reads nothing more from a blocked connection: this publish waits
            second = client.basic_publish(exchange="", routing_key=queue, body=b"second")
            assert client.wait(second, timeout=2) is None
            assert client.blocked is True
        finally:
            private_node.ctl("set_vm_memory_high_watermark", NORMAL_WATERMARK)
        # the publishes were not lost: both complete once the alarm clears
        if "first" not in results:
            results["first"] = wait_ok(client, first, timeout=30)
        results["second"] = wait_ok(client, second, timeout=30)
        assert results["first"] == {}
        assert results["second"] == {}
        deadline = time.monotonic() + 30
        while client.blocked and time.monotonic() < deadline:
            client.loop(timeout=0.2)
        assert client.blocked is False
        assert len(unblocked_calls) == 1
        assert [m["body"] for m in drain(client, queue)] == [b"first", b"second"]
    finally:
        with contextlib.suppress(Exception):
            private_node.ctl("set_vm_memory_high_watermark", NORMAL_WATERMARK)
        close_quietly(client)
