"""Parsing topology files (RabbitMQ's definitions format)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from puka_cli.errors import DataError
from puka_cli.topology_file import load_topology


def test_a_definitions_export_parses() -> None:
    topology = load_topology(
        """{"rabbit_version": "3.10.8", "users": [], "policies": [],
            "exchanges": [{"name": "ev", "vhost": "/", "type": "topic", "durable": true,
                           "auto_delete": false, "internal": false, "arguments": {}}],
            "queues": [{"name": "q", "vhost": "/", "durable": true, "auto_delete": false,
                        "arguments": {"x-queue-type": "quorum", "x-d": {"$decimal": "1.5"}}}],
            "bindings": [{"source": "ev", "vhost": "/", "destination": "q",
                          "destination_type": "queue", "routing_key": "a.*", "arguments": {}}]}""",
        "defs.json",
    )
    assert [e.name for e in topology.exchanges] == ["ev"]
    assert topology.exchanges[0].type == "topic"
    assert topology.queues[0].arguments == {"x-queue-type": "quorum", "x-d": Decimal("1.5")}
    assert topology.bindings[0].routing_key == "a.*"
    assert topology.bindings[0].label == "binding queue 'q' to exchange 'ev' key 'a.*'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "JSON object"),
        ("{nope", "not valid JSON"),
        ('{"widgets": []}', "unknown section"),
        ('{"queues": {}}', "array"),
        ('{"queues": [{"durable": true}]}', "'name' is required"),
        ('{"queues": [{"name": ""}]}', "needs a name"),
        ('{"queues": [{"name": "q", "durable": "yes"}]}', "expected a bool"),
        ('{"queues": [{"name": "q", "colour": 1}]}', "unknown key"),
        ('{"bindings": [{"source": "e", "destination": "q", "destination_type": "x"}]}', "'queue'"),
    ],
)
def test_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as caught:
        load_topology(text, "t.json")
    assert str(caught.value).startswith("t.json: ")
