"""Messages: Puka's `headers` and `properties` ↔ AMQP's basic properties plus application headers.

As in Puka, a message's `headers` can hold both: the keys named like a basic property
(`content_type`, `delivery_mode`, `correlation_id`, …) are the properties, every other key is an
application header (the properties' `headers` table). On publish they are split; on delivery
they are merged (an application header named like a property is shadowed by the property).

To keep the two apart, publish with `properties=` as well: then `properties` holds the basic
properties (only their names are allowed) and `headers` the application headers, every key of
it, even one named like a property. A delivered message shows both apart as
`Result.properties` and `Result.application_headers` (see `property_values`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from puka_spec import BasicProperties, FieldTable

from puka.arguments import PROPERTY_TYPES, check_table, field_table_items, property_value

__all__ = [
    "EMPTY_PROPERTIES",
    "PROPERTY_NAMES",
    "headers_to_properties",
    "message_id_properties",
    "properties_to_headers",
    "property_values",
]

PROPERTY_NAMES = frozenset(n for n in BasicProperties.NAMES if n not in ("headers", "reserved"))
"""The keys of a message's `headers` that are basic properties."""

EMPTY_PROPERTIES = BasicProperties().encode()
"""The encoded properties of a message without headers (what `headers_to_properties` gives for
`None` or `{}`)."""

_new = object.__new__
_CALL = "basic_publish"


class _Checked:
    """No value is of this type: a property whose value must always be checked in full."""


_WIRE_TYPES: dict[str, type] = {
    name: str if kind == "shortstr" else int if kind in ("octet", "timestamp") else _Checked
    for name, kind in PROPERTY_TYPES.items()
}
"""The type of each basic property's value as the codec takes it. A value of that exact type
goes to the codec as it is (which refuses one too long or out of range: then every value is
checked, for the message); any other (a `datetime` timestamp, a wrong type) is checked first."""


def _items(mapping: object, name: str) -> Iterable[tuple[Any, Any]]:
    return field_table_items(mapping, name, _CALL)


def headers_to_properties(
    headers: Mapping[str, Any] | None, properties: Mapping[str, Any] | None = None
) -> bytes:
    """Encode a publish's `headers` (and `properties`) as the properties of a content header.

    Without `properties` (`None`), `headers` is Puka's one dict: keys named like a basic
    property are properties, the others application headers. With `properties` (even `{}`),
    `properties` holds the basic properties and every key of `headers` is an application
    header. A property whose value is `None` is left out. Each value is checked
    (`puka.arguments.property_value`): a wrong one raises `TypeError` or `ValueError` naming
    it, before anything is sent.
    """
    if properties is None and not headers and (headers is None or type(headers) is dict):
        return EMPTY_PROPERTIES
    props = _new(BasicProperties)  # every property absent: BasicProperties() checks 14 of them
    table: FieldTable = {}
    if properties is None:
        items = headers.items() if type(headers) is dict else _items(headers, "headers")
        for key, value in items:
            if key not in PROPERTY_NAMES:
                table[key] = value
            elif value is not None:
                wire = value if type(value) is _WIRE_TYPES[key] else property_value(key, value)
                setattr(props, key, wire)
    else:
        items = properties.items() if type(properties) is dict else _items(properties, "properties")
        for key, value in items:
            if key not in PROPERTY_NAMES:
                raise ValueError(_not_a_property(key))
            if value is not None:
                wire = value if type(value) is _WIRE_TYPES[key] else property_value(key, value)
                setattr(props, key, wire)
        if headers is not None:
            table = dict(_items(headers, "headers"))
    if table:
        props.headers = table
    try:
        return props.encode()
    except (ValueError, TypeError, OverflowError, struct.error):  # EncodingError is a ValueError
        # a value too long or out of range: the check that failed, for the message
        for key, value in props.__dict__.items():
            if key != "headers":
                property_value(key, value)
        check_table(table, "headers", _CALL)
        raise


def message_id_properties(message_id: str) -> bytes:
    """The encoded properties of a message whose only property is `message_id` (ASCII, at
    most 255 bytes: the at-least-once publisher's ids)."""
    props = _new(BasicProperties)
    props.message_id = message_id
    return props.encode()


def _not_a_property(key: object) -> str:
    if key == "headers":
        return f"{_CALL}: properties: put the application headers in headers=, not properties="
    names = ", ".join(sorted(PROPERTY_NAMES))
    return f"{_CALL}: properties: {key!r} is not a basic property (they are: {names})"


def properties_to_headers(props: BasicProperties) -> dict[str, Any]:
    """Merge decoded properties into one Puka `headers` dict (only the properties present)."""
    merged: dict[str, Any] = dict(props.headers) if props.headers else {}
    for key, value in props.__dict__.items():
        if key != "headers":
            merged[key] = value
    return merged


def property_values(props: BasicProperties | None) -> dict[str, Any]:
    """The basic properties a decoded message carries, by name, without its application
    headers (nor the deprecated `reserved`, cluster-id): what `properties=` takes to publish
    them again."""
    if props is None:
        return {}
    return {key: value for key, value in props.__dict__.items() if key in PROPERTY_NAMES}
