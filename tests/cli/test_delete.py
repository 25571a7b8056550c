"""delete says when a queue or exchange was not there: exit 1, or 0 with --if-exists."""

from __future__ import annotations

from collections.abc import Callable

import puka

from tests.cli.helpers import Names, Run, declare


def _queue_exists(admin: puka.Client, queue: str) -> bool:
    try:
        admin.wait(admin.queue_declare(queue=queue, passive=True), timeout=10)
    except puka.NotFound:
        return False
    return True


def test_deleting_a_missing_queue_is_1_and_says_so(cli: Callable[..., Run], names: Names) -> None:
    missing = names.queue()
    run = cli("delete", "queue", missing)
    assert run.code == 1
    assert run.stdout == b""
    assert run.stderr == f"puka: queue '{missing}' was not there (404 NOT_FOUND)\n"


def test_deleting_a_missing_queue_with_if_exists_is_0_and_says_so(
    cli: Callable[..., Run], names: Names
) -> None:
    missing = names.queue()
    run = cli("delete", "queue", missing, "--if-exists")
    assert (run.code, run.stderr) == (0, "")
    assert run.text == f"queue '{missing}' was not there\n"
    as_json = cli("delete", "queue", missing, "--if-exists", "-F", "jsonl")
    assert as_json.json_lines() == [{"queue": missing, "deleted": False, "existed": False}]


def test_the_others_are_deleted_before_the_missing_one_fails(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    first, missing, last = names.queue(), names.queue(), names.queue()
    declare(admin, first)
    declare(admin, last)
    run = cli("delete", "queue", first, missing, last, "-F", "jsonl")
    assert run.code == 1
    assert run.json_lines() == [
        {"queue": first, "deleted": True, "message_count": 0},
        {"queue": missing, "deleted": False, "existed": False},
        {"queue": last, "deleted": True, "message_count": 0},
    ]
    assert f"'{missing}' was not there" in run.stderr
    assert not _queue_exists(admin, first) and not _queue_exists(admin, last)


def test_deleting_a_missing_exchange(cli: Callable[..., Run], names: Names) -> None:
    missing = names.exchange()
    run = cli("delete", "exchange", missing)
    assert run.code == 1
    assert run.stderr == f"puka: exchange '{missing}' was not there (404 NOT_FOUND)\n"
    quiet = cli("delete", "exchange", missing, "--if-exists")
    assert (quiet.code, quiet.text) == (0, f"exchange '{missing}' was not there\n")


def test_deleting_what_exists_is_0(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue, exchange = names.queue(), names.exchange()
    declare(admin, queue)
    admin.wait(admin.exchange_declare(exchange=exchange, type="fanout"))
    assert (
        cli("delete", "queue", queue, "--if-exists").text
        == f"deleted queue '{queue}' (0 message(s))\n"
    )
    run = cli("delete", "exchange", exchange)
    assert (run.code, run.text) == (0, f"deleted exchange '{exchange}'\n")
    assert cli("delete", "exchange", exchange).code == 1  # gone now
