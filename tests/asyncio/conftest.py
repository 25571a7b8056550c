"""Coroutine tests on a fresh event loop, once on asyncio's default loop and once on uvloop.

No pytest-asyncio: ``pytest_pyfunc_call`` below runs every ``async def test_*`` of this
directory itself. The autouse ``loop_kind`` fixture parametrises each test (``[asyncio]``,
``[uvloop]``); the test gets a new loop, is cancelled after ``ASYNC_TEST_TIMEOUT`` seconds, and
the loop is closed afterwards. Fixtures stay synchronous: clients are made inside the test with
the ``make_client`` factory and closed by the runner, on the test's loop.

A test also fails if the loop reported an error nobody handled: a future or task whose
exception was never retrieved, an exception in a callback (``loop.call_exception_handler``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Coroutine
from typing import Any

import puka_asyncio
import pytest

from tests.asyncio.helpers import LOOPS, finish_loop, unhandled_text

#: A coroutine test that runs longer than this is cancelled and fails.
ASYNC_TEST_TIMEOUT = 30.0


@pytest.fixture(autouse=True, params=list(LOOPS))
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Which event loop the test runs on: ``asyncio`` or ``uvloop``."""
    return str(request.param)


class ClientFactory:
    """``await make_client(url=None, **connect kwargs)`` -> a connected AsyncClient.

    Every client it made is closed by the runner at the end of the test, on the test's loop.
    """

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.made: list[puka_asyncio.AsyncClient] = []

    async def __call__(self, url: str | None = None, **kwargs: Any) -> puka_asyncio.AsyncClient:
        client = await puka_asyncio.connect(url or self.amqp_url, **kwargs)
        self.made.append(client)
        return client

    async def close_all(self) -> None:
        """Close every client still open (quietly: the test may have broken some)."""
        for client in self.made:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 10)


@pytest.fixture
def make_client(amqp_url: str) -> ClientFactory:
    """A factory of connected clients (see `ClientFactory`)."""
    return ClientFactory(amqp_url)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a coroutine test on a new loop of the kind its ``loop_kind`` parameter names."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    loop = LOOPS[funcargs["loop_kind"]]()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))

    async def run() -> None:
        test: Coroutine[Any, Any, Any] = function(**kwargs)
        try:
            await asyncio.wait_for(test, ASYNC_TEST_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"the test did not finish within {ASYNC_TEST_TIMEOUT:g} s")
        finally:
            for value in funcargs.values():
                if isinstance(value, ClientFactory):
                    await value.close_all()

    left: list[str] = []
    try:
        loop.run_until_complete(run())
    finally:
        left = finish_loop(loop)
    problems = [f"- {unhandled_text(context)}" for context in unhandled]
    problems += [f"- a task left running: {task}" for task in left]
    if problems:
        pytest.fail("the event loop was left unclean:\n" + "\n".join(problems))
    return True
