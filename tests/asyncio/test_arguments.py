"""Every public call of `puka_asyncio.AsyncClient` refuses wrong arguments at once.

The same cases as the blocking client's (`tests.integration.argument_cases`), on one
connection per run: each refused call raises `TypeError` or `ValueError` naming the argument
(when called, or for a coroutine when awaited), leaves nothing counted, queued or written,
and afterwards the client still works and `async with` exits at once.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import time
from typing import Any

import puka
import puka_asyncio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.asyncio.conftest import ClientFactory
from tests.asyncio.helpers import LOOPS, finish_loop, unhandled_text, within
from tests.broker_node import UniqueName
from tests.integration.argument_cases import ASYNC_CASES, Case, Context, state

#: Examples per run (and per event loop).
EXAMPLES = 300


async def make_context(client: Any, url: str, unique_name: UniqueName) -> Context:
    """An exclusive queue holding one unacked message, a consume, a transaction."""
    queue = (await within(client.queue_declare(queue=unique_name("args"), exclusive=True)))["queue"]
    await within(client.basic_publish(exchange="", routing_key=queue, body=b"m"))
    message = await within(client.basic_get(queue=queue))
    assert message["body"] == b"m"
    other = await within(client.queue_declare(queue=unique_name("args-c"), exclusive=True))
    consume = client.basic_consume(queue=other["queue"])
    tx = client.tx_select()
    assert (await within(tx)).name == "tx.select_ok"
    done = client.queue_declare(queue=queue, passive=True)
    await within(done)
    return Context(
        client=client,
        url=url,
        queue=queue,
        missing=unique_name("args-missing"),
        consume=consume,
        tx=tx,
        message=message,
        done=done,
    )


async def call(context: Context, case: Case, arguments: dict[str, Any]) -> Any:
    """Make the call of `case` (awaiting it if it is a coroutine function)."""
    client = context.client
    if case.call.startswith("="):
        setattr(client, case.call[1:], arguments["fn"])
        return None
    if case.call == "puka_asyncio.connect":
        return await puka_asyncio.connect(**arguments)
    outcome = getattr(client, case.call)(**arguments)
    if inspect.iscoroutine(outcome):
        return await outcome
    return outcome


def async_state(client: Any) -> tuple[Any, ...]:
    return (*state(client), client.pending_handles)


async def refuse(context: Context, case: Case, argument: str, value: Any) -> None:
    arguments = {**case.valid(context), argument: value}
    before = async_state(context.client)
    started = time.monotonic()
    with pytest.raises((TypeError, ValueError)) as caught:
        await asyncio.wait_for(call(context, case, arguments), 1.0)
    took = time.monotonic() - started
    message = str(caught.value)
    assert any(word in message for word in case.words(argument)), (
        f"{case.call}({argument}={value!r}): the message does not name it: {message!r}"
    )
    assert took < 1.0, f"{case.call}({argument}={value!r}) took {took:.2f} s to refuse"
    assert async_state(context.client) == before, f"{case.call}({argument}={value!r}) left a trace"


@pytest.mark.timeout(300)
def test_every_call_refuses_wrong_arguments_at_once(
    loop_kind: str, amqp_url: str, unique_name: UniqueName
) -> None:
    loop = LOOPS[loop_kind]()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    cases = [(case, name) for case in ASYNC_CASES for name in case.bad]
    try:
        client = loop.run_until_complete(puka_asyncio.connect(amqp_url))
        context = loop.run_until_complete(make_context(client, amqp_url, unique_name))

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            case, argument = data.draw(st.sampled_from(cases), label="call, argument")
            value = data.draw(case.bad[argument], label=f"{case.call}({argument}=...)")
            loop.run_until_complete(refuse(context, case, argument, value))

        run()

        async def afterwards() -> None:
            # still usable: a declare, a confirmed publish, a get
            await within(client.queue_declare(queue=context.queue, passive=True))
            await within(client.basic_publish(exchange="", routing_key=context.queue, body=b"a"))
            got = await within(client.basic_get(queue=context.queue, no_ack=True))
            assert got["body"] == b"a"
            # `async with` exits at once
            started = time.monotonic()
            async with client:
                pass
            assert time.monotonic() - started < 1.0
            assert client.engine.closed

        loop.run_until_complete(asyncio.wait_for(afterwards(), 10))
    finally:
        left = finish_loop(loop)
    assert not unhandled, [unhandled_text(context) for context in unhandled]
    assert not left


async def test_refused_publishes_leave_async_with_immediate(make_client: ClientFactory) -> None:
    """The calls of issue 19 on the asyncio client: refused, and `async with` exits at once."""
    client = await make_client()
    started = time.monotonic()
    async with client:
        queue = (await within(client.queue_declare(exclusive=True)))["queue"]
        for arguments in (
            {"body": 42},
            {"body": None},
            {"headers": {"delivery_mode": "persistent"}},
            {"headers": {"expiration": 60000}},
            {"headers": {"timestamp": 1.5}},
        ):
            with pytest.raises(TypeError, match="basic_publish: "):
                client.basic_publish(exchange="", routing_key=queue, **arguments)
        assert client.pending_handles == 0
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    with pytest.raises(TypeError, match="amqp_url must be a str"):
        await puka_asyncio.connect(None)  # type: ignore[arg-type]


async def test_properties_and_application_headers_arrive_apart(make_client: ClientFactory) -> None:
    client = await make_client()
    queue = (await within(client.queue_declare(exclusive=True)))["queue"]
    moment = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
    await within(
        client.basic_publish(
            exchange="",
            routing_key=queue,
            headers={"type": "app", "timestamp": "not the property"},
            properties={"type": "prop", "timestamp": moment, "priority": 1},
            body=b"x",
        )
    )
    message = await within(client.basic_get(queue=queue, no_ack=True))
    assert message.properties == {
        "type": "prop",
        "timestamp": int(moment.timestamp()),
        "priority": 1,
    }
    assert message.application_headers == {"type": "app", "timestamp": "not the property"}
    assert message["headers"]["type"] == "prop"
    assert isinstance(message, puka.Result)


async def test_a_consume_of_another_client_is_refused_alike(make_client: ClientFactory) -> None:
    """A handle, but not one this client can use: `ValueError`, wherever it is passed."""
    one, other = await make_client(), await make_client()
    queue = str((await within(one.queue_declare(exclusive=True)))["queue"])
    consume = one.basic_consume(queue=queue)
    with pytest.raises(ValueError, match="consume_promise is a consume of another client"):
        other.basic_cancel(consume)
    with pytest.raises(ValueError, match=r"handles\[1\] is a consume of another client"):
        await other.wait_for_all([other.queue_declare(exclusive=True), consume])
    # a promise number is taken (`basic_publish_number`), but only one this client gave out
    with pytest.raises(ValueError, match=r"handles\[0\] is \d+, not a promise number of this"):
        await other.wait_for_all([int(consume) + 10_000])
    with pytest.raises(TypeError, match=r"handles\[0\] must be a handle or promise number"):
        await other.wait_for_all(["3"])  # type: ignore[list-item]
    await within(one.basic_cancel(consume))
