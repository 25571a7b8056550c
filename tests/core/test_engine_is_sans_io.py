"""puka-core is the sans-I/O engine plus one driver, and the folders say which is which.

Driver code lives in `puka/blocking/` (the blocking client), `puka/tls.py` (what every
driver needs to open a TLS transport) and `puka/threads.py` (worker threads around the blocking
client); every other module of the package, `puka/engine/`
first, imports no I/O, clock or threading module, directly or through the driver code.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "packages" / "puka-core" / "src" / "puka"
FORBIDDEN = {"socket", "select", "selectors", "ssl", "time", "threading", "asyncio"}
DRIVER_FOLDERS = {"blocking"}
DRIVER_MODULES = {"tls", "threads"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_driver(name: str) -> bool:
    parts = name.split(".")[1:]
    return bool(parts) and (parts[0] in DRIVER_FOLDERS or parts[0] in DRIVER_MODULES)


SANS_IO = sorted(name for name in map(_module_name, SRC.rglob("*.py")) if not _is_driver(name))


def _imports(path: Path) -> set[str]:
    """What `path` imports at run time (not what it names for the type checker only)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name.split(".")[0])
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _path(name: str) -> Path:
    relative = Path(*name.split(".")[1:])
    package = SRC / relative / "__init__.py"
    return package if package.exists() else SRC / relative.with_suffix(".py")


def test_the_engine_folder_is_there() -> None:
    assert "puka.engine.connection" in SANS_IO
    assert "puka.engine" in SANS_IO


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_module_imports_no_io(module: str) -> None:
    imports = _imports(_path(module))
    assert not imports & FORBIDDEN, f"{module} imports {imports & FORBIDDEN}"
    driver = {name for name in imports if name.startswith("puka.") and _is_driver(name)}
    assert not driver, f"{module} imports driver code {driver}"


def test_importing_the_engine_loads_no_io_module() -> None:
    """Not only its own imports: `import puka.engine` runs `puka/__init__.py` first."""
    code = (
        "import sys, puka.engine, puka\n"
        "print(sorted(m for m in ('socket', 'ssl', 'selectors', 'select', 'asyncio')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_blocking_client_is_there_on_first_use() -> None:
    code = "import puka, sys; puka.Client; print('socket' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "True"


def test_puka_threads_is_there_on_first_use() -> None:
    """`import puka` then `puka.threads....`, as the docs write it; not loaded before."""
    code = (
        "import puka, sys; before = 'puka.threads' in sys.modules; "
        "print(before, puka.threads.consume_in_pool.__name__, 'threads' in dir(puka))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False consume_in_pool True"
