"""The CLI's library-like helpers refuse a wrong argument at the call, naming it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import puka
import pytest
from puka_cli.delivery_report import DeliveryReport
from puka_cli.messages import (
    Message,
    body_from_record,
    from_json_value,
    json_to_table,
    message_from_record,
    parse_property,
    parse_record_line,
    record_from_result,
    split_headers,
    table_to_json,
)
from puka_cli.publishing import Publisher, add_message_options, bodies, properties_and_headers

BAD_CALLS: list[tuple[Callable[[], Any], type[Exception], str]] = [
    (lambda: table_to_json([("a", 1)]), TypeError, "table must be Mapping, not list"),
    (lambda: from_json_value(1, where=2), TypeError, "where must be str, not int"),
    (lambda: json_to_table({}, where=None), TypeError, "where must be str, not NoneType"),
    (lambda: parse_property(b"priority", 1), TypeError, "name must be str, not bytes"),
    (lambda: split_headers(None), TypeError, "headers must be Mapping, not NoneType"),
    (lambda: record_from_result("body"), TypeError, "result must be Mapping, not str"),
    (lambda: body_from_record(["x"]), TypeError, "record must be Mapping, not list"),
    (lambda: message_from_record({}, where=1), TypeError, "where must be str, not int"),
    (lambda: parse_record_line(None, "x"), TypeError, "line must be str or bytes, not NoneType"),
    (lambda: Message(body="text"), TypeError, "body must be bytes, not str"),
    (lambda: Message(b"", headers=[]), TypeError, "headers must be dict, not list"),
    (lambda: Message(b"", exchange=1), TypeError, "exchange must be str or NoneType, not int"),
    (lambda: add_message_options(None), TypeError, "parser must be ArgumentParser"),
    (
        lambda: add_message_options(argparse.ArgumentParser(), lines=1),
        TypeError,
        "lines must be bool, not int",
    ),
    (lambda: properties_and_headers({}), TypeError, "args must be Namespace, not dict"),
    (lambda: bodies(["hi"]), TypeError, "args must be Namespace, not list"),
    (lambda: bodies(argparse.Namespace(), idle=1), TypeError, "idle must be callable, not int"),
    (lambda: Publisher(None), TypeError, "client must be Client, not NoneType"),
    (lambda: DeliveryReport().summary(3), TypeError, "verb must be str, not int"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS)
def test_a_wrong_argument_is_named(
    call: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


@pytest.fixture
def offline_client() -> puka.Client:
    """A client that is never connected: enough to check a Publisher's arguments."""
    return puka.Client("amqp://guest:guest@127.0.0.1:1/")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"window": "8"}, TypeError, "window must be int, not str"),
        ({"window": 0}, ValueError, "window must be at least 1, not 0"),
        ({"window": True}, TypeError, "window must be int, not bool"),
        ({"mandatory": "yes"}, TypeError, "mandatory must be bool, not str"),
        ({"keep_going": None}, TypeError, "keep_going must be bool, not NoneType"),
        ({"on_confirmed": "print"}, TypeError, "on_confirmed must be callable, not str"),
    ],
)
def test_publisher_options_are_checked(
    offline_client: puka.Client, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Publisher(offline_client, **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1, "q", None, b""), "exchange must be str, not int"),
        (("", None, None, b""), "routing_key must be str, not NoneType"),
        (("", "q", [], b""), "headers must be dict or NoneType, not list"),
        (("", "q", None, "text"), "body must be bytes, not str"),
    ],
)
def test_publish_arguments_are_checked_before_anything_is_sent(
    offline_client: puka.Client, args: tuple[Any, ...], message: str
) -> None:
    publisher = Publisher(offline_client)
    with pytest.raises(TypeError, match=message):
        publisher.publish(*args)
    assert publisher.published == 0
