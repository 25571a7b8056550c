"""At-least-once publishes (`retry=`) against the real broker, in every style of client.

A queue with ``x-overflow: reject-publish`` nacks what it has no room for: the broker's own
nacks drive the retries. (Lost connections and a killed cluster node: ``tests/cluster``.)
"""

from __future__ import annotations

from typing import Any

import puka
import pytest

from tests.integration.helpers import Resources
from tests.integration.styles import Driver
from tests.integration.test_styles import assert_usable, driver, queue  # noqa: F401 - fixtures

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
