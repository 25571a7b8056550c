"""Version of the puka-anyio package."""

__version__ = "0.1.0"
