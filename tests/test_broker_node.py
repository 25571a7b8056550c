"""Tests of the test infrastructure itself: broker probes, private nodes and fixtures."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import broker_node
from tests.broker_node import (
    PrivateBrokerNode,
    RabbitmqCtl,
    UniqueName,
    broker_reachable,
    port_free,
    process_alive,
)


def url_for(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/"


def closed_port() -> int:
    """A port nothing listens on: bound by the kernel's choice, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def status(node: PrivateBrokerNode) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(node.ctl("status", "--formatter", "json"))
    return result


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


# ---------------------------------------------------------------------------
# amqp_url() and broker_reachable()


def test_amqp_url_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    assert broker_node.amqp_url() == "amqp://guest:guest@127.0.0.1:5672/"
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@example.com:1234/v")
    assert broker_node.amqp_url() == "amqp://u:p@example.com:1234/v"


def test_shared_broker_is_reachable(amqp_url: str) -> None:
    assert broker_reachable(amqp_url)


def test_closed_port_is_not_reachable_and_fails_fast() -> None:
    port = closed_port()
    began = time.monotonic()
    assert not broker_reachable(url_for(port), timeout=5.0)
    assert time.monotonic() - began < 1.0


def test_silent_listener_is_not_reachable_within_timeout() -> None:
    # Listening but never accepting: the kernel completes the TCP handshake, nobody answers.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        began = time.monotonic()
        assert not broker_reachable(url_for(port), timeout=0.5)
        elapsed = time.monotonic() - began
    assert 0.4 <= elapsed < 2.0


@pytest.fixture
def fake_server() -> Iterator[Callable[[bytes], int]]:
    """``fake_server(reply)`` -> port of a one-shot server: reads the header, sends ``reply``."""
    threads: list[threading.Thread] = []
    servers: list[socket.socket] = []
    received: list[bytes] = []

    def serve(server: socket.socket, reply: bytes) -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            received.append(conn.recv(8))
            conn.sendall(reply)

    def start(reply: bytes) -> int:
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)
        thread = threading.Thread(target=serve, args=(server, reply), daemon=True)
        thread.start()
        threads.append(thread)
        port: int = server.getsockname()[1]
        return port

    yield start
    for thread in threads:
        thread.join(timeout=5)
    for server in servers:
        server.close()
    assert all(data == broker_node.PROTOCOL_HEADER for data in received)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="hangs-up"),
        pytest.param(b"AMQP\x00\x00\x09\x01", id="protocol-mismatch"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\n\r\n", id="http"),
        pytest.param(b"\x01\x00\x00", id="truncated"),
        pytest.param(b"\x01\x00\x00\x00\x00\x01\xf4\x00\x0a\x00\x0b", id="not-start"),
    ],
)
def test_wrong_answers_are_not_reachable(fake_server: Callable[[bytes], int], reply: bytes) -> None:
    began = time.monotonic()
    assert not broker_reachable(url_for(fake_server(reply)), timeout=1.0)
    assert time.monotonic() - began < 2.0


def test_connection_start_prefix_is_reachable(fake_server: Callable[[bytes], int]) -> None:
    port = fake_server(b"\x01\x00\x00\x00\x00\x01\xf4\x00\x0a\x00\x0a")
    assert broker_reachable(url_for(port), timeout=2.0)


# ---------------------------------------------------------------------------
# The session's private node


@pytest.mark.hurts_broker
def test_private_node_answers_amqp(private_node: PrivateBrokerNode, amqp_url: str) -> None:
    port = private_node.port
    assert private_node.running
    assert port != 5672
    assert private_node.url == url_for(port)
    assert private_node.url != amqp_url
    assert private_node.nodename == f"puka-test-{port}@localhost"
    assert broker_reachable(private_node.url)


@pytest.mark.hurts_broker
def test_private_node_ctl_status(private_node: PrivateBrokerNode) -> None:
    info = status(private_node)
    assert info["pid"] == private_node.pid
    assert process_alive(info["pid"])
    amqp_ports = {item["port"] for item in info["listeners"] if item["protocol"] == "amqp"}
    assert amqp_ports == {private_node.port}
    assert info["data_directory"].startswith(str(private_node.data_dir))
    assert info["alarms"] == []


@pytest.mark.hurts_broker
def test_private_node_open_files_raise_its_socket_limit() -> None:
    """The login default (1024 open files) caps a node at 832 sockets; `bench/scale.py` needs
    1000 connections."""
    with PrivateBrokerNode(open_files=4096) as node:
        status = node.ctl("status")
    found = re.search(r"Sockets: \d+, limit: (\d+)", status)
    assert found is not None and int(found.group(1)) > 1100, status


@pytest.mark.hurts_broker
def test_private_node_ctl_failure_is_clear(private_node: PrivateBrokerNode) -> None:
    with pytest.raises(RuntimeError, match=r"(?s)rabbitmqctl.*no_such_command.*exit status"):
        private_node.ctl("no_such_command")


@pytest.mark.hurts_broker
def test_private_node_memory_alarm_set_and_reset(private_node: PrivateBrokerNode) -> None:
    original = status(private_node)["vm_memory_high_watermark_setting"]
    assert set(original) == {"relative"}
    private_node.ctl("set_vm_memory_high_watermark", "0")
    try:
        assert wait_for(lambda: status(private_node)["alarms"] != [])
        assert "memory" in json.dumps(status(private_node)["alarms"])
        # A blocked broker still greets new connections.
        assert broker_reachable(private_node.url)
    finally:
        private_node.ctl("set_vm_memory_high_watermark", str(original["relative"]))
    assert wait_for(lambda: status(private_node)["alarms"] == [])
    assert status(private_node)["vm_memory_high_watermark_setting"] == original


# ---------------------------------------------------------------------------
# Private node lifecycles


@pytest.mark.hurts_broker
def test_private_node_lifecycle() -> None:
    node = PrivateBrokerNode()
    assert not node.running
    assert (node.data_dir, node.pid) == (None, None)
    assert port_free(node.port)
    assert port_free(node.dist_port)
    with node:
        data_dir = node.data_dir
        pid = node.pid
        assert data_dir is not None
        assert data_dir.is_dir()
        assert str(data_dir).startswith("/tmp/")
        assert pid is not None
        assert process_alive(pid)
        assert broker_reachable(node.url)
        assert node.start_seconds is not None
    assert not node.running
    assert not process_alive(pid)
    assert not broker_reachable(node.url, timeout=1.0)
    assert not data_dir.exists()
    assert node.stop_seconds is not None
    with pytest.raises(RuntimeError, match=re.escape(node.nodename)):
        node.ctl("status", timeout=15)
    node.stop()  # a second stop does nothing


@pytest.mark.hurts_broker
def test_stop_kills_a_node_that_does_not_answer() -> None:
    node = PrivateBrokerNode()
    node.start()
    try:
        pid = node.pid
        data_dir = node.data_dir
        assert pid is not None
        assert data_dir is not None
        os.kill(pid, signal.SIGSTOP)  # frozen: rabbitmqctl stop cannot reach it
        node.stop(timeout=3)
    finally:
        node.stop()
    assert not process_alive(pid)
    assert not data_dir.exists()
    assert not broker_reachable(node.url, timeout=1.0)


def test_taken_port_is_a_clear_error() -> None:
    port = PrivateBrokerNode().port  # a free one, with a free distribution port
    with socket.create_server(("127.0.0.1", port)):
        node = PrivateBrokerNode(port)
        with pytest.raises(RuntimeError, match=f"port {port} or {port + 20000} is in use"):
            node.start()
    assert not node.running


@pytest.mark.parametrize("port", [0, 45536, 70000])
def test_impossible_port_is_rejected(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        PrivateBrokerNode(port)


# ---------------------------------------------------------------------------
# Fixtures


def test_unique_name(unique_name: UniqueName) -> None:
    names = [unique_name() for _ in range(100)] + [unique_name("queue") for _ in range(100)]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"puka-test-t-[0-9a-f]{8}", name) for name in names[:100])
    assert all(re.fullmatch(r"puka-test-queue-[0-9a-f]{8}", name) for name in names[100:])


def test_rabbitmqctl_reaches_the_shared_broker(rabbitmqctl: RabbitmqCtl, amqp_url: str) -> None:
    info = json.loads(rabbitmqctl("status", "--formatter", "json", timeout=30))
    amqp_ports = {item["port"] for item in info["listeners"] if item["protocol"] == "amqp"}
    assert (urlsplit(amqp_url).port or 5672) in amqp_ports
