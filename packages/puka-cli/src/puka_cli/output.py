"""What commands print: messages and results in the `text`, `json`, `jsonl` or `raw` format.

- `text` (the default): for people. A message is a header line with where it came from, its
  properties and headers, then its body (binary bodies as base64, marked as such).
- `json`: each message or result as an indented JSON document.
- `jsonl`: each message or result as one line of JSON: the message schema of
  `puka_cli.messages` (what `restore` reads back).
- `raw`: message bodies exactly as they are, nothing else (add `--separator` to split them);
  other results as in `text`.

Everything goes to the binary stdout (`sys.stdout.buffer`), written through and flushed per
message, so that a message is on its way before it is acknowledged.
"""

from __future__ import annotations

import base64
import datetime
import json
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from puka_cli.messages import PROPERTIES

__all__ = ["FORMATS", "Output", "Progress", "is_terminal", "json_dumps"]

FORMATS = ("text", "json", "jsonl", "raw")
"""The values of `-F/--format`."""


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is a terminal (False for files, pipes, and streams without `isatty`)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # closed, or detached
        return False


def json_dumps(data: Any, *, indent: bool = False) -> str:
    """JSON text the way `puka` writes it: UTF-8 kept, no NaN (values are tagged instead)."""
    if indent:
        return json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _binary(stream: IO[str] | IO[bytes]) -> IO[bytes]:
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return buffer  # type: ignore[no-any-return]
    return _TextAsBinary(stream)  # type: ignore[arg-type,return-value]


class _TextAsBinary:
    """A text stream without `.buffer` (a StringIO in a test) seen as a binary one."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(data.decode("utf-8", "backslashreplace"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()


class Output:
    """The command's standard output in one of `FORMATS`."""

    def __init__(self, fmt: str = "text", stream: IO[Any] | None = None) -> None:
        self.format = fmt
        text_stream = sys.stdout if stream is None else stream
        self._text = text_stream
        self.stream: IO[bytes] = _binary(text_stream)
        self.separator = b""
        self.count = 0

    @property
    def is_json(self) -> bool:
        """Whether results are written as JSON (`json` or `jsonl`)."""
        return self.format in ("json", "jsonl")

    def write(self, data: bytes) -> None:
        """Write bytes and flush them."""
        self._text.flush()
        self.stream.write(data)
        self.stream.flush()

    def line(self, text: str) -> None:
        """Write one line of text."""
        self.write(text.encode("utf-8", "backslashreplace") + b"\n")

    def message(self, record: Mapping[str, Any], body: bytes) -> None:
        """Write one message: `record` in the JSON schema, `body` its body bytes (for raw)."""
        self.count += 1
        if self.format == "raw":
            self.write(body + self.separator)
        elif self.format == "jsonl":
            self.line(json_dumps(record))
        elif self.format == "json":
            self.line(json_dumps(record, indent=True))
        else:
            self.write(format_message_text(record, body).encode("utf-8", "backslashreplace"))

    def result(self, data: Any, text: str | None = None) -> None:
        """Write a command's result: JSON in json/jsonl, else `text` (if there is any)."""
        if self.format == "jsonl":
            self.line(json_dumps(data))
        elif self.format == "json":
            self.line(json_dumps(data, indent=True))
        elif text is not None:
            self.line(text)


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json_dumps(value)


def format_message_text(record: Mapping[str, Any], body: bytes) -> str:
    """A message for people: where it came from, properties, headers, body, a blank line."""
    where = []
    for key in ("queue", "exchange", "routing_key", "delivery_tag", "message_count"):
        if key in record:
            where.append(
                f"{key}={record[key]!r}" if isinstance(record[key], str) else f"{key}={record[key]}"
            )
    if record.get("redelivered"):
        where.append("redelivered")
    lines = ["--- message" + (" " + " ".join(where) if where else "")]
    properties = record.get("properties") or {}
    for name in PROPERTIES:
        if name in properties:
            value = properties[name]
            shown = str(value)
            if name == "timestamp" and isinstance(value, int):
                try:
                    stamp = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
                    shown = f"{value} ({stamp.isoformat().replace('+00:00', 'Z')})"
                except (OverflowError, OSError, ValueError):
                    pass
            lines.append(f"{name}: {shown}")
    for key, value in (record.get("headers") or {}).items():
        lines.append(f"header {key}: {_text_value(value)}")
    if record.get("body_encoding") == "base64":
        lines.append(f"body: {len(body)} bytes of binary data, base64:")
        encoded = base64.b64encode(body).decode("ascii")
        lines.extend(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    else:
        lines.append("")
        lines.append(body.decode("utf-8"))
    return "\n".join(lines) + "\n\n"


class Progress:
    """A progress line on stderr, shown only when stderr is a terminal (or when forced)."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self.label = label
        self.total = total
        self.done = 0
        self.interval = interval
        self._started = time.monotonic()
        self._shown = 0.0
        self._width = 0

    def update(self, done: int, *, force: bool = False) -> None:
        """Record progress; redraw the line at most every `interval` seconds."""
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._shown < self.interval:
            return
        self._shown = now
        elapsed = max(now - self._started, 1e-9)
        count = f"{done}/{self.total}" if self.total is not None else str(done)
        text = f"{self.label}: {count} ({done / elapsed:.0f}/s)"
        pad = " " * max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + pad)
        self.stream.flush()

    def advance(self, by: int = 1) -> None:
        """Add `by` to the count done."""
        self.update(self.done + by)

    def finish(self) -> None:
        """Erase the progress line."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
