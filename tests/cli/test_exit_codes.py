"""Exit statuses and one-line errors, in process and as a subprocess."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable
from subprocess import Popen

import puka

from tests.cli.helpers import Names, Run, declare
from tests.integration.helpers import url_with_password, url_with_port


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_port_is_69(
    cli: Callable[..., Run], cli_process: Callable[..., Run], amqp_url: str
) -> None:
    url = url_with_port(amqp_url, _closed_port())
    run = cli("ping", url=url)
    assert run.code == 69
    assert run.stderr.startswith("puka: cannot connect to ") and run.stderr.count("\n") == 1
    process = cli_process("-u", url, "get", "q")
    assert process.code == 69
    assert "Traceback" not in process.stderr


def test_wrong_password_is_77_and_never_printed(
    cli: Callable[..., Run], cli_process: Callable[..., Run], amqp_url: str
) -> None:
    url = url_with_password(amqp_url, "wrong-s3cret")
    run = cli("ping", url=url)
    assert run.code == 77
    assert "ACCESS_REFUSED" in run.stderr
    process = cli_process("-u", url, "-v", "ping")
    assert process.code == 77
    assert "wrong-s3cret" not in process.stderr + process.stdout.decode()
    assert "Traceback" in process.stderr  # -v shows it


def test_get_on_an_empty_queue_is_2(
    cli: Callable[..., Run],
    cli_process: Callable[..., Run],
    names: Names,
    admin: puka.Client,
) -> None:
    queue = names.queue()
    declare(admin, queue)
    run = cli("get", queue)
    assert (run.code, run.stdout, run.stderr) == (2, b"", "")
    assert cli_process("get", queue).code == 2


def test_usage_error_is_64_as_a_subprocess(cli_process: Callable[..., Run]) -> None:
    run = cli_process("get")
    assert run.code == 64
    assert "usage: puka get" in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("puka: ")


def test_unknown_option_shows_the_commands_usage_as_a_subprocess(
    cli_process: Callable[..., Run],
) -> None:
    run = cli_process("consume", "q", "--bogus")
    assert run.code == 64
    assert run.stderr.startswith("usage: puka consume ")
    assert run.stderr.strip().splitlines()[-1] == "puka: unrecognized arguments: --bogus"


def test_missing_queue_is_1_with_one_line(cli: Callable[..., Run], names: Names) -> None:
    run = cli("get", names.queue())
    assert run.code == 1
    assert run.stderr.count("\n") == 1 and "404 NOT_FOUND" in run.stderr


def test_ping_reports_the_broker_without_the_password(
    cli: Callable[..., Run], amqp_url: str
) -> None:
    url = url_with_password(amqp_url, "guest")
    run = cli("ping", "-c", "2", "-F", "json", url=url)
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["product"] == "RabbitMQ"
    assert data["round_trip_ms"]["min"] <= data["round_trip_ms"]["max"]
    assert ":***@" in data["url"] and ":guest@" not in data["url"]
    text = cli("ping", "-c", "1", url=url)
    assert text.text.startswith("RabbitMQ ") and ":guest@" not in text.text


def test_ctrl_c_on_consume_is_130_and_requeues(
    spawn: Callable[..., Popen[bytes]], names: Names, admin: puka.Client
) -> None:
    queue = names.queue()
    declare(admin, queue)
    admin.wait(admin.basic_publish(exchange="", routing_key=queue, body=b"kept"))
    process = spawn("consume", queue, "--ack-mode", "requeue", "-F", "raw")
    assert process.stdout is not None
    assert process.stdout.read(4) == b"kept"  # it is running and holds the message
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    deadline = time.monotonic() + 5
    while True:
        result = admin.wait(admin.queue_declare(queue=queue, passive=True))
        assert result is not None
        if result["message_count"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert result["message_count"] == 1


def test_version_as_a_subprocess(cli_process: Callable[..., Run]) -> None:
    run = cli_process("--version")
    assert run.code == 0
    assert run.text.startswith("puka-cli ") and "puka-core" in run.text


def test_a_silent_broker_times_out_as_unavailable(cli: Callable[..., Run], amqp_url: str) -> None:
    with socket.socket() as listener:  # accepts the TCP connection, never speaks AMQP
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = url_with_port(amqp_url, listener.getsockname()[1])
        started = time.monotonic()
        run = cli("--connect-timeout", "0.3", "ping", url=url)
    assert run.code == 69
    assert time.monotonic() - started < 5
    assert run.stderr.startswith("puka: ") and run.stderr.count("\n") == 1


def test_something_that_is_not_a_broker_is_unavailable(
    cli: Callable[..., Run], amqp_url: str
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(8)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                time.sleep(0.5)

        thread = threading.Thread(target=answer)
        thread.start()
        run = cli("ping", url=url_with_port(amqp_url, listener.getsockname()[1]))
        thread.join()
    assert run.code == 69
    assert run.stderr.startswith("puka: cannot connect to 127.0.0.1:")
    assert run.stderr.count("\n") == 1  # puka-core's own log line is not shown without -v
