"""puka-anyio is a driver written only against the documented engine API.

It imports nothing private of puka-core and nothing that `docs/library-authors/engine.md` does
not document, and stays under 600 lines: the page's claim that a driver is small and needs
nothing else is checked here, not just made.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import puka
from puka.api import Calls

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages/puka-anyio/src/puka_anyio"
ENGINE_PAGE = ROOT / "docs/library-authors/engine.md"


def _imports() -> list[tuple[str, str, str]]:
    """(file, module, name) of every name puka_anyio imports from puka."""
    found: list[tuple[str, str, str]] = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "puka":
                found += [(path.name, node.module or "", alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [
                    (path.name, alias.name, "")
                    for alias in node.names
                    if alias.name.split(".")[0] == "puka"
                ]
    return found


def _problems(imports: list[tuple[str, str, str]], page: str) -> list[str]:
    """Why each import is not allowed: private, or not documented (a name of `puka` itself
    must be in `puka.__all__`; one of a module of it must be on the engine page in full)."""
    problems = []
    for file, module, name in imports:
        if any(part.startswith("_") for part in (*module.split("."), name) if part):
            problems.append(f"{file}: {module}.{name} is private")
        elif module == "puka":
            if name not in puka.__all__:
                problems.append(f"{file}: puka.{name} is not in puka.__all__")
        elif not name or f"{module}.{name}" not in page:
            problems.append(f"{file}: {module}.{name} is not on {ENGINE_PAGE.name}")
    return problems


def test_the_driver_imports_only_documented_public_names() -> None:
    imports = _imports()
    assert imports, "puka_anyio imports nothing from puka: the check would look at nothing"
    problems = _problems(imports, ENGINE_PAGE.read_text())
    assert not problems, "\n".join(problems)


def test_private_and_undocumented_imports_are_caught() -> None:
    page = ENGINE_PAGE.read_text()
    caught = _problems(
        [
            ("x.py", "puka.engine", "_Table"),
            ("x.py", "puka._private", "thing"),
            ("x.py", "puka.arguments", "check_bool"),
            ("x.py", "puka", "Channel"),
            ("x.py", "puka.engine", ""),  # import puka.engine: the module itself
        ],
        page,
    )
    assert len(caught) == 5, caught
    assert _problems([("x.py", "puka.driver", "run_timer"), ("x.py", "puka", "Result")], page) == []


def test_what_the_driver_takes_from_calls_is_on_the_engine_page() -> None:
    """The underscored hooks of `puka.api.Calls` that the driver uses or overrides are
    documented there too (`_engine`, `_wrap`, `_sent`, `_owner`, ...)."""
    source = "\n".join(path.read_text() for path in sorted(PACKAGE.glob("*.py")))
    used = set(re.findall(r"self\.(_\w+)", source)) | set(re.findall(r"def (_\w+)\(", source))
    hooks = {
        name
        for name in used
        if not name.startswith("__") and (hasattr(Calls, name) or name in Calls.__annotations__)
    }
    assert {"_engine", "_wrap", "_sent"} <= hooks
    page = ENGINE_PAGE.read_text()
    undocumented = sorted(name for name in hooks if not re.search(rf"[`.]{name}\b", page))
    assert not undocumented, f"{ENGINE_PAGE.name} does not document {undocumented}"


def test_the_driver_is_under_600_lines() -> None:
    lines = sum(len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py"))
    assert lines < 600, f"puka_anyio is {lines} lines"
