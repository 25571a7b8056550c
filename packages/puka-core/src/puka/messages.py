"""Messages: Puka's one `headers` dict ↔ AMQP's basic properties plus application headers.

As in Puka, a message's `headers` holds both: the keys named like a basic property
(`content_type`, `delivery_mode`, `correlation_id`, …) are the properties, every other key is an
application header (the properties' `headers` table). On publish they are split; on delivery
they are merged (an application header named like a property is shadowed by the property).
"""

from __future__ import annotations

from typing import Any

from puka_spec import BasicProperties, FieldTable

__all__ = ["EMPTY_PROPERTIES", "PROPERTY_NAMES", "headers_to_properties", "properties_to_headers"]

PROPERTY_NAMES = frozenset(n for n in BasicProperties.NAMES if n not in ("headers", "reserved"))
"""The keys of a message's `headers` that are basic properties."""

EMPTY_PROPERTIES = BasicProperties().encode()
"""The encoded properties of a message without headers (what `headers_to_properties` gives for
`None` or `{}`)."""

_new = object.__new__


def headers_to_properties(headers: dict[str, Any] | None) -> bytes:
    """Encode Puka `headers` as the properties part of a content header."""
    if not headers:
        return EMPTY_PROPERTIES
    props = _new(BasicProperties)  # every property absent: BasicProperties() checks 14 of them
    table: FieldTable = {}
    for key, value in headers.items():
        if key in PROPERTY_NAMES:
            if value is not None:
                setattr(props, key, value)
        else:
            table[key] = value
    if table:
        props.headers = table
    return props.encode()


def properties_to_headers(props: BasicProperties) -> dict[str, Any]:
    """Merge decoded properties into one Puka `headers` dict (only the properties present)."""
    merged: dict[str, Any] = dict(props.headers) if props.headers else {}
    for key, value in props.__dict__.items():
        if key != "headers":
            merged[key] = value
    return merged
