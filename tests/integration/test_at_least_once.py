"""At-least-once publishes (`retry=`) against the real broker, in every style of client.

A queue with ``x-overflow: reject-publish`` nacks what it has no room for: the broker's own
nacks drive the retries. A fault proxy cuts this test's own link to play a lost connection
(the shared broker is not hurt). A killed cluster node: ``tests/cluster``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import puka
import puka_asyncio
import pytest

from tests.faults.fault_proxy import FaultProxy
from tests.integration.helpers import Resources, close_quietly
from tests.integration.styles import Driver
from tests.integration.test_styles import (  # noqa: F401 - fixtures
    assert_usable,
    driver,
    queue,
    style,
)

REFUSING: dict[str, Any] = {"x-max-length": 1, "x-overflow": "reject-publish"}
QUICK = puka.RetryPolicy(attempts=3, initial_delay=0.01, jitter=0.0)


def _full_queue(client: Driver, resources: Resources) -> str:
    """A queue holding one message and room for no more: every publish to it is nacked."""
    name = resources.queue()
    client.call("queue_declare", queue=name, arguments=REFUSING)
    assert client.publish_many(name, [b"filler"]) == [{}]
    return name


def test_a_queue_that_keeps_refusing_ends_with_publish_failed(
    driver: Driver,  # noqa: F811 - the fixture
    resources: Resources,
    queue: str,  # noqa: F811 - the fixture
) -> None:
    full = _full_queue(driver, resources)
    pending = driver.start("basic_publish", exchange="", routing_key=full, body=b"m", retry=QUICK)
    with pytest.raises(puka.PublishFailed) as failed:
        driver.result(pending)
    assert failed.value.attempts == 3
    assert isinstance(failed.value.cause, puka.PublishNacked)
    assert failed.value.__cause__ is failed.value.cause
    assert_usable(driver, queue)  # the same client goes on


def test_a_nacked_message_is_stored_once_the_queue_has_room(
    driver: Driver,  # noqa: F811 - the fixture
    resources: Resources,
) -> None:
    full = _full_queue(driver, resources)
    patient = puka.RetryPolicy(deadline=30.0, initial_delay=0.02, max_delay=0.2)
    pending = driver.start(
        "basic_publish",
        exchange="",
        routing_key=full,
        headers={"app_header": "kept"},
        body=b"retried",
        retry=patient,
    )
    assert driver.poll(pending, 0.5) is None, "refused, and sent again: not over"
    taken = driver.call("basic_get", queue=full, no_ack=True)
    assert taken["body"] == b"filler"
    assert driver.result(pending) == {}
    message = driver.call("basic_get", queue=full, no_ack=True)
    assert message["body"] == b"retried"
    assert message["headers"]["app_header"] == "kept"
    assert message["headers"]["message_id"], "a message id was given"


RECOVERY = puka.Recovery(initial_delay=0.05, max_delay=0.5)


def _ids_in(client: puka.Client, name: str) -> list[bytes]:
    """Every body in queue `name` (taken)."""
    bodies = []
    while not (got := client.wait(client.basic_get(queue=name, no_ack=True))).get("empty"):
        bodies.append(got["body"])
    return bodies


@pytest.mark.parametrize("kind", ["blocking", "asyncio"])
def test_publishes_made_while_recovering_wait_for_the_connection(
    kind: str, amqp_url: str, fault_proxy: FaultProxy, resources: Resources
) -> None:
    """The link is cut (RST) under 200 retrying publishes, and 100 more are made at once,
    while the client recovers: none fails, and all 300 are in the queue (some twice)."""
    name = resources.queue()
    url = fault_proxy.url(amqp_url)
    bodies = [b"%d" % n for n in range(300)]
    if kind == "blocking":
        client = puka.Client(url, reconnect=RECOVERY)
        try:
            client.wait(client.connect())
            client.wait(client.queue_declare(queue=name))
            first = [client.basic_publish("", name, body=b, retry=True) for b in bodies[:200]]
            fault_proxy.rst()
            client.loop(timeout=0.2)  # the loss is seen: recovering
            assert client.engine.recovering or client.engine.recoveries
            more = [client.basic_publish("", name, body=b, retry=True) for b in bodies[200:]]
            results = client.wait_for_all(first + more)
            recoveries = client.engine.recoveries
        finally:
            close_quietly(client)
    else:

        async def run() -> tuple[list[puka.Result], int]:
            client = await puka_asyncio.connect(url, reconnect=RECOVERY)
            try:
                await client.queue_declare(queue=name)
                first = [client.basic_publish("", name, body=b, retry=True) for b in bodies[:200]]
                fault_proxy.rst()
                await asyncio.sleep(0.2)
                assert client.engine.recovering or client.engine.recoveries
                more = [client.basic_publish("", name, body=b, retry=True) for b in bodies[200:]]
                return await client.wait_for_all(first + more), client.engine.recoveries
            finally:
                await client.close()

        results, recoveries = asyncio.run(run())
    assert recoveries == 1
    assert all(not r.is_error for r in results)
    with puka.Client(amqp_url) as checker:
        checker.wait(checker.connect())
        stored = _ids_in(checker, name)
    assert set(stored) == set(bodies)
