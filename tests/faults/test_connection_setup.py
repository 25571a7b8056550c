"""Issue 7 rows F16 and F22: connecting to what does not answer, and keeping the password secret.

* **F16** -- a refused port fails with ``ConnectFailed`` in under 0.5 s; a SYN blackhole (a
  ``listen(0)`` socket whose accept queue is full) fails with ``ConnectTimeout`` after
  ``connection_timeout=1`` (+-0.3 s); a listener that accepts and never answers (the fault
  proxy's accept-and-ignore) fails with ``ConnectTimeout`` after ``handshake_timeout=2``
  (+-0.3 s).
* **F22** -- a connection attempt with ``amqp://<a user that does not exist>:s3cret@...`` fails
  authentication (403, no broker state changes); with every logger at DEBUG, "s3cret" appears
  in no log record, repr, str, exception or traceback.

Each for the blocking ``puka.Client`` and for ``puka_asyncio``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import puka
import puka_asyncio
import pytest

from tests.broker_node import UniqueName
from tests.faults.fault_proxy import FaultProxy, record_figures

DRIVERS = ["blocking", "asyncio"]
SECRET = "s3cret"


def _attempt(driver: str, url: str, **kwargs: Any) -> tuple[BaseException | None, float, Any]:
    """Connect once; (the error raised or None, seconds it took, the client object or None)."""
    began = time.monotonic()
    if driver == "blocking":
        client = puka.Client(url, **kwargs)
        try:
            client.wait(client.connect(), timeout=10)
        except Exception as exc:
            return exc, time.monotonic() - began, client
        finally:
            client._close_socket()
        return None, time.monotonic() - began, client

    async def scenario() -> tuple[BaseException | None, float, Any]:
        try:
            client = await puka_asyncio.connect(url, **kwargs)
        except Exception as exc:
            return exc, time.monotonic() - began, None
        await client.close()
        return None, time.monotonic() - began, client

    result: tuple[BaseException | None, float, Any] = asyncio.run(asyncio.wait_for(scenario(), 15))
    return result


# ---------------------------------------------------------------------------------------------
# F16


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def syn_blackhole() -> Iterator[int]:
    """A port whose SYNs are dropped: ``listen(0)`` with its accept queue filled up."""
    listener = socket.socket()
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        with socket.socket() as probe:  # make sure: a connect must now hang
            probe.settimeout(0.3)
            with pytest.raises(TimeoutError):
                probe.connect(("127.0.0.1", port))
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_f16_connect_and_handshake_timeouts(
    driver: str, amqp_url: str, fault_proxy: FaultProxy
) -> None:
    creds = urlsplit(amqp_url).netloc.rpartition("@")[0]
    refused_url = f"amqp://{creds}@127.0.0.1:{_free_port()}/"
    refused, refused_s, _ = _attempt(driver, refused_url, connection_timeout=5)
    with syn_blackhole() as port:
        syn, syn_s, _ = _attempt(driver, f"amqp://{creds}@127.0.0.1:{port}/", connection_timeout=1)
    fault_proxy.accept_and_ignore()
    ignored, ignored_s, _ = _attempt(
        driver, fault_proxy.url(amqp_url), connection_timeout=5, handshake_timeout=2
    )
    fault_proxy.accept_and_ignore(False)
    record_figures(
        "F16",
        driver,
        refused=type(refused).__name__,
        refused_s=refused_s,
        syn_blackhole=type(syn).__name__,
        syn_blackhole_s=syn_s,
        connect_timeout_s=1,
        accept_blackhole=type(ignored).__name__,
        accept_blackhole_s=ignored_s,
        handshake_timeout_s=2,
    )
    assert isinstance(refused, puka.ConnectFailed) and not isinstance(refused, puka.ConnectTimeout)
    assert refused_s < 0.5
    assert isinstance(syn, puka.ConnectTimeout)
    assert abs(syn_s - 1) <= 0.3
    assert isinstance(ignored, puka.ConnectTimeout)
    assert abs(ignored_s - 2) <= 0.3
    assert fault_proxy.accepted == 1


def test_f16_handshake_timeout_is_checked() -> None:
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="handshake_timeout"):
            puka.Client("amqp:///", handshake_timeout=bad)
    # a bool is a wrong type, not a wrong number: TypeError since issue 19 item 2
    with pytest.raises(TypeError, match="handshake_timeout"):
        puka.Client("amqp:///", handshake_timeout=True)


# ---------------------------------------------------------------------------------------------
# F22


def _texts_of(exc: BaseException | None) -> list[str]:
    texts: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts += [str(exc), repr(exc), *map(repr, exc.args)]
        texts.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        exc = exc.__cause__ or exc.__context__
    return texts


@pytest.mark.parametrize("driver", DRIVERS)
def test_f22_secret_hygiene(
    driver: str,
    amqp_url: str,
    unique_name: UniqueName,
    caplog: pytest.LogCaptureFixture,
) -> None:
    parts = urlsplit(amqp_url)
    user = unique_name("nouser")  # no such user: the broker refuses, nothing is created
    url = f"amqp://{user}:{SECRET}@{parts.hostname}:{parts.port or 5672}/"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("puka").setLevel(logging.DEBUG)
    try:
        error, seconds, client = _attempt(driver, url, reconnect=True, heartbeat=1)
        params = puka.parse_url(url)
        texts = [repr(params), str(params), params.redacted_url(), *_texts_of(error)]
        if client is not None:
            texts += [repr(client), str(client), repr(client.engine), repr(client.params)]
        records = caplog.records
        for record in records:
            texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
            if record.exc_info and record.exc_info[1] is not None:
                texts += _texts_of(record.exc_info[1])
    finally:
        logging.getLogger("puka").setLevel(logging.NOTSET)
    leaks = [text for text in texts if SECRET in text]
    record_figures(
        "F22",
        driver,
        error=type(error).__name__,
        seconds=seconds,
        log_records=len(records),
        texts_checked=len(texts),
        leaks=len(leaks),
    )
    assert isinstance(error, puka.AccessRefused), repr(error)
    assert error.reply_code == 403
    assert not leaks, leaks[:3]
    assert any(user in text for text in texts), "the checks looked at nothing useful"
