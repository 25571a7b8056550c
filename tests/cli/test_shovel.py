"""shovel: moves everything, never loses a message (connection killed, Ctrl-C)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from subprocess import Popen

import puka

from tests.broker_node import RabbitmqCtl
from tests.cli.helpers import (
    Names,
    Run,
    declare,
    drain,
    message_count,
    publish_many,
    take_as_room_is_needed,
)


def _fill(client: puka.Client, queue: str, count: int) -> list[bytes]:
    bodies = [b"%d" % i for i in range(count)]
    for start in range(0, count, 1000):
        publish_many(client, queue, bodies[start : start + 1000])
    return bodies


def _kill_connection(
    rabbitmqctl: RabbitmqCtl, name: str, admin: puka.Client, dest: str, timeout: float = 20.0
) -> None:
    """Close (from the broker) every connection named `name` once it has moved a message."""
    deadline = time.monotonic() + timeout
    while message_count(admin, dest) == 0:  # rabbitmqctl is slow: list once it surely runs
        assert time.monotonic() < deadline, "the shovel never started"
        time.sleep(0.02)
    marker = f'{{"connection_name","{name}"}}'
    while True:
        listing = rabbitmqctl("list_connections", "-q", "pid", "client_properties")
        pids = [line.split("\t")[0] for line in listing.splitlines() if marker in line]
        if pids:
            break
        assert time.monotonic() < deadline, f"no connection named {name!r}"
        time.sleep(0.1)
    for pid in pids:
        rabbitmqctl("close_connection", pid, "closed by the puka CLI tests")


def test_shovel_queue_to_queue_in_order(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest)
    bodies = _fill(admin, source, 500)
    run = cli("shovel", source, dest, "--until-empty", "-F", "jsonl")
    assert run.code == 0, run.stderr
    assert run.json_lines() == [
        {"moved": 500, "returned": 0, "failed": 0, "source": source, "stopped": "empty"}
    ]
    assert run.stderr == "puka: moved 500, returned 0, failed 0\n"
    assert message_count(admin, source) == 0
    assert [m["body"] for m in drain(admin, dest)] == bodies


def test_shovel_to_an_exchange_over_a_second_connection(
    cli: Callable[..., Run], names: Names, admin: puka.Client, amqp_url: str
) -> None:
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest)
    admin.wait(admin.queue_bind(queue=dest, exchange="amq.direct", routing_key=dest))
    publish_many(admin, source, [b"a", b"b", b"c"], message_id="kept")
    run = cli("shovel", source, "-e", "amq.direct", "-r", dest, "-c", "2", "--dest-url", amqp_url)
    assert run.code == 0, run.stderr
    moved = drain(admin, dest)
    assert [m["body"] for m in moved] == [b"a", b"b"]
    assert moved[0]["headers"]["message_id"] == "kept"
    assert [m["body"] for m in drain(admin, source)] == [b"c"]


def test_unroutable_destination_keeps_the_message(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    source = names.queue()
    declare(admin, source)
    publish_many(admin, source, [b"stay"])
    run = cli("shovel", source, "-e", "amq.direct", "-r", "nobody-listens", "--until-empty")
    assert run.code == 3
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("puka: moved 0, returned 1, failed 0 (first: returned as ")
    assert "NO_ROUTE, exchange 'amq.direct', routing key 'nobody-listens'" in run.stderr
    assert [m["body"] for m in drain(admin, source)] == [b"stay"]


def test_a_return_stops_the_shovel_and_the_rest_stays_on_the_source(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    source, dest = names.queue(), names.queue()
    exchange = names.exchange()
    declare(admin, source)
    declare(admin, dest)
    admin.wait(admin.exchange_declare(exchange=exchange, type="direct"))
    admin.wait(admin.queue_bind(queue=dest, exchange=exchange, routing_key="ok"))
    publish_many(admin, source, [b"1", b"2", b"3"])
    # -r unset and no DEST_QUEUE: each message keeps its own routing key (the source name),
    # which the exchange does not route: the first message comes back
    run = cli("shovel", source, "-e", exchange, "--until-empty", "-F", "jsonl")
    assert run.code == 3, run.stderr
    (result,) = run.json_lines()
    assert result["moved"] == 0 and result["returned"] >= 1 and result["failed"] == 0
    assert result["stopped"] == "undelivered"
    assert [m["body"] for m in drain(admin, source)] == [b"1", b"2", b"3"]
    assert message_count(admin, dest) == 0


def test_killed_shovel_restarted_loses_nothing(
    cli: Callable[..., Run],
    spawn: Callable[..., Popen[bytes]],
    names: Names,
    admin: puka.Client,
    rabbitmqctl: RabbitmqCtl,
    unique_name: Callable[[str], str],
) -> None:
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest)
    bodies = _fill(admin, source, 3000)
    name = unique_name("shovel-conn")
    process = spawn(
        "shovel", source, dest, "--until-empty", "--rate", "500", "--connection-name", name
    )
    _kill_connection(rabbitmqctl, name, admin, dest)
    assert process.wait(timeout=20) == 75
    assert process.stderr is not None
    assert "CONNECTION_FORCED" in process.stderr.read().decode()
    assert 0 < message_count(admin, dest) < 3000  # it was killed mid-run

    rerun = cli("shovel", source, dest, "--until-empty")
    assert rerun.code == 0, rerun.stderr
    assert message_count(admin, source) == 0
    received = [m["body"] for m in drain(admin, dest)]
    assert set(received) == set(bodies)  # none lost (a few may come twice: at-least-once)
    assert len(received) - len(bodies) <= 100  # at most the prefetch window


def test_shovel_reconnects_by_itself(
    spawn: Callable[..., Popen[bytes]],
    names: Names,
    admin: puka.Client,
    rabbitmqctl: RabbitmqCtl,
    unique_name: Callable[[str], str],
) -> None:
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest)
    bodies = _fill(admin, source, 3000)
    name = unique_name("shovel-conn")
    process = spawn(
        "shovel", source, dest, "--until-empty", "--rate", "500", "--reconnect",
        "--connection-name", name,
    )  # fmt: skip
    _kill_connection(rabbitmqctl, name, admin, dest)  # about 2 s into a 6 s run
    assert process.wait(timeout=30) == 0
    assert process.stderr is not None
    assert "reconnecting" in process.stderr.read().decode()
    assert message_count(admin, source) == 0
    assert {m["body"] for m in drain(admin, dest)} == set(bodies)


def test_ctrl_c_settles_what_is_in_flight(
    spawn: Callable[..., Popen[bytes]], names: Names, admin: puka.Client
) -> None:
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest)
    bodies = _fill(admin, source, 2000)
    process = spawn("shovel", source, dest, "--rate", "500", "--prefetch", "50")
    deadline = time.monotonic() + 10
    while message_count(admin, dest) < 50:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 130
    moved = drain(admin, dest)
    left = drain(admin, source)
    # every message is in exactly one of the queues: in-flight ones were confirmed and acked,
    # the ones not yet published went back to the source
    assert sorted(m["body"] for m in moved + left) == sorted(bodies)
    assert [m["body"] for m in left] == sorted((m["body"] for m in left), key=int)


def test_a_missing_destination_exchange_counts_the_message_as_failed(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    source = names.queue()
    declare(admin, source)
    publish_many(admin, source, [b"stay"])
    missing = names.exchange()
    run = cli("shovel", source, "-e", missing, "-r", "k", "--until-empty")
    assert run.code == 1
    first, second = run.stderr.splitlines()
    assert first == "puka: moved 0, returned 0, failed 1"
    assert second.startswith(f"puka: 404 NOT_FOUND - no exchange '{missing}'")
    assert [m["body"] for m in drain(admin, source)] == [b"stay"]


def test_a_refused_message_is_sent_again_until_the_destination_takes_it(
    spawn: Callable[..., Popen[bytes]], names: Names, admin: puka.Client
) -> None:
    """Issue 23: a nack from the destination is not the end of the shovel: the message is sent
    again (for up to --retry-for) and moved once the destination has room; nothing stays on
    the source."""
    source, dest = names.queue(), names.queue()
    declare(admin, source)
    declare(admin, dest, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    publish_many(admin, dest, [b"filler"])
    _fill(admin, source, 3)
    shovel = spawn("shovel", source, dest, "--until-empty", "--prefetch", "1", "--retry-for", "20")
    taken = take_as_room_is_needed(admin, dest, 4)
    _, stderr = shovel.communicate(timeout=20)
    assert shovel.returncode == 0, stderr
    assert stderr.decode().endswith("moved 3, returned 0, failed 0\n")
    assert taken == [b"filler", b"0", b"1", b"2"]
    assert message_count(admin, source) == 0
