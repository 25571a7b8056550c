"""The generated parts of the documentation say what the code says (no mkdocs needed)."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path

import puka
import puka.urls
import pytest
from puka.errors import PukaError
from puka_spec.exceptions import ERRORS, HardError, SoftError

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "docs" / "_hooks" / "puka_docs.py"


@pytest.fixture(scope="module")
def hook() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("puka_docs_under_test", HOOK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_error_table_has_every_reply_code(hook: types.ModuleType) -> None:
    table = hook.errors_table()
    for code, cls in ERRORS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| {code} |"))
        assert f"[`{cls.__name__}`]" in row
        assert ("| soft |" in row) == issubclass(cls, SoftError)
        assert ("**hard**" in row) == issubclass(cls, HardError)
        constant, cause = hook._reply_code_parts(cls)
        assert constant, f"{cls.__name__}'s docstring must start '{code} CONSTANT: cause'"
        assert f"`{constant}`" in row
        assert cause
        assert cause.replace("|", "\\|") in row


def test_other_errors_cover_every_exported_client_error(hook: types.ModuleType) -> None:
    table = hook.other_errors_table()
    for name in puka.__all__:
        obj = getattr(puka, name)
        # (PukaError is the root of all since issue 19: the reply-code classes have their table)
        if isinstance(obj, type) and issubclass(obj, PukaError) and obj not in ERRORS.values():
            if name == obj.__name__:
                assert f"[`{name}`]" in table
            else:  # an alias (AMQPSoftError): named in its class's row, not a row of its own
                assert f"(alias `{name}`)" in table
                assert table.count(f"[`{obj.__name__}`]") == 1


def test_url_page_documents_every_query_parameter(hook: types.ModuleType) -> None:
    text = hook.urls_reference()
    terms = [line for line in text.splitlines() if line.startswith("``")]
    documented = {name for term in terms for name in re.findall(r"``(\w+)``", term)}
    accepted = set(puka.urls._QUERY_PARAMETERS)
    assert accepted <= documented, f"undocumented query parameters: {accepted - documented}"


def test_url_page_has_no_leftover_restructuredtext(hook: types.ModuleType) -> None:
    text = hook.urls_reference()
    assert not re.search(r"::$", text, re.MULTILINE)
    assert ":func:" not in text
    assert ":class:" not in text
    assert "`_" not in text
    assert not re.search(r"^={3,}$", text, re.MULTILINE)
    assert "```pycon" in text  # the doctests became code blocks


def test_rst_conversion(hook: types.ModuleType) -> None:
    text = "Title\n=====\n\nSee :func:`parse_url` and `docs <https://x.example>`_::\n\n    code()\n"
    assert hook.rst_to_markdown(text) == (
        "## Title\n\nSee `parse_url` and [docs](https://x.example):\n\n```python\ncode()\n```\n"
    )
    google = "Args:\n    url: The URL.\n"
    assert hook.rst_to_markdown(google, definition_lists=False) == google


def test_cli_page_generated_from_the_cli(
    hook: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("puka_cli.reference")
    fake.markdown = lambda: "## puka publish\n\nPublish a message."  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "puka_cli.reference", fake)
    text = hook.cli_reference()
    assert text.startswith("# The `puka` command\n")
    assert "## puka publish" in text


def test_cli_page_placeholder_while_the_module_is_missing(
    hook: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "puka_cli.reference", None)  # importing it fails
    assert hook.cli_reference() == hook.CLI_PLACEHOLDER


def test_cli_page_fails_when_the_module_is_broken(
    hook: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    def import_module(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'yaml'", name="yaml")

    monkeypatch.setattr(hook, "importlib", types.SimpleNamespace(import_module=import_module))
    with pytest.raises(ModuleNotFoundError, match="yaml"):
        hook.cli_reference()


def test_cli_page_escapes_usage_brackets_in_prose(hook: types.ModuleType) -> None:
    text = (
        "Usage: 'puka rpc [OPTIONS] [BODY]', see [`call`](#call) or `[a] [b]`.\n```\n[x] [y]\n```"
    )
    assert hook.escape_brackets(text) == (
        "Usage: 'puka rpc \\[OPTIONS\\] \\[BODY\\]', see [`call`](#call) or `[a] [b]`.\n"
        "```\n[x] [y]\n```"
    )


def test_changelogs_include_every_package(hook: types.ModuleType) -> None:
    text = hook.changelogs()
    for path in (ROOT / "packages").glob("*/CHANGELOG.md"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert "#" + first in text  # each heading one level down


def test_unknown_marker_fails(hook: types.ModuleType) -> None:
    page = types.SimpleNamespace(file=types.SimpleNamespace(src_uri="x.md"))
    with pytest.raises(Exception, match="unknown marker puka:nope"):
        hook.on_page_markdown("<!-- puka:nope -->\n", page, None, None)
    assert hook.on_page_markdown("text\n", page, None, None) == "text\n"
