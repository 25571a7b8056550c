"""`puka.arguments` and `puka.messages` without a broker: property values, properties apart
from application headers, and the received message's two views."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from puka.arguments import PROPERTY_TYPES, check_method, check_table, property_value
from puka.engine.operations import message_result
from puka.messages import PROPERTY_NAMES, headers_to_properties
from puka.results import Result
from puka_spec import BasicProperties, methods

UTC = datetime.timezone.utc


def decoded(headers: Any, properties: Any = None) -> BasicProperties:
    return BasicProperties.decode(headers_to_properties(headers, properties), 0)[0]


def test_every_basic_property_has_a_type() -> None:
    assert set(PROPERTY_TYPES) == PROPERTY_NAMES


def test_every_field_type_of_a_method_has_a_check() -> None:
    for name in dir(methods):
        method = getattr(methods, name)
        if (
            isinstance(method, type)
            and issubclass(method, methods.Method)
            and "FIELDS" in vars(method)
        ):
            defaults = method()
            check_method(defaults, name)  # the defaults are valid, and no type lacks a check


@pytest.mark.parametrize(
    ("name", "value", "wire"),
    [
        ("content_type", "application/json", "application/json"),
        ("app_id", "é" * 127, "é" * 127),  # 254 bytes
        ("delivery_mode", 2, 2),
        ("delivery_mode", 1, 1),
        ("priority", 0, 0),
        ("priority", 255, 255),
        ("expiration", "60000", "60000"),
        ("timestamp", 0, 0),
        ("timestamp", datetime.datetime(2024, 1, 1, tzinfo=UTC), 1704067200),
        ("timestamp", datetime.datetime(2024, 1, 1), 1704067200),  # naive: UTC
    ],
)
def test_property_values_accepted(name: str, value: Any, wire: Any) -> None:
    assert property_value(name, value) == wire
    assert getattr(decoded({name: value}), name) == wire


@pytest.mark.parametrize(
    ("name", "value", "error", "text"),
    [
        ("delivery_mode", "persistent", TypeError, "property delivery_mode must be an int"),
        ("delivery_mode", True, TypeError, "not bool"),
        ("delivery_mode", 256, ValueError, "from 0 to 255"),
        ("priority", "high", TypeError, "property priority must be an int, not str ('high')"),
        ("priority", -1, ValueError, "from 0 to 255, not -1"),
        ("timestamp", 1.5, TypeError, "an int (seconds since 1970) or a datetime, not float"),
        ("timestamp", -1, ValueError, "property timestamp"),
        ("timestamp", datetime.datetime(1969, 1, 1, tzinfo=UTC), ValueError, "before 1970"),
        ("expiration", 60000, TypeError, "not int (60000): write '60000'"),
        ("expiration", "soon", ValueError, "str of decimal digits"),
        ("expiration", "٣", ValueError, "str of decimal digits"),
        ("type", b"bytes", TypeError, "property type must be a str"),
        ("reply_to", "x" * 256, ValueError, "at most 255 bytes of UTF-8, not 256"),
        ("message_id", "é" * 128, ValueError, "not 256"),
        ("correlation_id", "\ud800", ValueError, "encodable as UTF-8"),
    ],
)
def test_property_values_refused(name: str, value: Any, error: type, text: str) -> None:
    with pytest.raises(error) as caught:
        headers_to_properties({name: value})
    assert text in str(caught.value)
    assert str(caught.value).startswith("basic_publish: ")
    with pytest.raises(error):
        headers_to_properties({}, {name: value})


def test_properties_keep_application_headers_apart() -> None:
    # without properties=: Puka's one dict, split by name (as before)
    legacy = decoded({"type": "t", "x-a": 1})
    assert legacy.type == "t"
    assert legacy.headers == {"x-a": 1}
    # with properties=: every key of headers is an application header
    both = decoded({"type": "app", "priority": "high"}, {"type": "prop", "priority": 3})
    assert (both.type, both.priority) == ("prop", 3)
    assert both.headers == {"type": "app", "priority": "high"}
    only_headers = decoded({"type": "app"}, {})
    assert only_headers.type is None
    assert only_headers.headers == {"type": "app"}
    assert decoded(None, {"app_id": "a"}).headers is None
    assert decoded(None, {"app_id": None}) == BasicProperties()  # None: absent


def test_properties_take_only_basic_property_names() -> None:
    with pytest.raises(ValueError, match="'x-a' is not a basic property"):
        headers_to_properties(None, {"x-a": 1})
    with pytest.raises(ValueError, match="put the application headers in headers="):
        headers_to_properties(None, {"headers": {"a": 1}})
    with pytest.raises(TypeError, match="properties must be a dict"):
        headers_to_properties(None, [("type", "t")])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="headers must be a dict"):
        headers_to_properties(0)  # type: ignore[arg-type]


def test_a_wrong_application_header_is_named() -> None:
    with pytest.raises(ValueError, match=r"headers\['x-set'\] cannot go in a field table"):
        headers_to_properties({"x-ok": 1, "x-set": {1, 2}})
    with pytest.raises(TypeError, match="headers key 5"):
        headers_to_properties({5: 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"arguments\['x'\]"):
        check_table({"x": object()}, "arguments", "queue_declare")


def test_a_message_shows_properties_and_application_headers_apart() -> None:
    props = decoded({"type": "app", "x-b": 2}, {"type": "prop", "delivery_mode": 2})
    method = methods.BasicGetOk(
        delivery_tag=1, redelivered=False, exchange="", routing_key="q", message_count=0
    )
    message = message_result("basic.get_ok", method, props, b"body")
    assert message.properties == {"type": "prop", "delivery_mode": 2}
    assert message.application_headers == {"type": "app", "x-b": 2}
    assert message["headers"] == {"type": "prop", "x-b": 2, "delivery_mode": 2}
    # copies: changing one changes nothing else
    message.application_headers["x-b"] = 3
    assert message.application_headers["x-b"] == 2
    # a result that is no message has neither
    assert Result("queue.declare_ok", {"queue": "q"}).properties == {}
    assert Result("queue.declare_ok").application_headers == {}


@pytest.mark.parametrize(
    ("option", "value", "error", "text"),
    [
        ("heartbeat", "x", TypeError, "heartbeat must be an int, not str"),
        ("heartbeat", 70000, ValueError, "heartbeat must be from 0 to 65535"),
        ("connection_timeout", "x", TypeError, "connection_timeout must be a number of seconds"),
        ("connection_timeout", 0, ValueError, "connection_timeout must be a finite number"),
        ("max_message_size", 1.5, TypeError, "max_message_size must be an int"),
        ("max_message_size", 0, ValueError, "max_message_size must be at least 1"),
        ("connection_name", 3, TypeError, "connection_name must be a str or None"),
        ("connection_name", "", ValueError, "connection_name must not be empty"),
        ("shuffle", "yes", TypeError, "shuffle must be a bool"),
    ],
)
def test_every_constructor_option_is_refused_in_the_name_of_its_call(
    option: str, value: object, error: type, text: str
) -> None:
    """Each wrong option of a client's constructor names the call it was given to, like the
    argument errors of every other call (the URL parser's own message does not)."""
    import puka
    from puka.driver import client_engine

    with pytest.raises(error, match=f"^Client: {text}"):
        puka.Client("amqp://localhost/", **{option: value})  # type: ignore[arg-type]
    options: dict[str, Any] = {
        "amqp_url": "amqp://localhost/",
        "pubacks": None,
        "client_properties": None,
        "heartbeat": None,
        "connection_timeout": None,
        "connection_name": None,
        "max_message_size": None,
        "reconnect": False,
        "shuffle": False,
        "blocked_timeout": None,
        "handshake_timeout": None,
        option: value,
    }
    with pytest.raises(error, match=f"^connect: {text}"):
        client_engine("connect", options)
