"""The snippets of the Puka announcement (and the README), as written.

Adapted only where the brief allows: bodies are bytes, and names are unique.
"""

from __future__ import annotations

from typing import Any

import puka
import pytest

from tests.broker_node import UniqueName
from tests.integration.helpers import Resources, drain


def test_declare_1000_queues_one_by_one_then_in_parallel(
    client: Any, unique_name: UniqueName, resources: Resources
) -> None:
    prefix = unique_name("ann") + "-"
    for i in range(1000):
        resources.add_queue(prefix + "a%04i" % i)  # noqa: UP031 - as written

    # Declare 1000 queues, one by one:
    for i in range(1000):
        promise = client.queue_declare(queue=prefix + "a%04i" % i)  # noqa: UP031 - as written
        client.wait(promise)

    # Declare 1000 queues in parallel:
    promises = [client.queue_declare(queue=prefix + "a%04i" % i) for i in range(1000)]  # noqa: UP031
    for promise in promises:
        client.wait(promise)

    assert client.wait(client.queue_declare(queue=prefix + "a0999", passive=True))["queue"] == (
        prefix + "a0999"
    )


def test_asynchronous_and_synchronous_publish(client: Any, resources: Resources) -> None:
    test = resources.queue("test")
    client.wait(client.queue_declare(queue=test))

    # Asynchronous publish:
    client.basic_publish(exchange="", routing_key=test, body=b"Hello world!")

    # Synchronous publish:
    promise = client.basic_publish(exchange="", routing_key=test, body=b"Hello world!")
    client.wait(promise)

    assert [m["body"] for m in drain(client, test)] == [b"Hello world!", b"Hello world!"]


def test_errors_do_not_affect_other_parts(client: Any, resources: Resources) -> None:
    test = resources.queue("test")
    client.wait(client.queue_declare(queue=test, durable=True))

    promise = client.queue_declare(queue=test)
    with pytest.raises(puka.PreconditionFailed) as caught:
        client.wait(promise)
    assert "406" in str(caught.value)
    assert "PRECONDITION_FAILED" in str(caught.value)

    try:
        promise = client.queue_declare(queue=test)
        client.wait(promise)
    except puka.PreconditionFailed:
        # Oh, sorry. Forgot it was durable.
        promise = client.queue_declare(queue=test, durable=True)
        client.wait(promise)

    assert client.wait(client.queue_declare(queue=test, passive=True))["queue"] == test


def test_readme_snippet(amqp_url: str, resources: Resources) -> None:
    test = resources.queue("test")
    client = puka.Client(amqp_url)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=test))
    client.wait(client.basic_publish(exchange="", routing_key=test, body=b"Hello world!"))
    assert client.wait(client.basic_get(queue=test, no_ack=True))["body"] == b"Hello world!"
    client.wait(client.close())
