"""Issue 7 row F17: authentication and virtual host failures are final.

On the session's private node, with a user of our own (added and deleted by a fixture): a wrong
password fails with ``AccessRefused`` (403), a missing virtual host with ``NotAllowed`` (530),
both at once and never retried, even with ``reconnect=True``; a recovery that meets a changed
password gives up after that one attempt. The password appears in no exception text, repr or
cause.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import puka
import puka_asyncio
import pytest
from puka_asyncio import client as asyncio_client

from tests.broker_node import PrivateBrokerNode, UniqueName
from tests.faults.private_helpers import DRIVERS, close_quietly, record, run_async

PASSWORD = "s3cret-F17-pw"
WRONG = "wr0ng-F17-s3cret"
CHANGED = "chang3d-F17-s3cret"
CLOSE_ALL = (
    '[rabbit_networking:close_connection(Pid, "puka fault test")'
    " || Pid <- rabbit_networking:connections()], ok."
)


@pytest.fixture
def user(private_node: PrivateBrokerNode, unique_name: UniqueName) -> Iterator[str]:
    """A user of the private node's / vhost with PASSWORD, deleted afterwards."""
    name = unique_name("f17-user")
    private_node.eval(
        f'rabbit_auth_backend_internal:add_user(<<"{name}">>, <<"{PASSWORD}">>, <<"test">>),'
        f' rabbit_auth_backend_internal:set_permissions(<<"{name}">>, <<"/">>, <<".*">>,'
        ' <<".*">>, <<".*">>, <<"test">>).'
    )
    try:
        yield name
    finally:
        private_node.eval(f'rabbit_auth_backend_internal:delete_user(<<"{name}">>, <<"test">>).')


def _url(node: PrivateBrokerNode, user: str, password: str, vhost: str = "/") -> str:
    return f"amqp://{user}:{quote(password)}@127.0.0.1:{node.port}/{quote(vhost, safe='')}"


def _secret_free(*things: object) -> None:
    """No password (right, wrong or changed) in the text of ``things`` or their causes."""
    texts: list[str] = []
    for thing in things:
        texts += [str(thing), repr(thing)]
        if isinstance(thing, BaseException):
            texts += traceback.format_exception(thing)
            texts += [repr(thing.args)]
    for text in texts:
        for secret in (PASSWORD, WRONG, CHANGED, quote(WRONG)):
            assert secret not in text, f"a password leaked: {text!r}"


class OpenCounter:
    """Counts the transports a client opens (each connection attempt)."""

    def __init__(self) -> None:
        self.count = 0

    def wrap(self, function: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return function(*args, **kwargs)

        async def counted_async(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await function(*args, **kwargs)

        return counted_async if asyncio.iscoroutinefunction(function) else counted


@pytest.mark.parametrize("driver", DRIVERS)
def test_f17_auth_and_vhost(
    driver: str,
    private_node: PrivateBrokerNode,
    user: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = OpenCounter()
    opener = asyncio_client.AsyncClient._open  # each transport an asyncio client opens
    monkeypatch.setattr(asyncio_client.AsyncClient, "_open", counter.wrap(opener))
    began = time.monotonic()
    if driver == "blocking":
        figures = _f17_blocking(private_node, user, counter)
    else:
        figures = run_async(lambda: _f17_asyncio(private_node, user, counter), 30)
    assert figures["wrong_password_seconds"] < 1.0
    assert figures["missing_vhost_seconds"] < 1.0
    record("F17", driver, **figures, seconds=round(time.monotonic() - began, 3))


def _blocking_client(url: str, counter: OpenCounter, **kwargs: Any) -> puka.Client:
    client = puka.Client(url, reconnect=True, **kwargs)
    client._open_socket = counter.wrap(client._open_socket)  # type: ignore[method-assign]
    return client


def _f17_blocking(node: PrivateBrokerNode, user: str, counter: OpenCounter) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    # wrong password: 403, once
    client = _blocking_client(_url(node, user, WRONG), counter)
    began = time.monotonic()
    with pytest.raises(puka.AccessRefused) as refused:
        client.wait(client.connect(), timeout=5)
    figures["wrong_password_seconds"] = round(time.monotonic() - began, 3)
    assert refused.value.reply_code == 403
    client.loop(timeout=0.5)  # nothing retries meanwhile
    assert counter.count == 1 and client.engine.closed and client._sock is None
    _secret_free(refused.value, client, client.engine, client.params)
    # missing vhost: 530, once
    client = _blocking_client(_url(node, user, PASSWORD, "puka-test-no-such-vhost"), counter)
    began = time.monotonic()
    with pytest.raises(puka.NotAllowed) as not_allowed:
        client.wait(client.connect(), timeout=5)
    figures["missing_vhost_seconds"] = round(time.monotonic() - began, 3)
    assert not_allowed.value.reply_code == 530
    client.loop(timeout=0.5)
    assert counter.count == 2 and client.engine.closed
    _secret_free(not_allowed.value, client)
    # a recovery that meets a changed password gives up after that one attempt
    client = _blocking_client(_url(node, user, PASSWORD), counter)
    lost: list[BaseException] = []
    client.on_connection_lost = lost.append
    try:
        client.wait(client.connect(), timeout=5)
        assert counter.count == 3
        node.eval(
            f'rabbit_auth_backend_internal:change_password(<<"{user}">>, <<"{CHANGED}">>,'
            ' <<"test">>).'
        )
        node.eval(CLOSE_ALL)
        until = time.monotonic() + 5
        while not client.engine.closed and time.monotonic() < until:
            client.loop(timeout=0.05)
        assert client.engine.closed, "the client kept retrying after an authentication failure"
        client.loop(timeout=1.0)  # and tries nothing more
        assert isinstance(client.engine.error, puka.AccessRefused), client.engine.error
        assert counter.count == 4, f"{counter.count - 3} reconnection attempts, expected 1"
        assert len(lost) == 1 and isinstance(lost[0], puka.ConnectionForced)
        assert client.engine.recoveries == 0
        with pytest.raises(puka.ClientClosed) as closed:
            client.wait(client.queue_declare("x"), timeout=1)
        _secret_free(client.engine.error, closed.value, client)
        figures["recovery_attempts_after_password_change"] = counter.count - 3
    finally:
        close_quietly(client)
    figures["connection_attempts"] = counter.count
    return figures


async def _f17_asyncio(node: PrivateBrokerNode, user: str, counter: OpenCounter) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    began = time.monotonic()
    with pytest.raises(puka.AccessRefused) as refused:
        await puka_asyncio.connect(_url(node, user, WRONG), reconnect=True)
    figures["wrong_password_seconds"] = round(time.monotonic() - began, 3)
    assert refused.value.reply_code == 403
    await asyncio.sleep(0.5)
    assert counter.count == 1
    _secret_free(refused.value)
    began = time.monotonic()
    with pytest.raises(puka.NotAllowed) as not_allowed:
        await puka_asyncio.connect(
            _url(node, user, PASSWORD, "puka-test-no-such-vhost"), reconnect=True
        )
    figures["missing_vhost_seconds"] = round(time.monotonic() - began, 3)
    assert not_allowed.value.reply_code == 530
    await asyncio.sleep(0.5)
    assert counter.count == 2
    _secret_free(not_allowed.value)
    client = await puka_asyncio.connect(_url(node, user, PASSWORD), reconnect=True)
    lost: list[BaseException] = []
    client.on_connection_lost = lost.append
    assert counter.count == 3
    node.eval(
        f'rabbit_auth_backend_internal:change_password(<<"{user}">>, <<"{CHANGED}">>, <<"test">>).'
    )
    node.eval(CLOSE_ALL)
    until = time.monotonic() + 5
    while not client.engine.closed and time.monotonic() < until:
        await asyncio.sleep(0.05)
    assert client.engine.closed, "the client kept retrying after an authentication failure"
    await asyncio.sleep(1.0)
    assert isinstance(client.engine.error, puka.AccessRefused), client.engine.error
    assert counter.count == 4, f"{counter.count - 3} reconnection attempts, expected 1"
    assert len(lost) == 1 and isinstance(lost[0], puka.ConnectionForced)
    assert client.engine.recoveries == 0
    with pytest.raises(puka.ClientClosed) as closed:
        await client.queue_declare("x")
    _secret_free(client.engine.error, closed.value, client)
    figures["recovery_attempts_after_password_change"] = counter.count - 3
    figures["connection_attempts"] = counter.count
    await client.__aexit__(None, None, None)
    return figures
