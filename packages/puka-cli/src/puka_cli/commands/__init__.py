"""The commands of `puka`, one module each (a module may add a few related commands).

Each module has `register(subparsers)`, which adds its parser(s) and sets `func`, the function
that runs the command: `func(ctx: Context) -> int`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODULES", "register_all"]

MODULES = (
    "publish",
    "consume",
    "get",
    "tap",
    "rpc",
    "dump",
    "restore",
    "shovel",
    "purge",
    "declare",
    "bind",
    "delete",
    "stat",
    "topology",
    "perf",
    "ping",
    "completion",
)
"""Command modules, in the order their commands are listed in the help."""


def register_all(subparsers: Any) -> None:
    """Add every command to `subparsers`."""
    import importlib  # noqa: PLC0415

    for name in MODULES:
        module = importlib.import_module(f"puka_cli.commands.{name}")
        module.register(subparsers)
