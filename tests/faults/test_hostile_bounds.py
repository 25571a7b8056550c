"""Issue 7 §3: bounded everything, as the engine sees a hostile broker.

Frames are refused above the negotiated frame_max (tests/spec and test_hostile_broker cover the
reader); here: the negotiated frame_max itself is bounded by the message size limit, the read
buffer holds at most one partial frame plus what was just received, a declared body size
allocates nothing until the bytes arrive, a body in many frames is held about once while it is
assembled, the limit is configurable (URL and keyword), and no
`assert` does validation in the packages (they vanish under ``python -O``).
"""

from __future__ import annotations

import ast
import struct
import tracemalloc
from pathlib import Path

import puka
import pytest
from puka import Engine, parse_url
from puka.urls import DEFAULT_MAX_MESSAGE_SIZE, InvalidURL
from puka_spec import (
    BasicProperties,
    encode_content,
    encode_header_frame,
    encode_method_frame,
    methods,
)

from .hostile_broker import MiB
from .hostile_cases import deliver
from .test_hostile_properties import open_engine

ROOT = Path(__file__).resolve().parents[2]


def _consuming(engine: Engine) -> int:
    consume = engine.consume([methods.BasicConsume(queue="q")], 0)
    engine.receive_data(encode_method_frame(1, methods.ChannelOpenOk()))
    engine.receive_data(encode_method_frame(1, methods.BasicConsumeOk("ctag")))
    engine.data_to_send()
    return consume.number


def test_a_declared_body_size_allocates_nothing_until_the_bytes_arrive() -> None:
    engine = open_engine()
    _consuming(engine)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        engine.receive_data(deliver(1) + encode_header_frame(1, 60, 60 * MiB, BasicProperties()))
        engine.receive_data(struct.pack(">BHI", 3, 1, 1000) + b"x" * 1000 + b"\xce")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert not engine.closed
    assert peak < 256 * 1024, peak


def test_the_read_buffer_holds_one_partial_frame_plus_one_read() -> None:
    engine = open_engine()
    consume = _consuming(engine)
    body = bytes(range(256)) * 4096  # 1 MiB in frames of at most frame_max (8192)
    stream = encode_content(1, methods.BasicDeliver("ctag", 1, False, "", "q"), b"\0\0", body, 8192)
    chunk = 65536
    for start in range(0, len(stream), chunk):
        engine.receive_data(stream[start : start + chunk])
        assert engine._reader.buffered < engine.frame_max
    result = engine.promises.take(consume)
    assert result is not None and result["body"] == body


def test_a_body_in_many_frames_is_held_about_once_while_it_is_assembled() -> None:
    """Body bytes go from each read into one buffer as they arrive, not kept and then joined
    (which held the body twice at the end), nor sliced out of frames first. The reads come from
    one buffer the caller reuses, as the drivers' do: the engine copies what it keeps."""
    engine = open_engine()
    consume = _consuming(engine)
    body = bytes(range(256)) * 16384  # 4 MiB in frames of at most frame_max (131072)
    frame_max = engine.frame_max
    stream = memoryview(
        encode_content(1, methods.BasicDeliver("ctag", 1, False, "", "q"), b"\0\0", body, frame_max)
    )
    buffer = bytearray(65536)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(stream), len(buffer)):
            size = len(stream[start : start + len(buffer)])
            buffer[:size] = stream[start : start + size]
            engine.receive_data(memoryview(buffer)[:size])
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    result = engine.promises.take(consume)
    assert result is not None and type(result["body"]) is bytes and result["body"] == body
    assert peak < len(body) + 3 * len(buffer), f"{(peak - len(body)) / MiB:.2f} MiB over the body"


@pytest.mark.parametrize(
    ("limit", "proposed", "negotiated"),
    [
        (DEFAULT_MAX_MESSAGE_SIZE, 2**32 - 1, DEFAULT_MAX_MESSAGE_SIZE + 8),
        (DEFAULT_MAX_MESSAGE_SIZE, 131072, 131072),
        (1000, 131072, 4096),  # never below the spec's frame-min-size
        (100_000, 0, 100_008),
    ],
)
def test_frame_max_is_bounded_by_the_largest_message(
    limit: int, proposed: int, negotiated: int
) -> None:
    engine = Engine(parse_url("amqp:///"), max_message_size=limit)
    engine.handle_timer(0.0)
    engine.connect()
    start = methods.ConnectionStart(0, 9, {}, b"PLAIN", b"")
    engine.receive_data(encode_method_frame(0, start))
    engine.receive_data(encode_method_frame(0, methods.ConnectionTune(0, proposed, 0)))
    assert engine.frame_max == negotiated
    assert engine._reader.frame_max == negotiated


def test_max_message_size_from_the_url_and_keywords() -> None:
    assert parse_url("amqp:///").max_message_size == DEFAULT_MAX_MESSAGE_SIZE == 64 * MiB
    params = parse_url("amqp://u:pw@h/?max_message_size=1000")
    assert params.max_message_size == 1000
    assert "max_message_size=1000" in params.redacted_url()
    assert parse_url(params.redacted_url().replace("***", "pw")) == params
    assert "max_message_size" not in parse_url("amqp:///").redacted_url()
    for bad in ("0", "-1", "1e6", ""):
        with pytest.raises(InvalidURL, match="max_message_size"):
            parse_url(f"amqp:///?max_message_size={bad}")
    assert Engine(params).max_message_size == 1000
    assert Engine(params, max_message_size=5).max_message_size == 5
    client = puka.Client("amqp:///?max_message_size=1000", max_message_size=2000)
    assert client.engine.max_message_size == 2000
    assert puka.Client("amqp:///?max_message_size=1000").engine.max_message_size == 1000


def test_no_assert_does_validation_in_the_packages() -> None:
    found = []
    for path in sorted(ROOT.glob("packages/*/src/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Assert):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"assert statements (gone under python -O): {found}"
