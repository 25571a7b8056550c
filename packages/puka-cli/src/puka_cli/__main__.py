"""Entry point of the `puka` command (in development: only `--version` so far)."""

from __future__ import annotations

import argparse
import sys

from puka_cli.__about__ import __version__


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="puka", description="Puka's AMQP command line.")
    parser.add_argument("--version", action="version", version=f"puka-cli {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
