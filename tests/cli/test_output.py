"""Output formats and the progress line."""

from __future__ import annotations

import io
import json

import pytest
from puka_cli.messages import record_from_result
from puka_cli.output import Output, Progress

DELIVERY = {
    "exchange": "ex",
    "routing_key": "rk",
    "redelivered": True,
    "delivery_tag": 1,
    "body": b"caf\xc3\xa9",
    "headers": {"content_type": "text/plain", "timestamp": 0, "n": 1},
}


def _render(fmt: str, body: bytes = b"caf\xc3\xa9") -> bytes:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    output = Output(fmt, stream)
    delivery = dict(DELIVERY, body=body)
    output.message(record_from_result(delivery), body)
    return stream.buffer.getvalue()  # type: ignore[attr-defined,no-any-return,unused-ignore]


def test_raw_is_the_body_exactly() -> None:
    assert _render("raw", b"\x00\xffbytes") == b"\x00\xffbytes"


def test_jsonl_is_one_line_of_the_schema() -> None:
    data = _render("jsonl")
    assert data.count(b"\n") == 1
    record = json.loads(data)
    assert record["body"] == "café"
    assert record["properties"] == {"content_type": "text/plain", "timestamp": 0}


def test_json_is_indented() -> None:
    data = _render("json")
    assert data.startswith(b"{\n  ")
    assert json.loads(data)["headers"] == {"n": 1}


def test_text_shows_where_properties_headers_body() -> None:
    text = _render("text").decode()
    assert text.startswith("--- message exchange='ex' routing_key='rk' delivery_tag=1 redelivered")
    assert "content_type: text/plain" in text
    assert "timestamp: 0 (1970-01-01T00:00:00Z)" in text
    assert "header n: 1" in text
    assert text.endswith("\ncafé\n\n")


def test_text_shows_binary_bodies_as_base64() -> None:
    text = _render("text", b"\xff\xfe").decode()
    assert "2 bytes of binary data, base64:\n//4=" in text


def test_results_in_each_format() -> None:
    for fmt, expected in (
        ("jsonl", b'{"a":1}\n'),
        ("json", b'{\n  "a": 1\n}\n'),
        ("text", b"one\n"),
        ("raw", b"one\n"),
    ):
        stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        Output(fmt, stream).result({"a": 1}, "one")
        assert stream.buffer.getvalue() == expected  # type: ignore[attr-defined,unused-ignore]


def test_output_to_a_stream_without_buffer() -> None:
    stream = io.StringIO()
    Output("raw", stream).write(b"ok\n")
    assert stream.getvalue() == "ok\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    quiet = io.StringIO()
    progress = Progress("dumping", 10, stream=quiet)
    progress.update(5, force=True)
    progress.finish()
    assert quiet.getvalue() == ""

    tty = _Tty()
    progress = Progress("dumping", 10, stream=tty)
    progress.update(5, force=True)
    assert "\rdumping: 5/10" in tty.getvalue()
    progress.finish()
    assert tty.getvalue().endswith("\r")


@pytest.mark.parametrize("fmt", ["text", "json", "jsonl", "raw"])
def test_every_format_writes_something(fmt: str) -> None:
    assert _render(fmt)
