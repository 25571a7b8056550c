"""The public API of the six packages, as data: names, signatures and public members.

`python -m tests.api.surface > tests/api/surface.json` records it; `test_public_api.py`
compares the live packages with the record, so a reshaping that changes what users can call
fails until the change is made on purpose (and the record rewritten in the same commit).
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import types
from typing import Any

PUBLIC_MODULES = [
    "puka",
    "puka.api",
    "puka.arguments",
    "puka.engine",
    "puka.errors",
    "puka.hooks",
    "puka.messages",
    "puka.promises",
    "puka.results",
    "puka.threads",
    "puka.tls",
    "puka.urls",
    "puka_spec",
    "puka_spec.constants",
    "puka_spec.exceptions",
    "puka_spec.frames",
    "puka_spec.methods",
    "puka_spec.properties",
    "puka_spec.table",
    "puka_asyncio",
    "puka_anyio",
    "puka_cli",
    "puka_opentelemetry",
]
"""The modules the API reference documents (`docs/reference/api/`), and `puka.results`."""


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(…)"


def _describe(obj: Any) -> Any:
    if inspect.isclass(obj):
        members = {}
        for name in sorted(dir(obj)):
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            member = inspect.getattr_static(obj, name)
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                members[name] = "def" + _signature(member)
            elif isinstance(member, property):
                members[name] = "property"
            else:
                members[name] = type(member).__name__
        return {"class": [base.__name__ for base in obj.__mro__[1:]], "members": members}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "def" + _signature(obj)
    return type(obj).__name__


def surface(module_name: str) -> dict[str, Any]:
    """Every public name of `module_name` (its `__all__`, else what it defines) described."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and not isinstance(value, types.ModuleType)
            and getattr(value, "__module__", module_name) == module_name
        ]
    return {name: _describe(getattr(module, name)) for name in sorted(names)}


def everything() -> dict[str, Any]:
    """The surface of every public module."""
    return {name: surface(name) for name in PUBLIC_MODULES}


if __name__ == "__main__":
    json.dump(everything(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
