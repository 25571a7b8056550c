"""Version of the puka-spec package."""

__version__ = "0.1.0"
