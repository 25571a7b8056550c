"""The code blocks of the documentation that the tests run.

A block is runnable when the line before its opening fence is exactly ``<!-- runnable -->``
(indented like the fence, inside tabs or admonitions too), and the fence is ``python``:

    <!-- runnable -->
    ```python title="hello.py"
    import puka
    client = puka.Client("amqp://guest:guest@localhost/")
    ...
    ```

A runnable block is a whole program. It connects to ``amqp://guest:guest@localhost/`` (or to
another virtual host on that server, ``amqp://guest:guest@localhost/other``); the tests point
that URL at the broker under test. It must finish on its own in a few seconds, and delete what
it declares (exclusive queues are simplest). Code that is not marked is not run: keep such
blocks short, and put anything longer in ``examples/`` and include it with snippets, fenced
``{.python}`` so that ruff, which formats ``python`` blocks in Markdown, leaves the include
line alone. Runnable blocks are ``python`` fences, so ``ruff format`` keeps them formatted.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MARKER = "<!-- runnable -->"
DOCS_URL = "amqp://guest:guest@localhost/"
"""The broker URL runnable blocks use."""


@dataclass(frozen=True)
class Block:
    """One runnable code block."""

    path: Path
    line: int  # of the opening fence, 1-based
    title: str
    code: str

    def with_broker(self, amqp_url: str) -> str:
        """The code, talking to `amqp_url` instead of `DOCS_URL`."""
        code = self.code.replace(DOCS_URL, amqp_url.rstrip("/") + "/")
        parts = urlsplit(amqp_url)
        server = f"{parts.scheme}://{parts.netloc}"
        return code.replace(DOCS_URL.rstrip("/"), server)  # other virtual hosts, same server


class MalformedBlock(ValueError):
    """A runnable marker that is not followed by a closed ``python`` fence."""


def blocks_in(path: Path) -> list[Block]:
    """The runnable blocks of one Markdown file."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        indent = line[: len(line) - len(line.lstrip())]
        where = f"{path}:{index + 1}"
        if index + 1 >= len(lines):
            raise MalformedBlock(f"{where}: {MARKER} ends the file")
        fence = lines[index + 1]
        if not fence.startswith(indent + "```python"):
            raise MalformedBlock(f"{where}: {MARKER} must be followed by a ```python fence")
        title = ""
        if 'title="' in fence:
            title = fence.split('title="', 1)[1].split('"', 1)[0]
        body = []
        for end in range(index + 2, len(lines)):
            if lines[end].strip() == "```" and lines[end].startswith(indent + "```"):
                break
            body.append(lines[end])
        else:
            raise MalformedBlock(f"{where}: the code block is never closed")
        code = textwrap.dedent("\n".join(body)) + "\n"
        found.append(Block(path, index + 2, title, code))
    return found


def all_blocks(docs: Path) -> list[Block]:
    """Every runnable block under `docs`, in file order."""
    return [block for path in sorted(docs.rglob("*.md")) for block in blocks_in(path)]
