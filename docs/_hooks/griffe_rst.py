"""Griffe extension: docstrings written with reStructuredText markup, rendered as Markdown.

Most of Puka's docstrings are Markdown; a few (`puka.urls`) use reStructuredText roles
(``:func:`parse_url```), links, ``literal::`` blocks and bare doctest blocks, which Markdown
would show as they are (a doctest's output can even look like a link reference). This converts
them before mkdocstrings renders the docstring; Google-style sections are left alone.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import griffe

_spec = importlib.util.spec_from_file_location(
    "puka_docs", Path(__file__).with_name("puka_docs.py")
)
assert _spec is not None
assert _spec.loader is not None
puka_docs = sys.modules.get("puka_docs") or importlib.util.module_from_spec(_spec)
if "puka_docs" not in sys.modules:
    _spec.loader.exec_module(puka_docs)


class RstDocstrings(griffe.Extension):
    """Convert reStructuredText markup in every docstring to Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is loaded."""
        docstring = obj.docstring
        if docstring is None:
            return
        value = docstring.value
        if ">>>" in value or "`_" in value or "::" in value or ":`" in value:
            docstring.value = puka_docs.rst_to_markdown(value, definition_lists=False).rstrip()
