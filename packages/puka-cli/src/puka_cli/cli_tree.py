"""The command tree read back from the argparse parsers: for the reference and completion."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, field

from puka_cli.options import GLOBAL_DESTS

__all__ = ["Command", "Option", "walk"]


@dataclass
class Option:
    """One option or positional argument of a command."""

    flags: list[str]
    dest: str
    metavar: str | None
    help: str
    choices: list[str] | None
    takes_value: bool
    required: bool
    repeatable: bool

    @property
    def positional(self) -> bool:
        """Whether it is a positional argument."""
        return not self.flags

    @property
    def is_global(self) -> bool:
        """Whether it is one of the global options every command takes."""
        return self.dest in GLOBAL_DESTS


@dataclass
class Command:
    """A command (or a group of subcommands) with its parser."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str
    options: list[Option] = field(default_factory=list)
    subcommands: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The full command line prefix, e.g. `puka declare queue`."""
        return " ".join(("puka", *self.path))


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    return text.replace("%%", "%")


def _options(parser: argparse.ArgumentParser) -> list[Option]:
    options = []
    for action in parser._actions:
        if isinstance(action, (argparse._SubParsersAction, argparse._HelpAction)):
            continue
        metavar = action.metavar if isinstance(action.metavar, str) else None
        if metavar is None and not action.option_strings:
            metavar = action.dest.upper()
        options.append(
            Option(
                flags=list(action.option_strings),
                dest=action.dest,
                metavar=metavar,
                help=_help_text(action),
                choices=[str(c) for c in action.choices] if action.choices else None,
                takes_value=action.nargs != 0,
                required=bool(action.required),
                repeatable=isinstance(action, (argparse._AppendAction, argparse._CountAction)),
            )
        )
    return options


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = ""
) -> Iterator[Command]:
    """Every command under `parser`, depth first, starting with `parser` itself."""
    command = Command(path=path, parser=parser, help=help or (parser.description or ""))
    command.options = _options(parser)
    children: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                command.subcommands.append(name)
                children.append((name, child, helps.get(name, "")))
    yield command
    for name, child, child_help in children:
        yield from walk(child, (*path, name), child_help)
