"""puka-cli: the `puka` command (in development)."""

from puka_cli.__about__ import __version__

__all__ = ["__version__"]
