"""Helpers of the integration suite (the fixtures built on them are in ``conftest.py``)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import puka

from tests.broker_node import RabbitmqCtl, UniqueName

#: How long a test waits for something that should happen "at once" on a local broker.
SOON = 10.0


def url_with_vhost(url: str, vhost: str) -> str:
    """``url`` with its virtual host replaced by ``vhost`` (percent-encoded)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def url_with_password(url: str, password: str) -> str:
    """``url`` with its password replaced."""
    parts = urlsplit(url)
    user = parts.username or "guest"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(unquote(user), safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def url_with_port(url: str, port: int) -> str:
    """``url`` pointing at another port of the same host."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")
    userinfo = netloc[0] + netloc[1]
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit(parts._replace(netloc=f"{userinfo}{host}:{port}"))


def url_with_query(url: str, query: str) -> str:
    """``url`` with its query string replaced by ``query``."""
    return urlunsplit(urlsplit(url)._replace(query=query))


def url_user(url: str) -> str:
    """The user name of ``url`` (``guest`` by default)."""
    return unquote(urlsplit(url).username or "guest")


def url_password(url: str) -> str:
    """The password of ``url`` (``guest`` by default)."""
    password = urlsplit(url).password
    return "guest" if password is None else unquote(password)


def every_basic_property(user: str) -> dict[str, Any]:
    """A value for each basic property a publisher sets, as ``basic_publish(headers=...)`` takes.

    ``user`` is the connection's user: the broker refuses a message whose ``user_id`` is not.
    """
    return {
        "content_type": "application/json",
        "content_encoding": "gzip",
        "delivery_mode": 2,
        "priority": 7,
        "correlation_id": "corr-ünï-1",
        "reply_to": "reply-queue",
        "expiration": "600000",
        "message_id": "msg-42",
        "timestamp": 1700000000,
        "type": "order.created",
        "user_id": user,
        "app_id": "puka-tests",
    }


def close_quietly(client: Any) -> None:
    """Close ``client`` if it can still be closed; never raise."""
    with contextlib.suppress(Exception):
        client.wait(client.close(), timeout=SOON)


def wait_ok(client: Any, promise: int | list[int], timeout: float = SOON) -> Any:
    """``client.wait(promise, timeout)``, failing the test (not hanging) on a timeout.

    Also fails when the result comes only as the timeout expires: on a local broker every
    operation the suite waits for completes in far less than ``timeout``, so a result handed
    over at the deadline means the wait stalled (e.g. bytes not written until it gave up).
    """
    started = time.monotonic()
    result = client.wait(promise, timeout=timeout)
    elapsed = time.monotonic() - started
    assert result is not None, f"promise {promise} gave no result within {timeout} s"
    assert elapsed < 0.9 * timeout, (
        f"promise {promise}: the result came only as the wait timed out ({elapsed:.2f} s of "
        f"{timeout} s): the wait stalled instead of doing the I/O the promise needed"
    )
    return result


def callback_result(client: Any, call: Any, timeout: float = SOON) -> Any:
    """Make ``call(callback)`` and drive ``client`` until the callback got its first result."""
    seen: list[Any] = []
    call(lambda _promise, result: seen.append(result))
    deadline = time.monotonic() + timeout
    while not seen and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    assert seen, f"the callback got no result within {timeout} s"
    return seen[0]


class BreakClock:
    """Records when ``loop_break`` was last requested, to check that loops return promptly."""

    def __init__(self) -> None:
        self.at: float | None = None

    def mark(self) -> None:
        self.at = time.monotonic()

    def assert_prompt(self, returned_at: float, grace: float = 2.0) -> None:
        assert self.at is not None, "loop_break was never called"
        late = returned_at - self.at
        assert late < grace, f"the loop returned {late:.2f} s after loop_break (not promptly)"


def drain(client: Any, queue: str, limit: int = 10_000) -> list[Any]:
    """Every message left in ``queue``, fetched with ``basic_get(no_ack=True)``."""
    messages = []
    for _ in range(limit):
        result = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
        if result.get("empty"):
            return messages
        messages.append(result)
    raise AssertionError(f"{queue} holds more than {limit} messages")


def message_count(client: Any, queue: str) -> int:
    """How many ready messages ``queue`` holds (a passive declare)."""
    return int(wait_ok(client, client.queue_declare(queue=queue, passive=True))["message_count"])


class Resources:
    """Unique queue and exchange names, all deleted at teardown."""

    def __init__(self, unique_name: UniqueName) -> None:
        self._unique_name = unique_name
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, prefix: str = "q") -> str:
        """A fresh queue name, deleted at teardown."""
        return self.add_queue(self._unique_name(prefix))

    def exchange(self, prefix: str = "x") -> str:
        """A fresh exchange name, deleted at teardown."""
        name = self._unique_name(prefix)
        self.exchanges.append(name)
        return name

    def add_queue(self, name: str) -> str:
        """Register a queue name made elsewhere for deletion."""
        self.queues.append(name)
        return name

    def cleanup(self, url: str, rabbitmqctl: RabbitmqCtl | None) -> None:
        """Delete every queue and exchange (missing ones are fine).

        From a fresh connection, so that a test that broke its own client still cleans up;
        ``rabbitmqctl delete_queue`` is the last resort for queues.
        """
        if not (self.queues or self.exchanges):
            return
        leftover = list(self.queues)
        with contextlib.suppress(Exception):
            cleaner = puka.Client(url)
            try:
                cleaner.wait(cleaner.connect(), timeout=SOON)
                deletes = [(q, cleaner.queue_delete(queue=q)) for q in self.queues]
                deletes += [(None, cleaner.exchange_delete(exchange=x)) for x in self.exchanges]
                unanswered = []
                for queue, promise in deletes:
                    try:
                        done = cleaner.wait(promise, timeout=SOON) is not None
                    except puka.AMQPError:  # already gone: fine
                        done = True
                    if not done and queue is not None:  # no answer in time: rabbitmqctl's turn
                        unanswered.append(queue)
                leftover = unanswered
            finally:
                close_quietly(cleaner)
        if leftover and rabbitmqctl is not None:
            for queue in leftover:
                with contextlib.suppress(Exception):
                    rabbitmqctl("delete_queue", queue)


def connection_pid(rabbitmqctl: RabbitmqCtl, marker: str, timeout: float = SOON) -> str:
    """The pid of the broker connection whose client properties contain ``marker`` (ASCII).

    Polls ``rabbitmqctl list_connections`` until the connection appears (or ``timeout``).
    """
    return connection_info(rabbitmqctl, marker, "pid", timeout)


def close_connection_later(
    rabbitmqctl: RabbitmqCtl, marker: str, delay: float
) -> tuple[threading.Thread, list[BaseException]]:
    """Close the broker connection mentioning ``marker`` from another thread, after ``delay``.

    Returns the thread (join it) and the list that receives what it raised, if anything.
    Only that one connection is closed: the shared broker serves other tests too.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            time.sleep(delay)
            pid = connection_pid(rabbitmqctl, marker)
            rabbitmqctl("close_connection", pid, "puka test: closed by rabbitmqctl")
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def connection_info(rabbitmqctl: RabbitmqCtl, marker: str, item: str, timeout: float = SOON) -> str:
    """One ``list_connections`` info item of the connection whose properties mention ``marker``."""
    deadline = time.monotonic() + timeout
    while True:
        out = rabbitmqctl("-q", "list_connections", item, "client_properties")
        for line in out.splitlines():
            if marker in line:
                return line.split("\t", 1)[0].strip()
        if time.monotonic() > deadline:
            raise AssertionError(f"no broker connection mentions {marker!r}:\n{out}")
        time.sleep(0.2)
