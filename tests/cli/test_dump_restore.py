"""dump (non-destructive, or --drain) → purge → restore gives back identical messages."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import puka

from tests.cli.helpers import Names, Run, declare, drain, message_count

UTC = datetime.timezone.utc

HEADERS: dict[str, Any] = {
    "str": "text é",
    "int": 7,
    "big": 2**62,
    "neg": -(2**40),
    "float": 1.0,
    "frac": 0.1,
    "true": True,
    "none": None,
    "bytes": b"\x00\x01\xfe\xff",
    "decimal": Decimal("-12.345"),
    "when": datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    "list": [1, "two", 3.0, b"\x04", [Decimal("5.0")], {"six": 6}],
    "table": {"nested": {"x": b"y", "z": 1.5}},
    "looks_tagged": {"$bytes": "not really"},
}

PROPERTIES: dict[str, Any] = {
    "content_type": "application/octet-stream",
    "content_encoding": "gzip",
    "delivery_mode": 2,
    "priority": 1,
    "correlation_id": "c-1",
    "reply_to": "r",
    "expiration": "3600000",
    "message_id": "m-1",
    "timestamp": 1700000000,
    "type": "kind",
    "user_id": "guest",
    "app_id": "tests",
}


def _messages() -> list[tuple[bytes, dict[str, Any]]]:
    return [
        (b"plain text", {}),
        (bytes(range(256)), {**PROPERTIES, **HEADERS}),
        ("unicode ✓".encode(), {"content_type": "text/plain", "int": 1}),
        (b"", {"float": 2.0}),
        (b"\xff\xfe not utf-8", {"bytes": b""}),
    ]


def _publish(client: puka.Client, queue: str) -> None:
    for body, headers in _messages():
        client.wait(
            client.basic_publish(exchange="", routing_key=queue, body=body, headers=headers)
        )


def _same_type_tree(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same_type_tree(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_type_tree(x, y)
    else:
        assert a == b


def test_dump_purge_restore_gives_back_identical_messages(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue = names.queue()
    declare(admin, queue)
    _publish(admin, queue)
    dump_file = tmp_path / "dump.jsonl"

    dumped = cli("dump", queue, "-f", str(dump_file), "-F", "json")
    assert dumped.code == 0, dumped.stderr
    assert json.loads(dumped.stdout)["dumped"] == 5
    assert len(dump_file.read_text().splitlines()) == 5
    assert message_count(admin, queue) == 5  # non-destructive

    purged = cli("purge", queue, "-F", "jsonl")
    assert purged.json_lines() == [{"queue": queue, "purged": 5}]
    assert message_count(admin, queue) == 0

    restored = cli("restore", queue, "-f", str(dump_file), "-F", "jsonl")
    assert restored.code == 0, restored.stderr
    assert restored.json_lines()[0]["restored"] == 5

    back = drain(admin, queue)
    assert len(back) == 5
    for (body, headers), message in zip(_messages(), back, strict=True):
        assert message["body"] == body
        _same_type_tree(message["headers"], headers)


def test_dump_leaves_the_queue_as_it_was_in_order(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    bodies = [f"m{i}".encode() for i in range(300)]
    promises = [admin.basic_publish(exchange="", routing_key=queue, body=b) for b in bodies]
    admin.wait_for_all(promises)

    first = cli("dump", queue)  # to stdout
    assert first.code == 0, first.stderr
    assert [r["body"] for r in first.json_lines()] == [b.decode() for b in bodies]
    partial = cli("dump", queue, "-c", "10")
    assert [r["body"] for r in partial.json_lines()] == [f"m{i}" for i in range(10)]
    again = cli("dump", queue)
    assert [r["body"] for r in again.json_lines()] == [b.decode() for b in bodies]
    assert message_count(admin, queue) == 300
    assert [m["body"] for m in drain(admin, queue)] == bodies


def test_dump_drain_moves_the_messages_to_disk(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue = names.queue()
    declare(admin, queue)
    bodies = [f"d{i}".encode() for i in range(250)]
    admin.wait_for_all(
        [admin.basic_publish(exchange="", routing_key=queue, body=b) for b in bodies]
    )
    target = tmp_path / "drained.jsonl"
    run = cli("dump", queue, "--drain", "--batch", "64", "-f", str(target))
    assert run.code == 0, run.stderr
    assert run.text.startswith(f"moved 250 message(s) from '{queue}'")
    assert message_count(admin, queue) == 0
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["body"] for line in lines] == [b.decode() for b in bodies]


def test_dump_drain_with_a_count_leaves_the_rest(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue = names.queue()
    declare(admin, queue)
    admin.wait_for_all(
        [admin.basic_publish(exchange="", routing_key=queue, body=b"%d" % i) for i in range(20)]
    )
    target = tmp_path / "some.jsonl"
    assert cli("dump", queue, "--drain", "-c", "7", "-f", str(target)).code == 0
    assert len(target.read_text().splitlines()) == 7
    assert [m["body"] for m in drain(admin, queue)] == [b"%d" % i for i in range(7, 20)]


def test_dump_of_an_empty_or_missing_queue(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    empty = cli("dump", queue)
    assert (empty.code, empty.stdout) == (0, b"")
    missing = cli("dump", names.queue())
    assert missing.code == 1 and "404 NOT_FOUND" in missing.stderr


def test_restore_uses_the_recorded_destination_or_the_options(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    first, second = names.queue(), names.queue()
    declare(admin, first)
    declare(admin, second)
    lines = (
        json.dumps({"routing_key": first, "body": "to first"})
        + "\n\n"
        + json.dumps({"exchange": "", "routing_key": first, "body": "also first"})
        + "\n"
    ).encode()
    assert cli("restore", stdin=lines).code == 0
    assert [m["body"] for m in drain(admin, first)] == [b"to first", b"also first"]
    assert cli("restore", "-r", second, stdin=lines).code == 0
    assert len(drain(admin, second)) == 2


def test_restore_refuses_malformed_input_before_publishing(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue = names.queue()
    declare(admin, queue)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "ok"}\n{"body": "x", "properties": {"priority": "high"}}\n')
    run = cli("restore", queue, "-f", str(bad))
    assert run.code == 65
    assert "bad.jsonl, line 2" in run.stderr
    assert message_count(admin, queue) == 0
    assert cli("restore", queue, "-f", str(tmp_path / "nope.jsonl")).code == 66
    assert cli("restore", stdin=b'{"body": "nowhere"}\n').code == 65
