"""puka-cli: the `puka` command for RabbitMQ, built on puka-core.

Run it as `puka …` or `python -m puka_cli …`; in Python, `puka_cli.__main__.main(argv)` runs a
command line in process and returns its exit status. `puka_cli.reference.markdown()` renders
the command reference.
"""

from puka_cli.__about__ import __version__

__all__ = ["__version__"]
