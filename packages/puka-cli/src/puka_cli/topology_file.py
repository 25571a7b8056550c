"""Topology files: the exchanges, queues and bindings `puka topology apply` declares.

The format is the part of RabbitMQ's definitions export (`rabbitmqctl export_definitions`)
that AMQP can declare, so an export can be applied as it is:

    {
      "exchanges": [{"name": "events", "type": "topic", "durable": true,
                     "auto_delete": false, "internal": false, "arguments": {}}],
      "queues": [{"name": "orders", "durable": true, "auto_delete": false,
                  "arguments": {"x-queue-type": "quorum"}}],
      "bindings": [{"source": "events", "destination": "orders",
                    "destination_type": "queue", "routing_key": "order.*", "arguments": {}}]
    }

Every key but `name` (and `source`/`destination` of a binding) is optional, with AMQP's
defaults (`type` "direct", `durable` false, `destination_type` "queue", …). `vhost` keys and
the other sections of an export (users, policies, …) are ignored. Argument values may use
the tags of the message schema (`{"$decimal": "1.5"}`, …).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from puka_cli.errors import DataError
from puka_cli.messages import json_to_table

__all__ = ["Binding", "Exchange", "Queue", "Topology", "load_topology", "parse_topology"]

# Sections of a RabbitMQ definitions export that are not AMQP objects: ignored.
_IGNORED_SECTIONS = frozenset(
    {
        "rabbit_version",
        "rabbitmq_version",
        "product_name",
        "product_version",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "parameters",
        "global_parameters",
        "policies",
    }
)


@dataclass
class Exchange:
    """An exchange to declare."""

    name: str
    type: str = "direct"
    durable: bool = False
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How reports name it."""
        return f"exchange {self.name!r}"


@dataclass
class Queue:
    """A queue to declare."""

    name: str
    durable: bool = False
    auto_delete: bool = False
    exclusive: bool = False
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How reports name it."""
        return f"queue {self.name!r}"


@dataclass
class Binding:
    """A binding to make: `destination` (a queue or exchange) to exchange `source`."""

    source: str
    destination: str
    destination_type: str = "queue"
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How reports name it."""
        return (
            f"binding {self.destination_type} {self.destination!r} to exchange "
            f"{self.source!r} key {self.routing_key!r}"
        )


@dataclass
class Topology:
    """Everything a topology file declares, in declaration order."""

    exchanges: list[Exchange] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    bindings: list[Binding] = field(default_factory=list)


_FIELDS: dict[str, dict[str, type]] = {
    "exchanges": {
        "name": str,
        "type": str,
        "durable": bool,
        "auto_delete": bool,
        "internal": bool,
        "arguments": dict,
    },
    "queues": {
        "name": str,
        "durable": bool,
        "auto_delete": bool,
        "exclusive": bool,
        "arguments": dict,
    },
    "bindings": {
        "source": str,
        "destination": str,
        "destination_type": str,
        "routing_key": str,
        "arguments": dict,
    },
}
_REQUIRED = {"exchanges": ("name",), "queues": ("name",), "bindings": ("source", "destination")}


def _fields(section: str, index: int, item: Any) -> dict[str, Any]:
    where = f"{section}[{index}]"
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object")
    known = _FIELDS[section]
    values: dict[str, Any] = {}
    for key, value in item.items():
        if key == "vhost":
            continue
        if key not in known:
            raise DataError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        expected = known[key]
        if expected is dict:
            values[key] = json_to_table(value, f"{where}.{key}") if value is not None else {}
        elif not isinstance(value, expected):
            raise DataError(f"{where}.{key}: expected a {expected.__name__}, got {value!r}")
        else:
            values[key] = value
    for key in _REQUIRED[section]:
        if key not in values:
            raise DataError(f"{where}: {key!r} is required")
    if section == "bindings" and values.get("destination_type", "queue") not in (
        "queue",
        "exchange",
    ):
        raise DataError(f"{where}.destination_type: expected 'queue' or 'exchange'")
    if section == "queues" and not values["name"]:
        raise DataError(f"{where}.name: a queue in a topology file needs a name")
    return values


def parse_topology(data: Any) -> Topology:
    """A `Topology` from parsed JSON (`DataError` says what is wrong and where)."""
    if not isinstance(data, dict):
        raise DataError("a topology file holds a JSON object")
    topology = Topology()
    for key, items in data.items():
        if key in _IGNORED_SECTIONS:
            continue
        if key not in _FIELDS:
            raise DataError(f"unknown section {key!r} (expected exchanges, queues and bindings)")
        if not isinstance(items, list):
            raise DataError(f"{key}: expected a JSON array")
        for index, item in enumerate(items):
            values = _fields(key, index, item)
            if key == "exchanges":
                topology.exchanges.append(Exchange(**values))
            elif key == "queues":
                topology.queues.append(Queue(**values))
            else:
                topology.bindings.append(Binding(**values))
    return topology


def load_topology(text: str | bytes, name: str) -> Topology:
    """Parse a topology file's contents (`name` is used in error messages)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: not valid JSON: {exc}") from None
    try:
        return parse_topology(data)
    except DataError as exc:
        raise DataError(f"{name}: {exc}") from None
