"""Version of the puka-core package."""

__version__ = "0.1.0"
