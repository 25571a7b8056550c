"""puka-anyio: Puka's calls, awaitable on trio or asyncio through AnyIO, over the same sans-I/O
engine as `puka.Client`.

    import puka_anyio

    async with puka_anyio.connect("amqp://guest:guest@localhost/") as client:
        await client.queue_declare(queue="jobs")
        await client.basic_publish(exchange="", routing_key="jobs", body=b"hello")
        async for message in client.basic_consume(queue="jobs", prefetch_count=100):
            client.basic_ack(message)
            break

Exceptions, results and URLs are the blocking client's: import them from `puka`.
"""

from puka_anyio.__about__ import __version__
from puka_anyio.client import Client, Connecting, connect
from puka_anyio.handles import ConsumeHandle, PromiseHandle

__all__ = ["Client", "Connecting", "ConsumeHandle", "PromiseHandle", "__version__", "connect"]
