"""Issue 7 rows F5, F6, F7: what the broker says about one publish or one operation.

F5 server nack, F6 mandatory return, F7 channel errors (404, 406, 403), each with the blocking
client and the asyncio client. They change nothing broker-wide: they run on the session's
private node with unique names, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import puka
import puka_asyncio
import pytest
from puka_spec import methods

from tests.broker_node import PrivateBrokerNode, UniqueName
from tests.faults.private_helpers import (
    DRIVERS,
    close_quietly,
    connect_blocking,
    delete_queues,
    drain_bodies,
    queue_counts,
    record,
    run_async,
)

#: A burst this long makes RabbitMQ coalesce nacks into `multiple=True` ones.
NACK_BURST = 300


class ConfirmSpy:
    """Counts the basic.ack / basic.nack frames (and the multiple ones) the publisher gets."""

    def __init__(self, engine: puka.Engine) -> None:
        publisher = engine.publisher
        assert publisher is not None, "publish once before spying on the publisher"
        self.acks = self.nacks = self.multiple_nacks = 0
        original = publisher.on_method

        def spy(channel: Any, method: Any, props: Any, body: bytes) -> None:
            if isinstance(method, methods.BasicNack):
                self.nacks += 1
                self.multiple_nacks += bool(method.multiple)
            elif isinstance(method, methods.BasicAck):
                self.acks += 1
            original(channel, method, props, body)

        publisher.on_method = spy  # type: ignore[method-assign]


# ---------------------------------------------------------------------------
# F5: server nack


def _overflow_args() -> dict[str, Any]:
    return {"x-overflow": "reject-publish", "x-max-length": 1}


@pytest.mark.parametrize("driver", DRIVERS)
def test_f5_server_nack(
    driver: str, private_node: PrivateBrokerNode, unique_name: UniqueName
) -> None:
    url = private_node.url
    queue = unique_name("f5")
    try:
        if driver == "blocking":
            first, burst, multiple = _f5_blocking(url, queue)
        else:
            first, burst, multiple = run_async(lambda: _f5_asyncio(url, queue))
        # promise 1 ok, 2-3 nacked
        assert first[0] == "ok", first
        assert first[1:] == ["nacked", "nacked"], first
        # the burst against the full queue: every promise nacked, none pending, none acked
        assert burst == ["nacked"] * NACK_BURST
        assert multiple > 0, "no multiple=True nack arrived: the coalesced path went untested"
        assert queue_counts(url, queue)[0] == 1
        assert drain_bodies(url, queue) == [b"m0"]
        record(
            "F5",
            driver,
            published=3 + NACK_BURST,
            acked=1,
            nacked=2 + NACK_BURST,
            multiple_nacks=multiple,
            pending=0,
        )
    finally:
        delete_queues(url, queue)


def _outcome(result: puka.Result | None) -> str:
    if result is None:
        return "pending"
    if not result.is_error:
        return "ok"
    return "nacked" if isinstance(result.exception, puka.PublishNacked) else repr(result.exception)


def _f5_blocking(url: str, queue: str) -> tuple[list[str], list[str], int]:
    client = connect_blocking(url)
    try:
        client.wait(client.queue_declare(queue, arguments=_overflow_args()), timeout=5)
        promises = [client.basic_publish("", queue, body=f"m{i}") for i in range(3)]
        spy = ConfirmSpy(client.engine)
        first = [_outcome(client.wait(p, timeout=5, raise_errors=False)) for p in promises]
        with pytest.raises(puka.PublishNacked):
            client.wait(client.basic_publish("", queue, body=b"raises"), timeout=5)
        promises = [client.basic_publish("", queue, body=b"x") for _ in range(NACK_BURST)]
        burst = [_outcome(client.wait(p, timeout=5, raise_errors=False)) for p in promises]
        assert client.engine.promises.pending() == 0
        return first, burst, spy.multiple_nacks
    finally:
        close_quietly(client)


async def _f5_asyncio(url: str, queue: str) -> tuple[list[str], list[str], int]:
    async with await puka_asyncio.connect(url) as client:
        await client.queue_declare(queue, arguments=_overflow_args())
        futures = [client.basic_publish("", queue, body=f"m{i}") for i in range(3)]
        spy = ConfirmSpy(client.engine)
        outcomes = await asyncio.gather(*futures, return_exceptions=True)  # type: ignore[arg-type]
        first = [_async_outcome(o) for o in outcomes]
        with pytest.raises(puka.PublishNacked):
            await client.basic_publish("", queue, body=b"raises")
        futures = [client.basic_publish("", queue, body=b"x") for _ in range(NACK_BURST)]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)  # type: ignore[arg-type]
        burst = [_async_outcome(o) for o in outcomes]
        assert client.engine.promises.pending() == 0
        return first, burst, spy.multiple_nacks


def _async_outcome(outcome: object) -> str:
    if isinstance(outcome, puka.PublishNacked):
        return "nacked"
    if isinstance(outcome, BaseException):
        return repr(outcome)
    return "ok"


# ---------------------------------------------------------------------------
# F6: mandatory return


@pytest.mark.parametrize("driver", DRIVERS)
def test_f6_mandatory_return(
    driver: str, private_node: PrivateBrokerNode, unique_name: UniqueName
) -> None:
    url = private_node.url
    queue, missing = unique_name("f6"), unique_name("f6-unroutable")
    try:
        began = time.monotonic()
        if driver == "blocking":
            outcomes = _f6_blocking(url, queue, missing)
        else:
            outcomes = run_async(lambda: _f6_asyncio(url, queue, missing))
        elapsed = time.monotonic() - began
        # the burst: routable, unroutable mandatory, routable, unroutable non-mandatory, routable
        returned = outcomes[1]
        assert isinstance(returned, puka.NoRoute) and isinstance(returned, puka.Returned)
        assert returned.reply_code == 312
        message = returned.message
        assert message["body"] == b"lost-1"
        assert message["routing_key"] == missing
        assert message["exchange"] == ""
        assert message["reply_code"] == 312
        assert message["headers"]["message_id"] == "id-1"
        assert message["headers"]["x-test"] == "kept"
        assert "x-puka" not in str(message["headers"]), "a header was injected"
        assert [outcomes[i] for i in (0, 2, 3, 4)] == ["ok"] * 4
        # later publishes unaffected
        assert outcomes[5:] == ["ok"] * 20
        assert drain_bodies(url, queue) == [b"a", b"b", b"c"] + [b"later"] * 20
        record(
            "F6",
            driver,
            returned=1,
            reply_code=returned.reply_code,
            later_ok=20,
            seconds=round(elapsed, 3),
        )
    finally:
        delete_queues(url, queue)


def _f6_burst(missing: str, queue: str) -> list[tuple[str, str, bool, bytes, dict[str, Any]]]:
    headers = {"message_id": "id-1", "x-test": "kept"}
    return [
        ("", queue, True, b"a", {}),
        ("", missing, True, b"lost-1", headers),
        ("", queue, True, b"b", {}),
        ("", missing, False, b"dropped", {}),  # not mandatory: dropped, confirmed
        ("", queue, False, b"c", {}),
    ]


def _f6_blocking(url: str, queue: str, missing: str) -> list[Any]:
    client = connect_blocking(url)
    try:
        client.wait(client.queue_declare(queue), timeout=5)
        promises = [
            client.basic_publish(x, k, mandatory=m, body=b, headers=h)
            for x, k, m, b, h in _f6_burst(missing, queue)
        ]
        outcomes: list[Any] = []
        for p in promises:
            result = client.wait(p, timeout=5, raise_errors=False)
            assert result is not None
            if result.is_error:
                # the error result is the returned message as well
                assert result["body"] == b"lost-1" and result.name == "basic.return"
                outcomes.append(result.exception)
            else:
                outcomes.append("ok")
        with pytest.raises(puka.NoRoute):
            client.wait(client.basic_publish("", missing, mandatory=True, body=b"x"), timeout=5)
        later = [client.basic_publish("", queue, body=b"later", mandatory=True) for _ in range(20)]
        for p in later:
            result = client.wait(p, timeout=5, raise_errors=False)
            outcomes.append("ok" if result is not None and not result.is_error else result)
        assert client.engine.unpaired_returns == 0
        return outcomes
    finally:
        close_quietly(client)


async def _f6_asyncio(url: str, queue: str, missing: str) -> list[Any]:
    async with await puka_asyncio.connect(url) as client:
        await client.queue_declare(queue)
        futures = [
            client.basic_publish(x, k, mandatory=m, body=b, headers=h)
            for x, k, m, b, h in _f6_burst(missing, queue)
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)  # type: ignore[arg-type]
        outcomes: list[Any] = [r if isinstance(r, BaseException) else "ok" for r in results]
        with pytest.raises(puka.NoRoute):
            await client.basic_publish("", missing, mandatory=True, body=b"x")
        later = [client.basic_publish("", queue, body=b"later", mandatory=True) for _ in range(20)]
        results = await asyncio.gather(*later, return_exceptions=True)  # type: ignore[arg-type]
        outcomes += [r if isinstance(r, BaseException) else "ok" for r in results]
        assert client.engine.unpaired_returns == 0
        return outcomes


# ---------------------------------------------------------------------------
# F7: channel errors


@pytest.mark.parametrize("driver", DRIVERS)
def test_f7_channel_errors(
    driver: str, private_node: PrivateBrokerNode, unique_name: UniqueName
) -> None:
    url = private_node.url
    names = {
        "queue": unique_name("f7"),
        "missing_queue": unique_name("f7-missing"),
        "missing_exchange": unique_name("f7-nox"),
        "reserved": "amq." + unique_name("f7"),
    }
    try:
        began = time.monotonic()
        if driver == "blocking":
            figures = _f7_blocking(url, names)
        else:
            figures = run_async(lambda: _f7_asyncio(url, names))
        elapsed = time.monotonic() - began
        ready, _ = queue_counts(url, names["queue"])
        # publishes around the failed ones were confirmed and are there (resent ones at least once)
        assert ready >= figures["confirmed"] > 0
        figures["duplicates"] = ready - figures["confirmed"]
        record("F7", driver, **figures, seconds=round(elapsed, 3))
    finally:
        delete_queues(url, names["queue"])


def _f7_check_channels(engine: puka.Engine) -> int:
    """Channel numbers are recycled after errors: few are ever in use."""
    highest = max(engine.channels.by_number, default=0)
    assert highest <= 4, f"channel numbers were not reused: {sorted(engine.channels.by_number)}"
    return highest


def _f7_blocking(url: str, names: dict[str, str]) -> dict[str, Any]:
    client = connect_blocking(url)
    queue = names["queue"]
    try:
        client.wait(client.queue_declare(queue, durable=False), timeout=5)
        # 404: passive declare of a queue that does not exist
        with pytest.raises(puka.NotFound) as not_found:
            client.wait(client.queue_declare(names["missing_queue"], passive=True), timeout=5)
        assert not_found.value.reply_code == 404
        # 406: redeclare with other settings
        with pytest.raises(puka.PreconditionFailed) as precondition:
            client.wait(client.queue_declare(queue, durable=True), timeout=5)
        assert precondition.value.reply_code == 406
        # 403: a reserved amq. name
        with pytest.raises(puka.AccessRefused) as refused:
            client.wait(client.exchange_declare(names["reserved"]), timeout=5)
        assert refused.value.reply_code == 403
        # 404 on a consume's channel: the qos queued behind it is rejected too
        consume = client.basic_consume(names["missing_queue"])
        qos = client.basic_qos(consume, prefetch_count=5)
        with pytest.raises(puka.NotFound):
            client.wait(consume, timeout=5)
        qos_result = client.wait(qos, timeout=5, raise_errors=False)
        assert qos_result is not None and qos_result.is_error, qos_result
        assert isinstance(qos_result.exception, (puka.NotFound, puka.ChannelClosed))
        # 404 with confirms pending on the publish channel: only the culprits fail
        burst: list[tuple[int, str]] = []
        for i in range(30):
            exchange = names["missing_exchange"] if i in (10, 11, 20) else ""
            promise = client.basic_publish(exchange, queue, body=f"p{i}")
            burst.append((promise, exchange))
        outcomes = [
            (client.wait(p, timeout=5, raise_errors=False), exchange) for p, exchange in burst
        ]
        assert all(result is not None for result, _ in outcomes), "a publish was left pending"
        failed = [r for r, x in outcomes if r is not None and r.is_error]
        assert len(failed) == 3
        assert all(isinstance(r.exception, puka.NotFound) for r in failed)
        assert all(x for r, x in outcomes if r is not None and r.is_error)
        confirmed = sum(1 for r, _ in outcomes if r is not None and not r.is_error)
        assert confirmed == 27
        assert client.engine.promises.pending() == 0
        # the connection and other operations keep working; channels are reused
        for _ in range(10):
            with pytest.raises(puka.NotFound):
                client.wait(client.queue_declare(names["missing_queue"], passive=True), timeout=5)
            assert client.wait(client.queue_declare(queue, passive=True), timeout=5) is not None
        assert client.wait(client.basic_publish("", queue, body=b"after"), timeout=5) is not None
        highest = _f7_check_channels(client.engine)
        assert client.engine.state.value == "open"
        return {
            "errors": {"404": 15, "406": 1, "403": 1},
            "confirmed": confirmed + 1,
            "publish_failed": 3,
            "highest_channel": highest,
        }
    finally:
        close_quietly(client)


async def _f7_asyncio(url: str, names: dict[str, str]) -> dict[str, Any]:
    queue = names["queue"]
    async with await puka_asyncio.connect(url) as client:
        await client.queue_declare(queue, durable=False)
        with pytest.raises(puka.NotFound) as not_found:
            await client.queue_declare(names["missing_queue"], passive=True)
        assert not_found.value.reply_code == 404
        with pytest.raises(puka.PreconditionFailed) as precondition:
            await client.queue_declare(queue, durable=True)
        assert precondition.value.reply_code == 406
        with pytest.raises(puka.AccessRefused) as refused:
            await client.exchange_declare(names["reserved"])
        assert refused.value.reply_code == 403
        consume = client.basic_consume(names["missing_queue"])
        qos = client.basic_qos(consume, prefetch_count=5)
        assert isinstance(consume, puka_asyncio.ConsumeHandle)
        with pytest.raises(puka.NotFound):
            await consume
        with pytest.raises((puka.NotFound, puka.ChannelClosed)):
            await qos
        futures = []
        for i in range(30):
            exchange = names["missing_exchange"] if i in (10, 11, 20) else ""
            futures.append((client.basic_publish(exchange, queue, body=f"p{i}"), exchange))
        results = await asyncio.gather(*(f for f, _ in futures), return_exceptions=True)  # type: ignore[arg-type]
        failed = [r for r in results if isinstance(r, BaseException)]
        assert len(failed) == 3
        assert all(isinstance(r, puka.NotFound) for r in failed)
        culprits = [
            x for r, (_, x) in zip(results, futures, strict=True) if isinstance(r, BaseException)
        ]
        assert all(culprits)
        confirmed = len(results) - len(failed)
        assert confirmed == 27
        assert client.engine.promises.pending() == 0
        for _ in range(10):
            with pytest.raises(puka.NotFound):
                await client.queue_declare(names["missing_queue"], passive=True)
            await client.queue_declare(queue, passive=True)
        await client.basic_publish("", queue, body=b"after")
        highest = _f7_check_channels(client.engine)
        assert client.engine.state.value == "open"
        return {
            "errors": {"404": 15, "406": 1, "403": 1},
            "confirmed": confirmed + 1,
            "publish_failed": 3,
            "highest_channel": highest,
        }
