"""MkDocs hook: pages whose content comes from the code, generated at every build.

A page asks for generated content with a marker comment on a line of its own,
``<!-- puka:NAME -->``; `on_page_markdown` replaces it before the page is rendered, so the
generated headings reach the table of contents and the search index. The markers:

- ``errors``: every reply code in `puka_spec.exceptions.ERRORS` (code, constant, exception class,
  soft or hard, the usual cause from the class docstring).
- ``other-errors``: the exceptions `puka` exports that have no reply code.
- ``cli``: `puka_cli.reference.markdown()`, or a short placeholder while that module does not
  exist.
- ``urls``: the documentation of `puka.urls` (its module docstring), turned from its
  reStructuredText-like markup into Markdown.
- ``changelogs``: every ``packages/*/CHANGELOG.md``, headings shifted one level down.

An unknown marker fails the build. The functions are importable (`tests/docs` uses them).
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- puka:([a-z-]+) -->$", re.MULTILINE)
PACKAGE_ORDER = ["puka-spec", "puka-core", "puka-asyncio", "puka-cli", "puka-opentelemetry"]


# ---------------------------------------------------------------------------------------------
# The hook
# ---------------------------------------------------------------------------------------------


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- puka:NAME -->`` marker with what `GENERATORS[NAME]` returns."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        generator = GENERATORS.get(name)
        if generator is None:
            known = ", ".join(sorted(GENERATORS))
            raise _build_error(f"{page.file.src_uri}: unknown marker puka:{name} (known: {known})")
        return generator()

    return MARKER.sub(replace, markdown)


def _build_error(message: str) -> Exception:
    """mkdocs' error for a plugin that fails the build (a plain one outside a build)."""
    try:
        from mkdocs.exceptions import PluginError  # noqa: PLC0415 - only in a build
    except ImportError:
        return RuntimeError(message)
    return PluginError(message)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _reply_code_parts(cls: type) -> tuple[str, str]:
    """(constant, usual cause) from a docstring like ``404 NOT_FOUND: The queue ...``."""
    doc = inspect.getdoc(cls) or ""
    match = re.match(r"\d+ ([A-Z_]+): (.*)", doc, re.DOTALL)
    if match is None:
        return "", " ".join(doc.split())
    return match.group(1), " ".join(match.group(2).split())


def errors_table() -> str:
    """The reply-code table, from `puka_spec.exceptions.ERRORS`."""
    from puka_spec.exceptions import ERRORS, SoftError  # noqa: PLC0415

    rows = [
        "| Code | Exception | Scope | Usual cause |",
        "|---:|---|---|---|",
    ]
    for code, cls in sorted(ERRORS.items()):
        constant, cause = _reply_code_parts(cls)
        scope = "soft" if issubclass(cls, SoftError) else "**hard**"
        link = f"[`{cls.__name__}`][puka_spec.exceptions.{cls.__name__}]"
        rows.append(f"| {code} | {link}<br>`{constant}` | {scope} | {_cell(cause)} |")
    return "\n".join(rows) + "\n"


def other_errors_table() -> str:
    """The exceptions exported by `puka` that carry no reply code, with their bases."""
    import puka  # noqa: PLC0415
    from puka_spec.exceptions import ERRORS  # noqa: PLC0415

    coded = set(ERRORS.values())
    aliases: dict[type, list[str]] = {}  # class → its other names (Puka 0.0.8's)
    for name in puka.__all__:
        obj = getattr(puka, name)
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj not in coded:
            names = aliases.setdefault(obj, [])
            if name != obj.__name__:
                names.append(name)
    # bases first, then by name
    classes = sorted(aliases, key=lambda cls: (len(cls.__mro__), cls.__name__))
    rows = ["| Exception | Is a | Meaning |", "|---|---|---|"]
    for cls in classes:
        bases = ", ".join(f"`{base.__name__}`" for base in cls.__bases__)
        doc = (inspect.getdoc(cls) or "").split("\n\n")[0]
        also = "".join(f"<br>(alias `{alias}`)" for alias in aliases[cls])
        rows.append(f"| [`{cls.__name__}`][{_api_path(cls)}]{also} | {bases} | {_cell(doc)} |")
    return "\n".join(rows) + "\n"


def _api_path(cls: type) -> str:
    """Where the API pages document `cls` (the identifier autorefs resolves)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# ---------------------------------------------------------------------------------------------
# The CLI
# ---------------------------------------------------------------------------------------------

CLI_PLACEHOLDER = """\
# The `puka` command

!!! note "Being written"
    The `puka` command (package puka-cli) is in development. This page is generated from its
    code (`puka_cli.reference.markdown()`) once that exists; until then, `puka --help` lists
    what is there.
"""


def cli_reference() -> str:
    """`puka_cli.reference.markdown()`, or the placeholder while the module does not exist."""
    try:
        reference = importlib.import_module("puka_cli.reference")
    except ModuleNotFoundError as error:
        if error.name not in ("puka_cli", "puka_cli.reference"):
            raise  # the module exists but is broken: fail the build
        return CLI_PLACEHOLDER
    text = escape_brackets(str(reference.markdown()).strip()) + "\n"
    if not text.startswith("# "):
        text = "# The `puka` command\n\n" + text
    return text


_CODE_SPAN = re.compile(r"(`+)(?:.*?)\1")
_BRACKETS = re.compile(r"(?<!\\)\[([^\[\]]*)\](?![(\[:])")


def escape_brackets(markdown: str) -> str:
    """Escape ``[WORDS]`` in prose (usage like ``[OPTIONS] [BODY]``), which Markdown and
    autorefs would take for reference links; code, fences and inline links are left alone."""
    out = []
    fence = None
    for line in markdown.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            mark = stripped[:3]
            fence = None if fence == mark else (fence or mark)
        elif fence is None and "[" in line:
            parts = []
            last = 0
            for span in _CODE_SPAN.finditer(line):
                parts.append(_BRACKETS.sub(r"\\[\1\\]", line[last : span.start()]))
                parts.append(span.group(0))
                last = span.end()
            parts.append(_BRACKETS.sub(r"\\[\1\\]", line[last:]))
            out.append("".join(parts))
            continue
        out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# URLs: the module docstring of puka.urls, from its reStructuredText-like markup to Markdown
# ---------------------------------------------------------------------------------------------


def urls_reference() -> str:
    """The documentation of `puka.urls`, in Markdown, without its first (summary) line."""
    import puka.urls  # noqa: PLC0415

    doc = inspect.getdoc(puka.urls) or ""
    body = doc.split("\n", 1)[1] if "\n" in doc else ""
    return rst_to_markdown(body.strip("\n"))


_RST_LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_")
_RST_ROLE = re.compile(r":(?:func|class|attr|meth|mod|exc|data|obj):`~?([^`]+)`")
_SETEXT = re.compile(r"^(=+|-+)$")


def rst_to_markdown(text: str, *, definition_lists: bool = True) -> str:
    """Convert the small reStructuredText subset the docstrings of `puka.urls` use.

    Links, roles, ``literal::`` blocks, doctest blocks, ``===`` section titles (to ``##``) and,
    with `definition_lists`, definition lists (a line, then its indented definition; off for
    docstrings with Google-style sections, which look the same). Double-backtick literals are
    valid Markdown as they are.
    """
    text = _RST_LINK.sub(r"[\1](\2)", text)
    text = _RST_ROLE.sub(r"`\1`", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if line and _SETEXT.match(following) and len(following) >= len(line.strip()):
            out.append(("## " if following[0] == "=" else "### ") + line.strip())
            i += 2
            continue
        if line.startswith(">>>"):  # a doctest block runs to the next blank line
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.extend(["```pycon", *block, "```"])
            continue
        if line.rstrip().endswith("::") and not line.startswith(" "):
            # a literal block follows: "text::" becomes "text:", the block a fence
            head = line.rstrip()[:-1]
            out.append(head if head.strip() != ":" else "")
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            block = []
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            language = "python" if "(" in code else "text"
            out.extend(["", f"```{language}", code, "```", ""])
            continue
        if definition_lists and line and not line.startswith(" ") and following.startswith("    "):
            # a definition list item: the term, then its indented definition
            out.append(line)
            i += 1
            definition = []
            while i < len(lines) and lines[i].startswith("    "):
                definition.append(lines[i][4:])
                i += 1
            out.append(":   " + definition[0])
            out.extend("    " + rest for rest in definition[1:])
            out.append("")
            continue
        out.append(line)
        i += 1
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Changelogs
# ---------------------------------------------------------------------------------------------


def changelogs() -> str:
    """Every package's CHANGELOG.md, in dependency order, headings one level down."""
    paths = sorted((ROOT / "packages").glob("*/CHANGELOG.md"))
    rank = {name: n for n, name in enumerate(PACKAGE_ORDER)}
    paths.sort(key=lambda path: (rank.get(path.parent.name, len(rank)), path.parent.name))
    parts = []
    for path in paths:
        parts.append(_shift_headings(path.read_text(encoding="utf-8")).strip() + "\n")
    return "\n".join(parts)


def _shift_headings(markdown: str) -> str:
    out = []
    fence = None
    for line in markdown.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            mark = stripped[:3]
            fence = None if fence == mark else (fence or mark)
            out.append(line)
        elif fence is None and re.match(r"#{1,5} ", line):
            out.append("#" + line)
        else:
            out.append(line)
    return "\n".join(out)


GENERATORS = {
    "errors": errors_table,
    "other-errors": other_errors_table,
    "cli": cli_reference,
    "urls": urls_reference,
    "changelogs": changelogs,
}
