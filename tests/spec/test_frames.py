"""Frames: encoding, incremental reading in any split, and every malformed input refused."""

from __future__ import annotations

import contextlib
import struct
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from puka_spec import (
    HEARTBEAT_FRAME,
    AMQPError,
    BasicProperties,
    BodyFrame,
    ContentFrame,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    UnsupportedProtocol,
    decode_header,
    encode_content,
    encode_content_after,
    encode_content_buffers,
    encode_header_frame,
    encode_method_frame,
    encode_method_frame_open,
    methods,
)
from puka_spec.exceptions import AMQPNotImplemented, FrameError, UnexpectedFrame

from .strategies import properties

DELIVER = methods.BasicDeliver(consumer_tag="ctag", delivery_tag=7, exchange="ex", routing_key="rk")


def _read_all(reader: FrameReader) -> list[object]:
    frames = []
    while (frame := reader.read_frame()) is not None:
        frames.append(frame)
    return frames


def _message(body: bytes, frame_max: int = 4096, props: BasicProperties | None = None) -> bytes:
    return encode_content(3, DELIVER, props or BasicProperties(), body, frame_max)


@given(properties)
def test_properties_round_trip(props: BasicProperties) -> None:
    data = props.encode()
    decoded, end = BasicProperties.decode(data + b"tail", 0)
    assert end == len(data)
    assert decoded == props


def test_property_flags_on_the_wire() -> None:
    data = BasicProperties(content_type="a", delivery_mode=2).encode()
    assert data == b"\x90\x00" + b"\x01a" + b"\x02"
    assert BasicProperties().encode() == b"\x00\x00"


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 3 * 4088 + 5])
def test_body_split_at_frame_max(size: int) -> None:
    body = bytes(range(256)) * (size // 256 + 1)
    body = body[:size]
    reader = FrameReader(4096)
    reader.feed(_message(body))
    frames = _read_all(reader)
    method, header, *bodies = frames
    assert isinstance(method, MethodFrame)
    assert method.method == DELIVER
    assert isinstance(header, HeaderFrame)
    assert header.body_size == size
    assert all(isinstance(b, BodyFrame) and len(b.payload) <= 4088 for b in bodies)
    assert len(bodies) == -(-size // 4088)
    assert b"".join(b.payload for b in bodies) == body  # type: ignore[union-attr]


@settings(max_examples=60)
@given(st.binary(max_size=9000), properties, st.lists(st.integers(1, 50), max_size=400))
def test_any_split_of_the_stream_reads_the_same(
    body: bytes, props: BasicProperties, cuts: list[int]
) -> None:
    stream = (
        HEARTBEAT_FRAME
        + _message(body, 4096, props)
        + encode_method_frame(0, methods.ConnectionCloseOk())
    )
    whole = FrameReader()
    whole.feed(stream)
    expected = [repr(f) for f in _read_all(whole)]
    reader = FrameReader()
    got: list[str] = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[pos : pos + cut])
        pos += cut
        got.extend(repr(f) for f in _read_all(reader))
        if pos >= len(stream):
            break
    assert got == expected
    assert reader.buffered == 0


def test_heartbeat_frame() -> None:
    reader = FrameReader()
    reader.feed(HEARTBEAT_FRAME)
    frame = reader.read_frame()
    assert isinstance(frame, HeartbeatFrame)
    assert frame.channel == 0


def test_header_frame_encoding_matches_encode_content() -> None:
    props = BasicProperties(message_id="m")
    header = encode_header_frame(3, 60, 0, props)
    reader = FrameReader()
    reader.feed(header)
    frame = reader.read_frame()
    assert isinstance(frame, HeaderFrame)
    assert (frame.channel, frame.class_id, frame.body_size, frame.properties) == (3, 60, 0, props)


@pytest.mark.parametrize("size", [0, 1, 4087, 4088, 4089, 8176, 8177, 20000])
@pytest.mark.parametrize("frame_max", [4096, 131072, 0])
def test_content_buffers_are_the_same_frames(size: int, frame_max: int) -> None:
    body = bytes(i % 251 for i in range(size))
    props = BasicProperties(content_type="x/y")
    parts = encode_content_buffers(3, DELIVER, props, body, frame_max)
    assert b"".join(parts) == encode_content(3, DELIVER, props, body, frame_max)
    reader = FrameReader(frame_max or 2**31)
    reader.feed(b"".join(parts))
    frames = _read_all(reader)
    assert isinstance(frames[0], MethodFrame) and frames[0].method == DELIVER
    assert b"".join(f.payload for f in frames if isinstance(f, BodyFrame)) == body


def test_content_buffers_view_a_large_body_without_copying_it() -> None:
    body = bytes(range(256)) * 64  # 16 KiB: four 4 KiB frames
    parts = encode_content_buffers(1, DELIVER, BasicProperties(), body, 4096)
    views = [part for part in parts if isinstance(part, memoryview)]
    assert len(views) == 5
    assert all(view.obj is body for view in views)
    assert sum(len(part) for part in parts if not isinstance(part, memoryview)) < 120
    mutable = bytearray(body)
    parts = encode_content_buffers(1, DELIVER, BasicProperties(), mutable, 4096)  # type: ignore[arg-type]
    mutable[:4] = b"XXXX"  # a caller changing its buffer afterwards changes nothing sent
    assert b"".join(parts) == encode_content(1, DELIVER, BasicProperties(), body, 4096)


# --- malformed input -------------------------------------------------------------------------


def _frame(kind: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + end


def _expect(data: bytes, error: type[AMQPError], match: str | None = None) -> None:
    reader = FrameReader()
    reader.feed(data)
    with pytest.raises(error, match=match):
        _read_all(reader)


def test_wrong_frame_end() -> None:
    _expect(_frame(1, 0, methods.ConnectionCloseOk().encode(), b"\x00"), FrameError, "frame-end")


def test_unknown_frame_type_is_refused_at_the_header() -> None:
    _expect(struct.pack(">BHI", 9, 0, 100) + b"\x00", FrameError, "unknown frame type 9")


def test_oversized_frame_is_refused_before_its_payload_arrives() -> None:
    tracemalloc.start()
    try:
        for size in (4089, 2**31 - 1, 2**32 - 1):
            _expect(struct.pack(">BHI", 3, 1, size) + b"x", FrameError, "exceeds frame_max")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


@pytest.mark.parametrize("kind", [1, 2, 3, 8])
@pytest.mark.parametrize("size", [4089, 2**31, 2**32 - 1])
def test_a_header_alone_announcing_too_much_is_refused_at_once(kind: int, size: int) -> None:
    """The 7-byte header, and nothing after it: no waiting for an 8th byte that never comes."""
    _expect(struct.pack(">BHI", kind, 0, size), FrameError, "exceeds frame_max")


def test_an_unknown_frame_type_alone_is_refused_at_once() -> None:
    _expect(struct.pack(">BHI", 9, 0, 10), FrameError, "unknown frame type 9")


def test_a_header_alone_within_frame_max_waits_for_the_rest() -> None:
    reader = FrameReader()
    reader.feed(struct.pack(">BHI", 8, 0, 0))
    assert reader.read_frame() is None
    reader.feed(b"\xce")
    assert isinstance(reader.read_frame(), HeartbeatFrame)


def test_frame_max_is_adjustable() -> None:
    reader = FrameReader(frame_max=131072)
    reader.feed(_frame(3, 1, b"x" * 100_000))
    assert isinstance(reader.read_frame(), BodyFrame)
    reader.frame_max = 4096
    assert reader.frame_max == 4096
    reader.feed(_frame(3, 1, b"x" * 5000))
    with pytest.raises(FrameError):
        reader.read_frame()


def test_unknown_method_is_not_implemented() -> None:
    _expect(_frame(1, 1, b"\x00\x3c\x00\x63"), AMQPNotImplemented, "unknown method 60.99")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x00", "no method id"),
        (b"\x00\x32\x00\x0b\x05ab", "malformed queue.declare-ok"),  # name past the end
        (b"\x00\x32\x00\x0b\x02\xff\xfe\x00\x00\x00\x00\x00\x00\x00\x00", "UTF-8"),
        (b"\x00\x0a\x00\x0a\x00\x09\x00\x00\x01\x00", "malformed connection.start"),
        (methods.QueueBind(queue="q").encode()[:-4] + b"\x00\x00\x01\x00", "malformed queue.bind"),
    ],
)
def test_malformed_method_arguments(payload: bytes, match: str) -> None:
    _expect(_frame(1, 1, payload), FrameError, match)


def test_truncated_header_frame() -> None:
    _expect(_frame(2, 1, b"\x00\x3c\x00"), FrameError, "too short")


def test_header_for_a_class_without_content() -> None:
    _expect(_frame(2, 1, struct.pack(">HHQH", 50, 0, 0, 0)), UnexpectedFrame, "class 50")


def test_header_properties_past_the_end() -> None:
    payload = struct.pack(">HHQH", 60, 0, 0, 0x8000) + b"\x09ab"
    _expect(_frame(2, 1, payload), FrameError, "past the end")
    with pytest.raises(FrameError):
        decode_header(payload)


def test_unknown_property_flags() -> None:
    _expect(_frame(2, 1, struct.pack(">HHQH", 60, 0, 0, 0x0001)), FrameError, "property flags")


def test_heartbeat_with_payload() -> None:
    _expect(_frame(8, 0, b"x"), FrameError, "heartbeat")


def test_server_answers_with_another_protocol_version() -> None:
    reader = FrameReader()
    reader.feed(b"AMQP\x00\x00\x09")
    assert reader.read_frame() is None  # waits for the whole header
    reader.feed(b"\x00")
    with pytest.raises(UnsupportedProtocol, match=r"AMQP 0\.9\.0"):
        reader.read_frame()


def test_short_input_is_need_more_data() -> None:
    data = _message(b"hello")
    reader = FrameReader()
    for i in range(len(data) - 1):
        reader.feed(data[i : i + 1])
    frames = _read_all(reader)
    assert [type(f) for f in frames] == [MethodFrame, HeaderFrame]
    reader.feed(data[-1:])
    assert isinstance(reader.read_frame(), BodyFrame)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_frames_or_typed_errors(data: bytes) -> None:
    reader = FrameReader()
    reader.feed(data)
    with contextlib.suppress(AMQPError):
        _read_all(reader)


@settings(max_examples=300)
@given(st.data())
def test_corrupted_valid_stream_never_escapes_untyped(data: st.DataObject) -> None:
    stream = bytearray(_message(b"payload", props=BasicProperties(headers={"a": [1, {"b": "c"}]})))
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    reader = FrameReader()
    reader.feed(bytes(stream))
    with contextlib.suppress(AMQPError):
        _read_all(reader)


# --- assembled content (FrameReader(assemble_content=True)) ---------------------------------


def _outcome(
    stream: bytes,
    cuts: list[int],
    *,
    assemble: bool,
    stream_bodies: bool = False,
    lend: bool = False,
) -> tuple[list[str], str]:
    """Read `stream` fed in pieces of `cuts`: the messages and frames it gives, then the error.

    Content is put together here when the reader hands it over frame by frame (or body frames
    piece by piece), so every kind of reader can be compared message by message. With `lend`,
    each piece is fed as a view of a buffer that is scribbled over once `read_frame` returned
    `None`, as a caller reading into one buffer again would do.
    """
    reader = FrameReader(assemble_content=assemble, stream_bodies=stream_bodies)
    seen: list[str] = []
    method: object = None  # the content being put together: method, properties, body parts
    props: object = None
    size = 0
    parts: list[bytes] = []
    pos = 0
    try:
        for cut in [*cuts, len(stream)]:
            lent = bytearray(stream[pos : pos + cut])
            reader.feed(memoryview(lent) if lend else bytes(lent))
            pos += cut
            for frame in _read_all(reader):
                if isinstance(frame, ContentFrame):
                    seen.append(repr((frame.method, frame.properties, frame.body)))
                elif isinstance(frame, MethodFrame) and frame.method.HAS_CONTENT:
                    method, props, parts = frame.method, None, []
                elif isinstance(frame, HeaderFrame) and method is not None and props is None:
                    props, size = frame.properties, frame.body_size
                elif isinstance(frame, BodyFrame) and props is not None:
                    parts.append(bytes(frame.payload))
                else:
                    seen.append(repr(frame))
                if props is not None and sum(map(len, parts)) >= size:
                    seen.append(repr((method, props, b"".join(parts))))
                    method = props = None
            lent[:] = b"\xff" * len(lent)
            if pos >= len(stream):
                break
    except AMQPError as exc:
        return seen, f"{type(exc).__name__}: {exc}"
    return seen, ""


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    properties,
    st.lists(st.integers(1, 80), max_size=300),
)
def test_assembled_content_reads_like_frame_by_frame(
    bodies: list[bytes], props: BasicProperties, cuts: list[int]
) -> None:
    stream = HEARTBEAT_FRAME + b"".join(_message(b, 4096, props) for b in bodies)
    assembled = _outcome(stream, cuts, assemble=True)
    assert assembled == _outcome(stream, cuts, assemble=False)
    whole = FrameReader(assemble_content=True)
    whole.feed(stream)
    frames = _read_all(whole)
    assert [type(f) for f in frames] == [HeartbeatFrame] + [ContentFrame] * len(bodies)
    assert [f.body for f in frames[1:]] == bodies  # type: ignore[union-attr]


def test_content_in_several_body_frames_is_read_frame_by_frame() -> None:
    reader = FrameReader(assemble_content=True)
    reader.feed(_message(b"x" * 5000, 4096))
    assert [type(f) for f in _read_all(reader)] == [MethodFrame, HeaderFrame, BodyFrame, BodyFrame]


@settings(max_examples=300)
@given(st.data())
def test_corrupted_content_fails_the_same_assembled_or_not(data: st.DataObject) -> None:
    stream = bytearray(
        _message(b"payload", props=BasicProperties(headers={"a": [1, {"b": "c"}]})) + _message(b"")
    )
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    cuts = data.draw(st.lists(st.integers(1, 60), max_size=10))
    assert _outcome(bytes(stream), cuts, assemble=True) == _outcome(
        bytes(stream), cuts, assemble=False
    )


@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_every_single_corrupted_byte_fails_the_same_assembled_or_not(flip: int) -> None:
    stream = _message(b"payload", props=BasicProperties(message_id="m", headers={"a": 1}))
    stream += _message(b"") + _message(b"plain")  # and two without properties
    for i in range(len(stream)):
        corrupted = stream[:i] + bytes([stream[i] ^ flip]) + stream[i + 1 :]
        assert _outcome(corrupted, [], assemble=True) == _outcome(corrupted, [], assemble=False), i


@pytest.mark.parametrize("assemble", [True, False])
def test_a_header_too_short_for_its_flags_is_refused(assemble: bool) -> None:
    """A 10-byte content header: read with its fixed 14 bytes, its body size runs into the
    next frame and its (zero) flags are that frame's channel, which fits a well-formed body
    frame. Assembled or not, it is refused, not read as a message without properties."""
    body_size = 0xCE03  # the header's last 6 bytes (zero), its frame-end octet, then 3
    stream = (
        encode_method_frame(0, DELIVER)
        + struct.pack(">BHIHH", 2, 0, 10, 60, 0)
        + bytes(6)
        + b"\xce"
        + struct.pack(">BHI", 3, 0, body_size)
        + bytes(body_size)
        + b"\xce"
    )
    reader = FrameReader(131072, assemble_content=assemble)
    reader.feed(stream)
    with pytest.raises(FrameError, match="content header of 10 bytes is too short"):
        _read_all(reader)


@given(
    st.integers(0, 65535),
    st.text(max_size=40),
    st.text(max_size=40),
    st.booleans(),
    properties,
    st.binary(min_size=1, max_size=4088),
)
def test_content_after_a_reused_method_frame_reads_back_as_its_frames(
    channel: int,
    exchange: str,
    routing_key: str,
    mandatory: bool,
    props: BasicProperties,
    body: bytes,
) -> None:
    """What a publisher sends with the method frame it encoded once, for every body that fits."""
    method = methods.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
    head = encode_method_frame_open(channel, method.encode())
    reader = FrameReader()
    for _ in range(2):  # the same head twice: nothing in it is spent by the first message
        reader.feed(encode_content_after(head, channel, props.encode(), body))
        first, header, last = _read_all(reader)
        assert isinstance(first, MethodFrame) and first.method == method
        assert isinstance(header, HeaderFrame) and header.properties == props
        assert header.body_size == len(body)
        assert isinstance(last, BodyFrame) and last.payload == body
        assert first.channel == header.channel == last.channel == channel


# --- streamed bodies (FrameReader(stream_bodies=True)) ---------------------------------------


@given(
    st.lists(st.binary(max_size=9000), min_size=1, max_size=3),
    st.lists(st.integers(1, 3000), max_size=60),
    st.booleans(),
    st.booleans(),
)
def test_streamed_bodies_read_like_whole_frames(
    bodies: list[bytes], cuts: list[int], assemble: bool, lend: bool
) -> None:
    stream = b"".join(_message(b, 4096) for b in bodies) + HEARTBEAT_FRAME
    streamed = _outcome(stream, cuts, assemble=assemble, stream_bodies=True, lend=lend)
    assert streamed == _outcome(stream, cuts, assemble=False)
    assert streamed[1] == ""


@settings(max_examples=300)
@given(st.data())
def test_corrupted_content_fails_the_same_from_a_lent_buffer(data: st.DataObject) -> None:
    stream = bytearray(
        _message(b"payload" * 100, props=BasicProperties(headers={"a": [1, {"b": "c"}]}))
        + _message(b"")
    )
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    cuts = data.draw(st.lists(st.integers(1, 200), max_size=10))
    assemble, stream_bodies = data.draw(st.booleans()), data.draw(st.booleans())
    lent = _outcome(bytes(stream), cuts, assemble=assemble, stream_bodies=stream_bodies, lend=True)
    assert lent == _outcome(bytes(stream), cuts, assemble=assemble, stream_bodies=stream_bodies)


def test_a_body_frame_not_yet_whole_comes_in_pieces_of_the_bytes_fed() -> None:
    body = bytes(range(256)) * 12  # 3072 bytes: one body frame
    stream = _message(body)
    reader = FrameReader(stream_bodies=True)
    head = len(stream) - len(body) - 1  # method, header and the body frame's 7-byte header
    reader.feed(stream[: head + 1000])
    frames = _read_all(reader)
    assert [type(f) for f in frames] == [MethodFrame, HeaderFrame, BodyFrame]
    first = frames[2].payload  # type: ignore[union-attr]
    assert type(first) is memoryview and first.readonly and bytes(first) == body[:1000]
    reader.feed(stream[head + 1000 : head + 3000])
    (second,) = _read_all(reader)
    assert bytes(second.payload) == body[1000:3000]  # type: ignore[union-attr]
    reader.feed(stream[head + 3000 :] + HEARTBEAT_FRAME)
    last, heartbeat = _read_all(reader)
    assert bytes(last.payload) == body[3000:]  # type: ignore[union-attr]
    assert isinstance(heartbeat, HeartbeatFrame)
    assert reader.buffered == 0


def test_a_streamed_frame_ends_only_with_its_frame_end_octet() -> None:
    body = b"x" * 100
    stream = _message(body)
    reader = FrameReader(stream_bodies=True)
    reader.feed(stream[:-1])  # all of the payload, not the frame-end octet
    frames = _read_all(reader)
    assert sum(len(f.payload) for f in frames if isinstance(f, BodyFrame)) == 99  # one held back
    reader.feed(b"\x00")
    with pytest.raises(FrameError, match="frame-end octet is 0x00"):
        reader.read_frame()


def test_a_reused_buffer_is_lent_until_read_frame_returns_none() -> None:
    """Body pieces are views of the caller's buffer; what outlives the read is copied."""
    stream = _message(b"a" * 50000, 131072) + _message(b"b" * 10)
    buffer = bytearray(4096)
    reader = FrameReader(131072, stream_bodies=True)
    parts: list[bytes] = []
    lent_pieces = 0
    for pos in range(0, len(stream), len(buffer)):
        chunk = stream[pos : pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        reader.feed(memoryview(buffer)[: len(chunk)])
        for frame in _read_all(reader):
            if isinstance(frame, BodyFrame):
                payload = frame.payload
                if isinstance(payload, memoryview):
                    assert payload.readonly
                    lent_pieces += payload.obj is buffer  # not copied out of it first
                parts.append(bytes(payload))
        buffer[:] = b"\xff" * len(buffer)  # the caller reads into its buffer again
    assert b"".join(parts) == b"a" * 50000 + b"b" * 10
    # every read inside the large body, but the first: its method frame is decoded from a copy
    assert lent_pieces >= 50000 // 4096 - 1


def test_a_lent_read_under_4_kib_is_copied_when_fed() -> None:
    """Its few frames decode faster from bytes; the caller may reuse its buffer at once."""
    stream = _message(b"c" * 5000)
    buffer = bytearray(4095)
    reader = FrameReader(stream_bodies=True)
    pieces: list[bytes | memoryview] = []
    for pos in range(0, len(stream), len(buffer)):
        chunk = stream[pos : pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        reader.feed(memoryview(buffer)[: len(chunk)])
        buffer[:] = b"\xff" * len(buffer)  # before reading: nothing may point into it
        pieces += [f.payload for f in _read_all(reader) if isinstance(f, BodyFrame)]
    assert b"".join(bytes(p) for p in pieces) == b"c" * 5000
    assert not any(isinstance(p, memoryview) and p.obj is buffer for p in pieces)


@pytest.mark.parametrize("stream_bodies", [True, False])
def test_a_whole_body_frame_in_a_lent_buffer_is_a_view_of_it_only_when_streaming(
    stream_bodies: bool,
) -> None:
    """Streamed, it is copied once, by whoever assembles the body; else it is bytes of its own.

    (A read of a large body that follows a whole body frame: with frames smaller than reads,
    most of a large body comes this way.)"""
    message = _message(b"z" * 6000, 8192)  # a body frame of more than 4 KiB: lent, not copied
    body_at = len(message) - 6000 - 8
    reader = FrameReader(8192, stream_bodies=stream_bodies)
    reader.feed(message[:body_at])
    assert [type(f) for f in _read_all(reader)] == [MethodFrame, HeaderFrame]
    buffer = bytearray(message[body_at:] + HEARTBEAT_FRAME)
    reader.feed(memoryview(buffer))
    frame, heartbeat = _read_all(reader)
    assert isinstance(frame, BodyFrame) and isinstance(heartbeat, HeartbeatFrame)
    payload = frame.payload
    assert bytes(payload) == b"z" * 6000
    if stream_bodies:
        assert isinstance(payload, memoryview) and payload.readonly and payload.obj is buffer
    else:
        assert type(payload) is bytes


def test_a_large_frame_fed_in_small_reads_is_kept_aside_until_whole() -> None:
    props = BasicProperties(headers={"big": "h" * 60000})
    frame = encode_header_frame(3, 60, 0, props)
    reader = FrameReader(70000)
    for pos in range(0, len(frame) - 1, 1000):
        reader.feed(frame[pos : min(pos + 1000, len(frame) - 1)])
        assert reader.read_frame() is None
        assert reader.buffered == min(pos + 1000, len(frame) - 1)
    reader.feed(frame[-1:])
    header = reader.read_frame()
    assert isinstance(header, HeaderFrame) and header.properties == props
    assert reader.buffered == 0


def test_feeding_again_before_a_lent_buffer_was_read_out_joins_what_was_left() -> None:
    """Out of contract, but typed: the rest of a lent buffer is joined, not a TypeError."""
    body = b"x" * 100
    stream = _message(body) + HEARTBEAT_FRAME
    reader = FrameReader(stream_bodies=True)
    reader.feed(stream[:-60])  # the body frame is not whole: it is streamed from here on
    assert [type(f) for f in _read_all(reader)] == [MethodFrame, HeaderFrame, BodyFrame]
    lent = bytearray(stream[-60:])
    reader.feed(memoryview(lent))
    piece = reader.read_frame()  # the body's last piece, a view of `lent`; the heartbeat left
    assert isinstance(piece, BodyFrame) and bytes(piece.payload) == body[-51:]
    reader.feed(memoryview(bytearray(HEARTBEAT_FRAME)))
    assert [type(f) for f in _read_all(reader)] == [HeartbeatFrame, HeartbeatFrame]
