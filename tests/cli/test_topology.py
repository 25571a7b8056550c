"""declare, bind, unbind, delete, stat, purge and topology apply against the broker."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import puka

from tests.cli.helpers import Names, Run, drain, message_count, publish_many


def test_declare_bind_stat_unbind_delete(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    exchange, queue = names.exchange(), names.queue()
    made = cli("declare", "exchange", exchange, "-t", "topic", "-F", "jsonl")
    assert made.json_lines() == [{"exchange": exchange, "type": "topic", "declared": True}]
    declared = cli(
        "declare", "queue", queue, "--max-length", "5", "--overflow", "drop-head",
        "-a", "x-message-ttl=60000", "-F", "jsonl",
    )  # fmt: skip
    assert declared.json_lines() == [{"queue": queue, "message_count": 0, "consumer_count": 0}]
    assert cli("bind", "queue", queue, "-e", exchange, "-r", "a.*").code == 0

    for key in ("a.1", "b.1", "a.2"):
        admin.wait(admin.basic_publish(exchange=exchange, routing_key=key, body=key))
    stat = cli("stat", "queue", queue)
    assert stat.text == f"queue '{queue}': 2 message(s), 0 consumer(s)\n"

    assert cli("unbind", "queue", queue, "-e", exchange, "-r", "a.*").code == 0
    admin.wait(admin.basic_publish(exchange=exchange, routing_key="a.3", body=b"unbound"))
    assert message_count(admin, queue) == 2

    mismatch = cli("declare", "queue", queue, "--max-length", "6")
    assert mismatch.code == 1 and "406 PRECONDITION_FAILED" in mismatch.stderr

    deleted = cli("delete", "queue", queue, "-F", "jsonl")
    assert deleted.json_lines() == [{"queue": queue, "deleted": True, "message_count": 2}]
    assert cli("delete", "exchange", exchange).code == 0
    gone = cli("stat", "exchange", exchange, "-F", "jsonl")
    assert gone.code == 1
    assert gone.json_lines() == [{"exchange": exchange, "exists": False}]


def test_server_named_queue_and_passive_declare(cli: Callable[..., Run], names: Names) -> None:
    run = cli("declare", "queue", "--auto-delete", "-F", "jsonl")
    assert run.code == 0
    server_named = run.json_lines()[0]["queue"]
    # auto-delete goes only after a consumer has come and gone: delete it ourselves
    assert cli("delete", "queue", server_named).code == 0
    assert server_named.startswith("amq.gen-")
    missing = cli("declare", "queue", names.queue(), "--passive")
    assert missing.code == 1 and "404 NOT_FOUND" in missing.stderr
    assert cli("declare", "exchange", "amq.topic", "--passive", "-t", "topic").code == 0


def test_exchange_to_exchange_binding(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    source, destination, queue = names.exchange(), names.exchange(), names.queue()
    assert cli("declare", "exchange", source, "-t", "fanout").code == 0
    assert cli("declare", "exchange", destination, "-t", "fanout").code == 0
    assert cli("declare", "queue", queue).code == 0
    assert cli("bind", "exchange", destination, "-e", source).code == 0
    assert cli("bind", "queue", queue, "-e", destination).code == 0
    admin.wait(admin.basic_publish(exchange=source, routing_key="", body=b"through"))
    assert [m["body"] for m in drain(admin, queue)] == [b"through"]
    assert cli("unbind", "exchange", destination, "-e", source).code == 0


def test_stat_and_purge_several_queues(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    first, second = names.queue(), names.queue()
    for queue in (first, second):
        admin.wait(admin.queue_declare(queue=queue))
    publish_many(admin, first, [b"1", b"2"])
    stat = cli("stat", "queue", first, second, "-F", "jsonl")
    assert [(r["queue"], r["message_count"]) for r in stat.json_lines()] == [
        (first, 2),
        (second, 0),
    ]
    purge = cli("purge", first, second)
    assert purge.text.splitlines() == [
        f"purged 2 message(s) from '{first}'",
        f"purged 0 message(s) from '{second}'",
    ]


def test_topology_apply_is_idempotent_and_reports_mismatches(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    exchange, queue, other = names.exchange(), names.queue(), names.queue()
    topology: dict[str, Any] = {
        "exchanges": [{"name": exchange, "type": "topic", "durable": False, "vhost": "/"}],
        "queues": [
            {"name": queue, "arguments": {"x-max-length": 100}},
            {"name": other, "auto_delete": False},
        ],
        "bindings": [
            {"source": exchange, "destination": queue, "routing_key": "k.#"},
            {"source": exchange, "destination": other, "destination_type": "queue"},
        ],
    }
    path = tmp_path / "topology.json"
    path.write_text(json.dumps(topology))

    dry = cli("topology", "apply", str(path), "--dry-run", "-F", "jsonl")
    assert dry.code == 0, dry.stderr
    assert [r["status"] for r in dry.json_lines()] == ["missing"] * 5
    assert cli("stat", "exchange", exchange).code == 1  # the dry run created nothing

    first = cli("topology", "apply", str(path), "-F", "jsonl")
    assert first.code == 0, first.stderr
    assert [r["status"] for r in first.json_lines()] == [
        "created", "created", "created", "bound", "bound",
    ]  # fmt: skip
    second = cli("topology", "apply", str(path), "-F", "jsonl")
    assert [r["status"] for r in second.json_lines()] == ["ok", "ok", "ok", "bound", "bound"]
    admin.wait(admin.basic_publish(exchange=exchange, routing_key="k.1", body=b"routed"))
    assert message_count(admin, queue) == 1

    # the queue's settings differ now: reported for that object only, the rest still applied
    topology["queues"][0]["arguments"] = {"x-max-length": 5}
    topology["queues"].append({"name": names.queue(), "durable": False})
    path.write_text(json.dumps(topology))
    changed = cli("topology", "apply", str(path))
    assert changed.code == 1
    lines = changed.text.splitlines()
    assert lines[1].split()[:3] == ["mismatch", "queue", f"'{queue}':"]
    assert "inequivalent arg 'x-max-length'" in lines[1]
    assert lines[3].split()[0] == "created"
    assert "puka: 1 of 6 object(s) failed" in changed.stderr
    assert message_count(admin, queue) == 1  # left as it was


def test_topology_apply_bad_files(cli: Callable[..., Run], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"queues": [{"nom": "x"}]}')
    run = cli("topology", "apply", str(bad))
    assert run.code == 65 and "unknown key 'nom'" in run.stderr
    assert cli("topology", "apply", str(tmp_path / "missing.json")).code == 66
