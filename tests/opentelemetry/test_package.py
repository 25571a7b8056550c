"""The puka-opentelemetry package: how auto-instrumentation finds it, what it instruments."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest
from puka_opentelemetry import PukaInstrumentor, __version__

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "puka-opentelemetry"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_entry_point_names_the_instrumentor() -> None:
    import tomllib

    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (target,) = project["entry-points"]["opentelemetry_instrumentor"].values()
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is PukaInstrumentor
    assert "puka" in project["entry-points"]["opentelemetry_instrumentor"]
    # puka-core is what it instruments, and never depends on OpenTelemetry itself
    assert any(dep.startswith("puka-core") for dep in project["dependencies"])
    core = tomllib.loads((ROOT / "packages/puka-core/pyproject.toml").read_text(encoding="utf-8"))
    assert not [d for d in core["project"]["dependencies"] if "opentelemetry" in d]


def test_installed_it_is_found_by_auto_instrumentation() -> None:
    try:
        distribution = importlib.metadata.distribution("puka-opentelemetry")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("puka-opentelemetry is not installed (only on the path)")
    (entry_point,) = [
        ep for ep in distribution.entry_points if ep.group == "opentelemetry_instrumentor"
    ]
    assert entry_point.name == "puka" and entry_point.load() is PukaInstrumentor
    assert distribution.version == __version__


def test_it_instruments_puka_core() -> None:
    (requirement,) = PukaInstrumentor().instrumentation_dependencies()
    assert requirement.startswith("puka-core")
    assert PukaInstrumentor() is PukaInstrumentor()  # one instrumentor per process
