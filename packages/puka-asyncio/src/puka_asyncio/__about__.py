"""Version of the puka-asyncio package."""

__version__ = "0.1.0"
