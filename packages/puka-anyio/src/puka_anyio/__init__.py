"""puka-anyio: Puka's calls, awaitable on trio or asyncio through AnyIO, over the same sans-I/O
engine as `puka.Client` (`async with puka_anyio.connect(url) as client: ...`). Exceptions,
results and URLs are the blocking client's: import them from `puka`."""

from puka_anyio.__about__ import __version__
from puka_anyio.client import Client, Connecting, connect
from puka_anyio.handles import ConsumeHandle, PromiseHandle

__all__ = ["Client", "Connecting", "ConsumeHandle", "PromiseHandle", "__version__", "connect"]
