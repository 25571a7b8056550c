"""puka-asyncio: Puka's calls, awaitable, over the same sans-I/O engine as `puka.Client`.

    import puka_asyncio

    client = await puka_asyncio.connect("amqp://guest:guest@localhost/")
    async with client:
        await client.queue_declare(queue="jobs")
        await client.basic_publish(exchange="", routing_key="jobs", body=b"hello")
        async for message in client.basic_consume(queue="jobs", prefetch_count=100):
            client.basic_ack(message)
            break

Exceptions, results and URLs are the blocking client's: import them from `puka`.
"""

from puka_asyncio.__about__ import __version__
from puka_asyncio.client import (
    MAX_CONNECTS_IN_FLIGHT,
    AsyncClient,
    ConsumeHandle,
    PromiseFuture,
    PromiseHandle,
    connect,
)
from puka_asyncio.protocol import EngineProtocol, TransportLink

__all__ = [
    "MAX_CONNECTS_IN_FLIGHT",
    "AsyncClient",
    "ConsumeHandle",
    "EngineProtocol",
    "PromiseFuture",
    "PromiseHandle",
    "TransportLink",
    "__version__",
    "connect",
]
