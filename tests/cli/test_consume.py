"""consume (limits, ack modes, --exec), tap and rpc against the broker."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import puka

from tests.cli.helpers import Names, Run, declare, drain, message_count, publish_many


def test_consume_a_count_acknowledges_only_those(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"%d" % i for i in range(10)])
    run = cli("consume", queue, "-c", "4", "--prefetch", "100", "-F", "jsonl")
    assert run.code == 0, run.stderr
    assert [r["body"] for r in run.json_lines()] == ["0", "1", "2", "3"]
    # the messages prefetched beyond the count went back, in order
    assert [m["body"] for m in drain(admin, queue)] == [b"%d" % i for i in range(4, 10)]


def test_consume_until_empty_from_several_queues(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    first, second = names.queue(), names.queue()
    declare(admin, first)
    declare(admin, second)
    publish_many(admin, first, [b"a1", b"a2"])
    publish_many(admin, second, [b"b1"])
    run = cli("consume", first, second, "--until-empty", "-F", "raw", "--separator", r"\n")
    assert run.code == 0, run.stderr
    assert sorted(run.stdout.split()) == [b"a1", b"a2", b"b1"]
    assert message_count(admin, first) == message_count(admin, second) == 0


def test_consume_idle_timeout_with_no_messages(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    started = time.monotonic()
    run = cli("consume", queue, "--idle-timeout", "0.3")
    assert run.code == 0 and run.stdout == b""
    assert time.monotonic() - started < 5


def test_consume_requeue_mode_leaves_the_queue_alone(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"x", b"y", b"z"])
    run = cli("consume", queue, "--ack-mode", "requeue", "--until-empty", "-F", "jsonl")
    assert [r["body"] for r in run.json_lines()] == ["x", "y", "z"]
    assert [m["body"] for m in drain(admin, queue)] == [b"x", b"y", b"z"]


def test_consume_reject_and_auto_modes(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"1", b"2", b"3"])
    assert cli("consume", queue, "-c", "1", "--ack-mode", "reject").code == 0
    assert cli("consume", queue, "-c", "1", "--no-ack", "-F", "raw").stdout == b"2"
    assert [m["body"] for m in drain(admin, queue)] == [b"3"]


def test_consume_exec_acks_when_the_command_succeeds(
    cli: Callable[..., Run], names: Names, admin: puka.Client, tmp_path: Path
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"one", b"two"], message_id="m")
    out = tmp_path / "seen.txt"
    command = f'cat >> {out}; echo " $AMQP_ROUTING_KEY $AMQP_MESSAGE_ID" >> {out}'
    run = cli("consume", queue, "--until-empty", "--exec", command)
    assert run.code == 0, run.stderr
    assert out.read_text() == f"one {queue} m\ntwo {queue} m\n"
    assert message_count(admin, queue) == 0


def test_consume_exec_leaves_the_message_when_the_command_fails(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"ok", b"bad", b"after"])
    command = f"{sys.executable} -c \"import sys; sys.exit(sys.stdin.read() == 'bad')\""
    run = cli("consume", queue, "--until-empty", "--exec", command)
    assert run.code == 1
    assert "command exited with status 1: message requeued" in run.stderr
    remaining = drain(admin, queue)
    assert [m["body"] for m in remaining] == [b"bad", b"after"]
    assert remaining[0]["redelivered"]


def test_consume_exec_on_failure_reject_goes_on(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    publish_many(admin, queue, [b"a", b"b"])
    run = cli("consume", queue, "--until-empty", "--exec", "false", "--on-failure", "reject")
    assert run.code == 0
    assert run.stderr.count("message rejected") == 2
    assert message_count(admin, queue) == 0


def test_consume_a_missing_queue(cli: Callable[..., Run], names: Names) -> None:
    run = cli("consume", names.queue(), "--until-empty")
    assert run.code == 1 and "404 NOT_FOUND" in run.stderr


def _publish_later(url: str, exchange: str, keys: list[str], delay: float) -> threading.Thread:
    def publish() -> None:
        time.sleep(delay)
        client = puka.Client(url)
        client.wait(client.connect())
        for key in keys:
            client.wait(client.basic_publish(exchange=exchange, routing_key=key, body=key))
        client.wait(client.close())

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


def test_tap_sees_what_is_published_to_an_exchange(
    cli: Callable[..., Run], names: Names, amqp_url: str
) -> None:
    exchange = names.exchange()
    assert cli("declare", "exchange", exchange, "-t", "topic").code == 0
    thread = _publish_later(amqp_url, exchange, ["a.1", "b.1", "a.2"], 0.5)
    run = cli("tap", f"{exchange}:a.*", "-c", "2", "--idle-timeout", "10", "-F", "jsonl")
    thread.join()
    assert run.code == 0, run.stderr
    assert [(r["exchange"], r["routing_key"]) for r in run.json_lines()] == [
        (exchange, "a.1"),
        (exchange, "a.2"),
    ]


def test_rpc_call_and_serve(
    cli: Callable[..., Run], spawn: Callable[..., object], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    server = spawn("rpc", "serve", queue, "-c", "2", "--exec", "tr a-z A-Z")
    reply = cli("rpc", "-r", queue, "hello", "-F", "jsonl", "-H", "h=1")
    assert reply.code == 0, reply.stderr
    (record,) = reply.json_lines()
    assert record["body"] == "HELLO"
    assert "correlation_id" in record["properties"]
    raw = cli("rpc", "call", "-r", queue, "-F", "raw", "-P", "correlation_id=mine", "again")
    assert raw.stdout == b"AGAIN"
    assert server.wait(timeout=10) == 0  # type: ignore[attr-defined]


def test_rpc_without_a_server_times_out(
    cli: Callable[..., Run], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    run = cli("rpc", "-r", queue, "anyone?", "--timeout", "0.3")
    assert run.code == 75
    assert "no reply within 0.3 s" in run.stderr


def test_rpc_to_a_misspelled_queue_fails_at_once(cli: Callable[..., Run], names: Names) -> None:
    started = time.monotonic()
    run = cli("rpc", "-r", names.queue(), "anyone?", "--timeout", "20")
    assert time.monotonic() - started < 5  # not the 20 s timeout
    assert run.code == 3
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("puka: the request is unroutable: no queue takes exchange ''")
    assert "312 NO_ROUTE" in run.stderr


def test_rpc_through_an_exchange_nothing_is_bound_to_fails_at_once(
    cli: Callable[..., Run],
) -> None:
    started = time.monotonic()
    run = cli("rpc", "-e", "amq.direct", "-r", "no-such-service", "x", "--timeout", "20")
    assert time.monotonic() - started < 5
    assert run.code == 3
    assert "exchange 'amq.direct', routing key 'no-such-service'" in run.stderr


def test_rpc_serve_echoes_in_process(
    cli: Callable[..., Run], names: Names, admin: puka.Client, amqp_url: str
) -> None:
    queue = names.queue()
    declare(admin, queue)
    replies = admin.basic_consume(queue="amq.rabbitmq.reply-to", no_ack=True)
    admin.wait(
        admin.basic_publish(
            exchange="",
            routing_key=queue,
            body=b"ping",
            headers={"reply_to": "amq.rabbitmq.reply-to", "correlation_id": "42"},
            channel_of=replies,
        )
    )
    assert cli("rpc", "serve", queue, "-c", "1").code == 0
    reply = admin.wait(replies, timeout=10)
    assert reply is not None and reply["body"] == b"ping"
    assert reply["headers"]["correlation_id"] == "42"
    admin.wait(admin.basic_cancel(replies))
