"""A burst of connects on one event loop is paced (`puka_asyncio.MAX_CONNECTS_IN_FLIGHT`).

Hundreds of `connect` calls in one `gather` used to open every TCP connection at once: more
than a broker's listen backlog (128) holds, so its kernel dropped the surplus, which retried a
second later (connect times of 0.7 or 2.7 ms each). At most 64 are now under way at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import puka_asyncio
import puka_asyncio.client
import pytest

from tests.asyncio.helpers import within


async def test_a_burst_of_connects_has_at_most_the_limit_under_way() -> None:
    """200 connects to a peer that accepts and never answers: 64 connections reach it (each
    holding its slot through the handshake), not 200."""
    accepted: list[asyncio.StreamWriter] = []
    enough = asyncio.Event()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        if len(accepted) >= puka_asyncio.MAX_CONNECTS_IN_FLIGHT:
            enough.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, backlog=1024)
    url = f"amqp://guest:guest@127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    burst = asyncio.gather(*(puka_asyncio.connect(url) for _ in range(200)))
    try:
        await within(enough.wait())
        await asyncio.sleep(0.5)  # time for more to arrive, were they not held back
        assert len(accepted) == puka_asyncio.MAX_CONNECTS_IN_FLIGHT == 64
    finally:
        burst.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await burst
        for writer in accepted:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_connects_beyond_the_limit_wait_their_turn_and_all_connect(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 connects to the broker with a limit of 8: never more than 8 under way, all open."""
    monkeypatch.setattr(puka_asyncio.client, "MAX_CONNECTS_IN_FLIGHT", 8)
    under_way = {"now": 0, "most": 0}
    real = puka_asyncio.client._connect

    async def counted(*args: Any) -> puka_asyncio.AsyncClient:
        under_way["now"] += 1
        under_way["most"] = max(under_way["most"], under_way["now"])
        try:
            return await real(*args)
        finally:
            under_way["now"] -= 1

    monkeypatch.setattr(puka_asyncio.client, "_connect", counted)
    clients = await within(asyncio.gather(*(puka_asyncio.connect(amqp_url) for _ in range(40))))
    try:
        assert under_way["most"] == 8
        assert len({id(client) for client in clients}) == 40
        assert all(client.engine.state.value == "open" for client in clients)
    finally:
        await within(asyncio.gather(*(client.close() for client in clients)))


async def test_reconnects_after_a_loss_take_a_slot_too(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 recovering clients lose their connections at once (a broker restart): with a limit
    of 4, never more than 4 of their reconnects are under way, and all of them recover."""
    monkeypatch.setattr(puka_asyncio.client, "MAX_CONNECTS_IN_FLIGHT", 4)
    clients = await within(
        asyncio.gather(*(puka_asyncio.connect(amqp_url, reconnect=True) for _ in range(20)))
    )
    under_way = {"now": 0, "most": 0, "calls": 0}
    real = puka_asyncio.AsyncClient._open_transport

    async def counted(self: puka_asyncio.AsyncClient) -> Any:
        under_way["now"] += 1
        under_way["calls"] += 1
        under_way["most"] = max(under_way["most"], under_way["now"])
        try:
            await asyncio.sleep(0.01)  # long enough for every client to be under way at once
            return await real(self)
        finally:
            under_way["now"] -= 1

    monkeypatch.setattr(puka_asyncio.AsyncClient, "_open_transport", counted)
    try:
        for client in clients:
            transport = client._protocol.transport
            assert transport is not None
            transport.abort()

        async def all_open() -> None:
            while not all(c.engine.state.value == "open" for c in clients):
                await asyncio.sleep(0.02)

        await within(all_open(), 30)
        assert under_way["calls"] >= 20
        assert under_way["most"] == 4
    finally:
        await within(asyncio.gather(*(client.close() for client in clients)))
