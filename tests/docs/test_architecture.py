"""The architecture page names the modules that exist, and every module of the engine and the
drivers is on it: the map stays true when the code moves."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "library-authors" / "architecture.md"
SOURCES = {
    "puka": ROOT / "packages" / "puka-core" / "src" / "puka",
    "puka_asyncio": ROOT / "packages" / "puka-asyncio" / "src" / "puka_asyncio",
    "puka_anyio": ROOT / "packages" / "puka-anyio" / "src" / "puka_anyio",
}
# a module as the page writes it: `puka/engine/timers.py`, `puka_asyncio/protocol.py`
NAMED = re.compile(r"\b((?:puka|puka_asyncio|puka_anyio)(?:/\w+)*/\w+\.py)\b")


def _named() -> set[str]:
    return set(NAMED.findall(PAGE.read_text()))


def _existing() -> set[str]:
    found = set()
    for package, source in SOURCES.items():
        for path in source.rglob("*.py"):
            found.add(f"{package}/{path.relative_to(source).as_posix()}")
    return found


def test_every_module_the_page_names_exists() -> None:
    missing = _named() - _existing()
    assert not missing, f"architecture.md names modules that do not exist: {sorted(missing)}"


def test_every_module_is_on_the_page() -> None:
    # package markers and version files say nothing about the architecture
    unnamed = {
        name
        for name in _existing() - _named()
        if not name.endswith(("/__init__.py", "/__about__.py"))
    }
    assert not unnamed, f"architecture.md does not place: {sorted(unnamed)}"


def test_the_page_is_in_the_site() -> None:
    assert "library-authors/architecture.md" in (ROOT / "mkdocs.yml").read_text()
