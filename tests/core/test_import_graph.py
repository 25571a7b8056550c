"""The modules of `puka` import each other without a circle.

Every import counts: at the top of a module, under `if TYPE_CHECKING:`, inside a function. An
import names a module of the package (`from puka.engine import channels` names
`puka.engine.channels`; `from puka.engine import Engine` names `puka.engine`). A package's
`__init__` is a module like any other; that importing `puka.x` runs `puka/__init__.py` first
is not an edge (else every package that re-exports its modules would be a circle).

The engine's parts never import `puka.engine.connection`, which is made of them: each says in
a `typing.Protocol` what it needs of the engine (see `puka.engine.link`).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "packages" / "puka-core" / "src"
PACKAGE = SRC / "puka"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imported(name: str, node: ast.ImportFrom | ast.Import, alias: ast.alias) -> str | None:
    """The module of the package that `alias` of import `node` in module `name` names."""
    if isinstance(node, ast.Import):
        target = alias.name
    else:
        base = node.module or ""
        if node.level:  # relative: from the package of `name`
            package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        submodule = f"{base}.{alias.name}"
        target = submodule if submodule in MODULES else base
    while target and target not in MODULES:  # `import puka.x.y` of a name in puka.x
        target = target.rpartition(".")[0]
    return target or None


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of the package it imports (every import, wherever it is)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    target = _imported(name, node, alias)
                    if target is not None and target != name:
                        edges.add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each group of modules that import each other (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(_circle_in(graph, set(group)))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A path that comes back to where it started, within `group`."""
    start = min(group)
    path = [start]
    seen = {start}
    while True:
        following = sorted(graph[path[-1]] & group)
        if start in following and len(path) > 1:
            return [*path, start]
        step = next((module for module in following if module not in seen), start)
        if step == start:
            return [*path, start]
        path.append(step)
        seen.add(step)


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "puka.engine.connection" in graph["puka.engine"]
    assert "puka.engine.link" in graph["puka.engine.channels"]
    assert "puka.engine.channels" in graph["puka.results"]  # a TYPE_CHECKING import
    assert "puka.urls" in graph["puka.engine.connection"]  # `from puka import urls`


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_puka_imports_itself_in_a_circle() -> None:
    found = circles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_engines_parts_do_not_import_the_engine() -> None:
    graph = import_graph()
    importers = sorted(name for name, edges in graph.items() if "puka.engine.connection" in edges)
    assert importers == ["puka.engine"]
