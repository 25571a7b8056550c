"""The generated CLI reference and completion scripts cover every command."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from puka_cli.cli_tree import walk
from puka_cli.commands.completion import bash_script, zsh_script
from puka_cli.options import build_parser
from puka_cli.reference import markdown

EXPECTED_COMMANDS = {
    "publish",
    "consume",
    "get",
    "tap",
    "rpc call",
    "rpc serve",
    "dump",
    "restore",
    "shovel",
    "purge",
    "declare queue",
    "declare exchange",
    "bind queue",
    "bind exchange",
    "unbind queue",
    "unbind exchange",
    "delete queue",
    "delete exchange",
    "stat queue",
    "stat exchange",
    "topology apply",
    "perf",
    "ping",
    "completion",
}


def _leaves() -> list[tuple[str, list[str]]]:
    return [
        (" ".join(c.path), [f for o in c.options if not o.is_global for f in o.flags])
        for c in walk(build_parser())
        if c.path and not c.subcommands
    ]


def test_the_issue_commands_all_exist() -> None:
    assert {name for name, _ in _leaves()} == EXPECTED_COMMANDS


def test_reference_covers_every_subcommand_and_option() -> None:
    text = markdown()
    for command in walk(build_parser()):
        if command.path:
            assert f"`puka {' '.join(command.path)}`" in text
    for name, flags in _leaves():
        section = text.split(f"`puka {name}`\n", 1)[1].split("\n#", 1)[0]
        for flag in flags:
            assert f"`{flag}" in section or f" {flag}" in section, (name, flag)
    for global_flag in ("--url", "--format", "--heartbeat", "--connect-timeout", "--cacert"):
        assert global_flag in text
    assert "Global options (-u URL" not in text  # the per-command note is left out


def test_reference_markdown_is_well_formed() -> None:
    text = markdown()
    assert text.startswith("# `puka` command reference\n")
    assert text.count("```") % 2 == 0
    for line in text.splitlines():
        if line.startswith("| `"):
            assert line.count(" | ") >= 1 and line.endswith(" |")


def test_bash_completion_script() -> None:
    script = bash_script()
    assert "complete -o default -F _puka puka" in script
    for name in ("publish", "shovel", "topology", "perf"):
        assert name in script
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    subprocess.run([bash, "-n"], input=script.encode(), check=True)
    probe = (
        script
        + '\nCOMP_WORDS=(puka declare q); COMP_CWORD=2; _puka; echo "${COMPREPLY[@]}"'
        + '\nCOMP_WORDS=(puka consume x --ack-mode r); COMP_CWORD=4; _puka; echo "${COMPREPLY[@]}"'
    )
    out = subprocess.run([bash, "-c", probe], capture_output=True, check=True, text=True)
    assert out.stdout.splitlines() == ["queue", "reject requeue"]


def test_zsh_completion_script() -> None:
    script = zsh_script()
    assert script.startswith("#compdef puka\n")
    assert "'declare:declare a queue or an exchange'" in script
    zsh = shutil.which("zsh")
    if zsh is not None:
        subprocess.run([zsh, "-n"], input=script.encode(), check=True)
