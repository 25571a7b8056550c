"""puka-asyncio: the asyncio adapter over Puka's sans-I/O engine (in development)."""

from puka_asyncio.__about__ import __version__

__all__ = ["__version__"]
