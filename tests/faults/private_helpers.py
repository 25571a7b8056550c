"""Helpers of the private-node fault tests (``test_private_*.py``).

* :data:`DRIVERS` -- every row runs once with the blocking ``puka.Client`` and once with
  ``puka_asyncio``; a test takes ``driver`` and dispatches.
* :func:`record` -- print a row's figures and append them, one JSON line, to
  ``tests/faults/.report/private.jsonl`` (gitignored) for the closing note.
* :func:`run_async` -- run a coroutine scenario on a fresh event loop, with a hard timeout.
* :func:`broker_alarms` / :func:`alarm_guard` -- alarms on a private node: clear before the test,
  restored (watermark, disk alarm) in ``finally``, and checked clear again after it.
* :func:`eventually` / :func:`queue_counts` -- polling and queue inspection, from outside.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import puka

from tests.broker_node import PrivateBrokerNode

T = TypeVar("T")

DRIVERS = ["blocking", "asyncio"]
REPORT_DIR = Path(__file__).parent / ".report"
REPORT_FILE = REPORT_DIR / "private.jsonl"

#: The watermark that raises a memory alarm at once, and the node's default to restore.
ALARM_WATERMARK = "0.000000001"
DISK_ALARM = "{resource_limit, disk, node()}"


def record(row: str, driver: str, **figures: Any) -> dict[str, Any]:
    """Print ``figures`` of one row and append them to the report as a JSON line."""
    line = {
        "row": row,
        "driver": driver,
        **figures,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(line, sort_keys=False, default=str)
    print(text)
    REPORT_DIR.mkdir(exist_ok=True)
    with REPORT_FILE.open("a") as report:
        report.write(text + "\n")
    return line


def run_async(scenario: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
    """Run ``scenario()`` on a new event loop; fail if it takes over ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


def eventually(
    condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02
) -> float:
    """Poll ``condition`` until true; return the seconds it took, fail after ``timeout``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - began


def connect_blocking(url: str, **kwargs: Any) -> puka.Client:
    """A connected blocking client (5 s at most)."""
    client = puka.Client(url, **kwargs)
    result = client.wait(client.connect(), timeout=5)
    assert result is not None, f"could not connect to {url}"
    return client


def close_quietly(client: puka.Client) -> None:
    """Close a blocking client whatever state it is in."""
    with suppress(Exception):
        client.wait(client.close(), timeout=3, raise_errors=False)
    with suppress(Exception):
        client._close_socket()


def queue_counts(url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``, seen from a fresh connection."""
    client = connect_blocking(url)
    try:
        result = client.wait(client.queue_declare(queue, passive=True), timeout=5)
        assert result is not None
        return int(result["message_count"]), int(result["consumer_count"])
    finally:
        close_quietly(client)


def drain_bodies(url: str, queue: str) -> list[bytes]:
    """Take (and ack) every ready message of ``queue``; their bodies, in order."""
    client = connect_blocking(url)
    bodies: list[bytes] = []
    try:
        while True:
            result = client.wait(client.basic_get(queue, no_ack=True), timeout=5)
            assert result is not None
            if result.get("empty"):
                return bodies
            bodies.append(result["body"])
    finally:
        close_quietly(client)


def delete_queues(url: str, *queues: str) -> None:
    """Delete ``queues`` (on the node at ``url``), ignoring the ones already gone."""
    with suppress(Exception):
        client = connect_blocking(url)
        try:
            for queue in queues:
                client.wait(client.queue_delete(queue), timeout=5, raise_errors=False)
        finally:
            close_quietly(client)


# ---------------------------------------------------------------------------
# Alarms and settings on the private node (``node.eval``: erl_call, milliseconds)


def broker_alarms(node: PrivateBrokerNode) -> str:
    """``rabbit_alarm:get_alarms()`` on the node, as Erlang text (``[]`` when clear)."""
    return node.eval("rabbit_alarm:get_alarms().")


def default_watermark(node: PrivateBrokerNode) -> str:
    """The node's configured memory watermark, as an Erlang term (restored after an alarm)."""
    text = node.eval("application:get_env(rabbit, vm_memory_high_watermark).")
    assert text.startswith("{ok,"), f"no vm_memory_high_watermark: {text}"
    value = text.removeprefix("{ok,").removesuffix("}")
    with suppress(ValueError):
        return repr(float(value))  # erl_call prints 0.400000
    return value


def set_watermark(node: PrivateBrokerNode, watermark: str) -> str:
    """Set the memory watermark; the alarms raised after it."""
    return node.eval(
        f"vm_memory_monitor:set_vm_memory_high_watermark({watermark}), rabbit_alarm:get_alarms()."
    )


def set_disk_alarm(node: PrivateBrokerNode) -> str:
    """Raise a disk alarm as the disk monitor would; the alarms raised after it."""
    return node.eval(f"rabbit_alarm:set_alarm({{{DISK_ALARM}, []}}), rabbit_alarm:get_alarms().")


def clear_disk_alarm(node: PrivateBrokerNode) -> str:
    """Clear the disk alarm; the alarms raised after it."""
    return node.eval(f"rabbit_alarm:clear_alarm({DISK_ALARM}), rabbit_alarm:get_alarms().")


def clear_alarms(node: PrivateBrokerNode, watermark: str) -> None:
    """Clear every alarm a test may have raised (each step tried even if another fails)."""
    with suppress(Exception):
        set_watermark(node, watermark)
    with suppress(Exception):
        clear_disk_alarm(node)


@contextmanager
def alarm_guard(node: PrivateBrokerNode) -> Iterator[str]:
    """Alarms clear before; raised alarms cleared in ``finally``; clear after. Yields the
    watermark to restore."""
    assert broker_alarms(node) == "[]", "the private node is in alarm before the test"
    watermark = default_watermark(node)
    try:
        yield watermark
    finally:
        clear_alarms(node, watermark)
        deadline = time.monotonic() + 10
        while broker_alarms(node) != "[]" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert broker_alarms(node) == "[]", "the private node is still in alarm after the test"
    assert default_watermark(node) == watermark


@contextmanager
def env_guard(node: PrivateBrokerNode, *names: str) -> Iterator[None]:
    """Restore (or unset) ``rabbit`` application variables ``names`` in ``finally``."""
    saved = {name: node.eval(f"application:get_env(rabbit, {name}).") for name in names}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value.startswith("{ok,"):
                original = value.removeprefix("{ok,").removesuffix("}")
                node.eval(f"application:set_env(rabbit, {name}, {original}).")
            else:
                node.eval(f"application:unset_env(rabbit, {name}).")
        for name, value in saved.items():
            now = node.eval(f"application:get_env(rabbit, {name}).")
            assert now == value, f"rabbit {name} not restored: {now} != {value}"
