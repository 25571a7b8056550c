"""Helpers of the CLI tests (the fixtures built on them are in ``conftest.py``)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import puka

from tests.broker_node import UniqueName

ROOT = Path(__file__).resolve().parents[2]
SRC_PATHS = [str(ROOT / "packages" / p / "src") for p in ("puka-spec", "puka-core", "puka-cli")]


@dataclass
class Run:
    """What a `puka` run did."""

    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """stdout as text."""
        return self.stdout.decode("utf-8")

    def json_lines(self) -> list[Any]:
        """stdout as JSON lines."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def process_env(amqp_url: str) -> dict[str, str]:
    """The environment of a `python -m puka_cli` subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*SRC_PATHS, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["AMQP_URL"] = amqp_url
    return env


class Names:
    """Unique queue and exchange names, deleted at teardown."""

    def __init__(self, unique_name: UniqueName) -> None:
        self._unique = unique_name
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, prefix: str = "cli") -> str:
        """A fresh queue name (the queue is deleted at teardown if it exists)."""
        name = self._unique(prefix)
        self.queues.append(name)
        return name

    def exchange(self, prefix: str = "cli") -> str:
        """A fresh exchange name (deleted at teardown if it exists)."""
        name = self._unique(prefix)
        self.exchanges.append(name)
        return name

    def cleanup(self, url: str) -> None:
        """Delete everything named."""
        client = puka.Client(url)
        try:
            client.wait(client.connect(), timeout=10)
            promises = [client.queue_delete(queue=q) for q in self.queues]
            promises += [client.exchange_delete(exchange=e) for e in self.exchanges]
            for promise in promises:
                client.wait(promise, timeout=10, raise_errors=False)
            client.wait(client.close(), timeout=5)
        except Exception:
            pass


def declare(client: puka.Client, queue: str, **kwargs: Any) -> None:
    """Declare a queue (waiting for it)."""
    client.wait(client.queue_declare(queue=queue, **kwargs), timeout=10)


def publish_many(client: puka.Client, queue: str, bodies: list[bytes], **headers: Any) -> None:
    """Publish bodies to a queue, confirmed."""
    promises = [
        client.basic_publish(exchange="", routing_key=queue, body=body, headers=headers or None)
        for body in bodies
    ]
    for promise in promises:
        client.wait(promise, timeout=10)


def drain(client: puka.Client, queue: str) -> list[puka.Result]:
    """Every message of a queue, removed (basic.get with no_ack)."""
    messages: list[puka.Result] = []
    while True:
        result = client.wait(client.basic_get(queue=queue, no_ack=True), timeout=10)
        assert result is not None
        if result.get("empty"):
            return messages
        messages.append(result)


def message_count(client: puka.Client, queue: str) -> int:
    """Ready messages in a queue."""
    result = client.wait(client.queue_declare(queue=queue, passive=True), timeout=10)
    assert result is not None
    return int(result["message_count"])


def take_as_room_is_needed(
    client: puka.Client, queue: str, count: int, timeout: float = 20.0
) -> list[bytes]:
    """Take `count` messages from `queue` one at a time, as a slow consumer would (each take
    makes room in a full queue), within `timeout` seconds; the bodies taken."""
    taken: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count and time.monotonic() < deadline:
        got = client.wait(client.basic_get(queue=queue, no_ack=True))
        if got is not None and not got.get("empty"):
            taken.append(got["body"])
        time.sleep(0.05)
    return taken
