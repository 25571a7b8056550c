"""restore never loses a message silently: where each line goes, returns, nacks, the summary."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import puka

from tests.cli.helpers import (
    Names,
    Run,
    declare,
    drain,
    message_count,
    take_as_room_is_needed,
)


def _lines(*records: dict[str, str]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def _exchange_routing_to(admin: puka.Client, names: Names, queue: str, key: str) -> str:
    """A direct exchange that routes `key` to `queue`."""
    exchange = names.exchange()
    admin.wait(admin.exchange_declare(exchange=exchange, type="direct"))
    admin.wait(admin.queue_bind(queue=queue, exchange=exchange, routing_key=key))
    return exchange


def test_restore_r_sends_every_line_to_that_queue_through_the_default_exchange(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    target, bystander = names.queue(), names.queue()
    declare(admin, target)
    declare(admin, bystander)
    # the recorded exchange would route routing key `target` to `bystander`
    exchange = _exchange_routing_to(admin, names, bystander, target)
    lines = _lines(
        {"exchange": exchange, "routing_key": "old", "body": "one"},
        {"exchange": "", "routing_key": "other", "body": "two"},
        {"body": "three"},
    )
    run = cli("restore", "-r", target, stdin=lines)
    assert run.code == 0, run.stderr
    assert run.stderr == "puka: restored 3, returned 0, failed 0\n"
    assert [m["body"] for m in drain(admin, target)] == [b"one", b"two", b"three"]
    assert message_count(admin, bystander) == 0


def test_keep_exchange_publishes_to_each_lines_exchange_with_the_key(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    target, bound = names.queue(), names.queue()
    declare(admin, target)
    declare(admin, bound)
    exchange = _exchange_routing_to(admin, names, bound, target)
    lines = _lines(
        {"exchange": exchange, "routing_key": "old", "body": "via the exchange"},
        {"routing_key": "old", "body": "no exchange recorded"},
    )
    run = cli("restore", "-r", target, "--keep-exchange", stdin=lines)
    assert run.code == 0, run.stderr
    assert [m["body"] for m in drain(admin, bound)] == [b"via the exchange"]
    assert [m["body"] for m in drain(admin, target)] == [b"no exchange recorded"]


def test_keep_exchange_needs_r_alone(cli: Callable[..., Run], names: Names) -> None:
    lines = _lines({"body": "x"})
    for argv in (
        ["--keep-exchange"],
        ["--keep-exchange", names.queue()],
        ["--keep-exchange", "-e", "amq.direct", "-r", "k"],
    ):
        run = cli("restore", *argv, stdin=lines)
        assert run.code == 64, argv
        assert "--keep-exchange goes with -r KEY" in run.stderr


def test_unroutable_lines_are_counted_reported_and_exit_3(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue, missing = names.queue(), names.queue()
    declare(admin, queue)
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(
        _lines(
            {"routing_key": queue, "body": "a"},
            {"routing_key": missing, "body": "lost?"},
            {"routing_key": queue, "body": "b"},
            {"exchange": "amq.direct", "routing_key": missing, "body": "lost too?"},
        )
    )
    run = cli("restore", "-f", str(dump), "-F", "jsonl")
    assert run.code == 3
    assert run.json_lines() == [{"restored": 2, "returned": 2, "failed": 0, "file": str(dump)}]
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("puka: restored 2, returned 2, failed 0 (first: ")
    assert f"message 2, exchange '', routing key '{missing}'" in run.stderr
    assert "312 NO_ROUTE" in run.stderr
    assert [m["body"] for m in drain(admin, queue)] == [b"a", b"b"]


def test_restore_into_a_missing_queue_is_3_not_silence(
    cli: Callable[..., Run], names: Names
) -> None:
    run = cli("restore", names.queue(), stdin=_lines({"body": "x"}, {"body": "y"}))
    assert run.code == 3
    assert run.stderr.startswith("puka: restored 0, returned 2, failed 0")


def test_nacked_lines_are_counted_as_failed(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    # a full queue with reject-publish nacks what it cannot take
    declare(admin, queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    lines = _lines(*({"body": b} for b in "abc"))
    run = cli("restore", queue, "--window", "1", "--retry-for", "0.3", stdin=lines)
    assert run.code == 3
    assert run.stderr.startswith("puka: restored 1, returned 0, failed 2 (first: ")
    assert "refused by the broker (nack), given up after failing" in run.stderr
    assert [m["body"] for m in drain(admin, queue)] == [b"a"]
    admin.wait(admin.basic_publish(exchange="", routing_key=queue, body=b"full again"))
    run = cli("restore", queue, "--retry-for", "0", stdin=_lines({"body": "d"}))
    assert run.code == 3
    assert "refused by the broker (nack)" in run.stderr
    assert "given up" not in run.stderr  # not sent again


def test_a_bad_line_on_a_pipe_reports_what_was_restored_before_it(
    cli_process: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    # a pipe cannot be checked first (a file is, and then nothing is published)
    run = cli_process("restore", queue, stdin=_lines({"body": "ok"}) + b"{not json\n")
    assert run.code == 65
    first, second = run.stderr.splitlines()
    assert first == "puka: restored 1, returned 0, failed 0"
    assert second.startswith("puka: <stdin>, line 2: not valid JSON")
    assert message_count(admin, queue) == 1


def test_a_missing_exchange_counts_every_message_as_failed(
    cli: Callable[..., Run], names: Names
) -> None:
    exchange = names.exchange()  # never declared: the broker closes the publishing channel
    run = cli("restore", "-e", exchange, "-r", "k", stdin=_lines({"body": "a"}, {"body": "b"}))
    assert run.code == 1
    first, second = run.stderr.splitlines()
    assert first == "puka: restored 0, returned 0, failed 2"
    assert second.startswith(f"puka: 404 NOT_FOUND - no exchange '{exchange}'")


def test_a_refused_line_is_sent_again_until_the_queue_takes_it(
    spawn: Callable[..., subprocess.Popen[bytes]],
    names: Names,
    admin: puka.Client,
    tmp_path: Path,
) -> None:
    """Issue 23: a nack is not the end: restore sends the message again (for up to
    --retry-for), and it is stored once the queue has room."""
    queue = names.queue()
    declare(admin, queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(_lines({"body": "first"}, {"body": "second"}))
    restore = spawn("restore", queue, "-f", str(dump), "--window", "1", "--retry-for", "20")
    taken = take_as_room_is_needed(admin, queue, 2)
    _, stderr = restore.communicate(timeout=20)
    assert restore.returncode == 0, stderr
    assert stderr.decode().endswith("restored 2, returned 0, failed 0\n")
    assert taken == [b"first", b"second"]
