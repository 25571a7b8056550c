"""publish → get round trips against the broker, in process and as a subprocess."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import puka

from tests.cli.helpers import Names, Run, declare, drain, message_count, publish_many

BINARY = bytes(range(256)) * 3 + b"\x00\r\n\xff"

PROPERTY_OPTIONS = [
    "-P", "content_type=application/octet-stream",
    "-P", "content_encoding=identity",
    "-P", "delivery_mode=2",
    "-P", "priority=4",
    "-P", "correlation_id=corr-1",
    "-P", "reply_to=replies",
    "-P", "expiration=600000",
    "-P", "message_id=msg-1",
    "-P", "timestamp=1700000000",
    "-P", "type=test.event",
    "-P", "user_id=guest",
    "-P", "app_id=puka-tests",
]  # fmt: skip

EXPECTED_PROPERTIES = {
    "content_type": "application/octet-stream",
    "content_encoding": "identity",
    "delivery_mode": 2,
    "priority": 4,
    "correlation_id": "corr-1",
    "reply_to": "replies",
    "expiration": "600000",
    "message_id": "msg-1",
    "timestamp": 1700000000,
    "type": "test.event",
    "user_id": "guest",
    "app_id": "puka-tests",
}


def test_binary_body_and_every_property_round_trip_in_process(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    published = cli(
        "publish", "-r", queue, "-f", "-", *PROPERTY_OPTIONS,
        "-H", "text=plain", "-H", "n:=7", "-H", 'price:={"$decimal": "9.99"}',
        "-H", 'blob:={"$bytes": "AAE="}', "-H", "ratio:=0.5",
        stdin=BINARY,
    )  # fmt: skip
    assert published.code == 0, published.stderr

    raw = cli("get", queue, "--requeue", "-F", "raw")
    assert raw.code == 0 and raw.stdout == BINARY

    got = cli("get", queue, "-F", "jsonl")
    assert got.code == 0, got.stderr
    (record,) = got.json_lines()
    assert record["body_encoding"] == "base64"
    assert base64.b64decode(record["body"]) == BINARY
    assert record["properties"] == EXPECTED_PROPERTIES
    assert record["headers"] == {
        "text": "plain",
        "n": 7,
        "price": {"$decimal": "9.99"},
        "blob": {"$bytes": "AAE="},
        "ratio": {"$float": 0.5},
    }
    assert (record["exchange"], record["routing_key"], record["queue"]) == ("", queue, queue)
    assert message_count(admin, queue) == 0  # get acknowledges by default


def test_round_trip_through_a_subprocess(
    cli_process: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    published = cli_process("publish", "-r", queue, *PROPERTY_OPTIONS, stdin=BINARY)
    assert published.code == 0, published.stderr
    got = cli_process("get", queue, "-F", "raw")
    assert got.code == 0, got.stderr
    assert got.stdout == BINARY
    assert drain(admin, queue) == []  # the get removed it


def test_the_text_format_shows_the_message(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    assert cli("publish", "-r", queue, "héllo", "-C", "text/plain", "--persistent").code == 0
    got = cli("get", queue)
    assert got.code == 0
    assert got.text.startswith(f"--- message queue='{queue}' exchange='' routing_key='{queue}'")
    assert "content_type: text/plain\ndelivery_mode: 2\n\nhéllo\n" in got.text


def test_publish_lines_and_count(cli: Callable[..., Run], names: Names, admin: puka.Client) -> None:
    queue = names.queue()
    declare(admin, queue)
    run = cli("publish", "-r", queue, "-l", "-c", "2", "-F", "json", stdin=b"a\nb\n\nc")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["published"] == 6
    assert [m["body"] for m in drain(admin, queue)] == [b"a", b"a", b"b", b"b", b"c", b"c"]


def test_publish_a_file_through_an_exchange(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue = names.queue()
    declare(admin, queue)
    admin.wait(admin.queue_bind(queue=queue, exchange="amq.topic", routing_key=f"{queue}.#"))
    body_file = tmp_path / "body.bin"
    body_file.write_bytes(BINARY)
    run = cli("publish", "-e", "amq.topic", "-r", f"{queue}.x", "-f", str(body_file))
    assert run.code == 0, run.stderr
    (message,) = drain(admin, queue)
    assert message["body"] == BINARY and message["exchange"] == "amq.topic"
    missing = cli("publish", "-r", queue, "-f", str(body_file) + ".missing")
    assert missing.code == 66


def test_unroutable_mandatory_message_is_an_error(cli: Callable[..., Run], names: Names) -> None:
    exchange = names.exchange()
    assert cli("declare", "exchange", exchange, "-t", "direct").code == 0
    run = cli("publish", "-e", exchange, "-r", "nowhere", "--mandatory", "lost?")
    assert run.code == 3  # ExitCode.UNDELIVERED, as for restore, shovel and rpc
    assert "unroutable" in run.stderr and "NO_ROUTE" in run.stderr
    assert cli("publish", "-e", exchange, "-r", "nowhere", "fine without --mandatory").code == 0


def test_publish_to_a_missing_exchange_fails(cli: Callable[..., Run], names: Names) -> None:
    run = cli("publish", "-e", names.exchange(), "-r", "x", "body")
    assert run.code == 1
    assert "404 NOT_FOUND" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_get_requeue_keeps_the_order(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"1", b"2", b"3", b"4"])
    run = cli("get", queue, "-c", "3", "--requeue", "-F", "raw", "--separator", r"\n")
    assert run.code == 0 and run.stdout == b"1\n2\n3\n"
    assert [m["body"] for m in drain(admin, queue)] == [b"1", b"2", b"3", b"4"]


def test_get_reject_drops_the_message(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"x", b"y"])
    assert cli("get", queue, "--reject", "-F", "raw").stdout == b"x"
    assert [m["body"] for m in drain(admin, queue)] == [b"y"]
