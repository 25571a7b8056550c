"""The engine modules import no I/O, clock or threading module, directly or through each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "packages" / "puka-core" / "src" / "puka"
FORBIDDEN = {"socket", "select", "selectors", "ssl", "time", "threading", "asyncio"}
# The engine and everything it imports; client.py, drive.py and socket_wait.py are the blocking
# driver.
ENGINE_MODULES = [
    "engine",
    "api",
    "arguments",
    "channels",
    "channel_states",
    "connection_states",
    "operations",
    "publisher",
    "promises",
    "results",
    "messages",
    "errors",
    "urls",
    "recovery",
    "replay",
    "topology",
    "frame_log",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
            if node.module == "puka":
                found.update(f"puka.{alias.name}" for alias in node.names)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("puka."):
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_module_imports_no_io(module: str) -> None:
    imports = _imports(SRC / f"{module}.py")
    assert not imports & FORBIDDEN, f"puka/{module}.py imports {imports & FORBIDDEN}"
    internal = {i.split(".", 1)[1] for i in imports if i.startswith("puka.")}
    assert internal <= {*ENGINE_MODULES, "__about__"}, f"{module} imports driver code {internal}"


def test_every_module_is_classified() -> None:
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__about__"}
    assert modules - set(ENGINE_MODULES) == {"client", "drive", "socket_wait", "tls"}
