"""Frames: encoding them, and an incremental reader that turns a byte stream back into frames.

A frame is a 7-byte header (type octet, channel short, payload size long), the payload and the
frame-end octet 0xCE. The reader accepts the stream split anywhere: `read_frame()` returns `None`
until a whole frame is buffered ("need more data"), never raises on short input, and raises a
typed error (`FrameError` 501, `UnexpectedFrame` 505, `AMQPNotImplemented` 540,
`UnsupportedProtocol`) on malformed input. A frame larger than `frame_max` is refused as soon as
its header is read, before anything is allocated for it. After an error the stream is unusable:
close the connection with the error's reply code.
"""

from __future__ import annotations

import struct

from puka_spec._gen_properties import decode_properties
from puka_spec.constants import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
)
from puka_spec.exceptions import (
    AMQPError,
    AMQPNotImplemented,
    FrameError,
    UnexpectedFrame,
    UnsupportedProtocol,
)
from puka_spec.methods import METHODS, Method
from puka_spec.properties import BasicProperties

__all__ = [
    "HEARTBEAT_FRAME",
    "BodyFrame",
    "ContentFrame",
    "Frame",
    "FrameReader",
    "HeaderFrame",
    "HeartbeatFrame",
    "MethodFrame",
    "decode_header",
    "decode_method",
    "encode_content",
    "encode_content_after",
    "encode_content_buffers",
    "encode_header_frame",
    "encode_method_frame",
    "encode_method_frame_open",
]

_FRAME = struct.Struct(">BHI")
_FRAME_AND_KEY = struct.Struct(">BHII")  # and a method frame's class and method ids: METHODS key
_END_AND_FRAME = struct.Struct(">BBHI")  # frame-end of the previous frame + the next header
_END_AND_CONTENT_HEADER = struct.Struct(">BBHIHHQ")
_CONTENT_HEADER = struct.Struct(">HHQ")
_CONTENT_HEADER_FLAGS = struct.Struct(">HHQH")  # and the property flags
_HEADER_PEEK = struct.Struct(">BHIHHQH")  # a header frame's header, its fixed part and flags
_IDS = struct.Struct(">HH")
_U32 = struct.Struct(">I")
_END = b"\xce"
_COPY_BELOW = 4096
"""A lent buffer shorter than this is copied at once: decoding a few small frames (a confirm, a
reply) from bytes costs less than from a view, and than copying what is left of it after."""

_new = object.__new__
_METHODS = METHODS
_DECODERS = {key: cls.decode for key, cls in METHODS.items()}  # bound once, not at every call
_BASIC = BasicProperties.CLASS_ID

HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"
"""A whole heartbeat frame."""


class MethodFrame:
    """A method frame: `channel` and the decoded `method`."""

    __slots__ = ("channel", "method")

    def __init__(self, channel: int, method: Method) -> None:
        self.channel = channel
        self.method = method

    def __repr__(self) -> str:
        return f"MethodFrame({self.channel}, {self.method!r})"


class HeaderFrame:
    """A content header frame: `class_id`, `body_size` and the decoded `properties`."""

    __slots__ = ("body_size", "channel", "class_id", "properties")

    def __init__(
        self, channel: int, class_id: int, body_size: int, properties: BasicProperties
    ) -> None:
        self.channel = channel
        self.class_id = class_id
        self.body_size = body_size
        self.properties = properties

    def __repr__(self) -> str:
        args = f"{self.channel}, {self.class_id}, {self.body_size}, {self.properties!r}"
        return f"HeaderFrame({args})"


class BodyFrame:
    """A content body frame: a `payload` slice of the message body.

    From a `FrameReader` made with ``stream_bodies=True``, a body frame that has not arrived
    whole comes as several `BodyFrame`s, each a `memoryview` of the part received so far.
    """

    __slots__ = ("channel", "payload")

    def __init__(self, channel: int, payload: bytes | memoryview) -> None:
        self.channel = channel
        self.payload = payload

    def __repr__(self) -> str:
        return f"BodyFrame({self.channel}, <{len(self.payload)} bytes>)"


class ContentFrame:
    """A content method with its header and body frames, read as one (see `FrameReader`).

    `method` is the content method (``basic.deliver``, ``basic.get-ok``, ``basic.return``…),
    `properties` the header's properties and `body` the whole message body.
    """

    __slots__ = ("body", "channel", "method", "properties")

    def __init__(
        self, channel: int, method: Method, properties: BasicProperties, body: bytes
    ) -> None:
        self.channel = channel
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        args = f"{self.channel}, {self.method!r}, {self.properties!r}, <{len(self.body)} bytes>"
        return f"ContentFrame({args})"


class HeartbeatFrame:
    """A heartbeat frame (its channel should be 0)."""

    __slots__ = ("channel",)

    def __init__(self, channel: int) -> None:
        self.channel = channel

    def __repr__(self) -> str:
        return f"HeartbeatFrame({self.channel})"


Frame = MethodFrame | HeaderFrame | BodyFrame | HeartbeatFrame | ContentFrame
"""Any frame `FrameReader.read_frame` returns (`ContentFrame` only when assembling content)."""


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def encode_method_frame(channel: int, method: Method) -> bytes:
    """A whole method frame."""
    payload = method.encode()
    return _FRAME.pack(FRAME_METHOD, channel, len(payload)) + payload + _END


def encode_header_frame(
    channel: int, class_id: int, body_size: int, properties: BasicProperties | bytes
) -> bytes:
    """A whole content header frame; `properties` may be pre-encoded (`.encode()`)."""
    props = properties if isinstance(properties, bytes) else properties.encode()
    return (
        _FRAME.pack(FRAME_HEADER, channel, 12 + len(props))
        + _CONTENT_HEADER.pack(class_id, 0, body_size)
        + props
        + _END
    )


def encode_content(
    channel: int,
    method: Method | bytes,
    properties: BasicProperties | bytes,
    body: bytes,
    frame_max: int,
) -> bytes:
    """A content method, its header and its body split into frames, in one buffer.

    `method` and `properties` may be pre-encoded payloads. `frame_max` is the negotiated maximum
    frame size (0 = no limit); each body frame carries at most `frame_max - 8` bytes.
    """
    payload = method if isinstance(method, bytes) else method.encode()
    props = properties if isinstance(properties, bytes) else properties.encode()
    if 0 < len(body) <= frame_max - 8:  # the body fits in one frame: the common case
        head = encode_method_frame_open(channel, payload)
        return encode_content_after(head, channel, props, body)
    return b"".join(_content_parts(channel, payload, props, memoryview(body), frame_max))


def encode_method_frame_open(channel: int, payload: bytes) -> bytes:
    """A method frame without its frame-end octet, from the method's encoded `payload`: what
    `encode_content_after` starts with. A publisher encodes it once per channel and method."""
    return _FRAME.pack(FRAME_METHOD, channel, len(payload)) + payload


def encode_content_after(
    method_frame_open: bytes, channel: int, properties: bytes, body: bytes
) -> bytes:
    """`encode_content` for a body of 1 to `frame_max - 8` bytes, whose method frame was encoded
    before (`encode_method_frame_open`): the frames in one buffer. It checks nothing: the
    caller knows the body fits one frame, and that `channel` is the method frame's."""
    size = len(body)
    return b"".join(
        (
            method_frame_open,
            _END_AND_CONTENT_HEADER.pack(
                FRAME_END, FRAME_HEADER, channel, 12 + len(properties), 60, 0, size
            ),
            properties,
            _END_AND_FRAME.pack(FRAME_END, FRAME_BODY, channel, size),
            body,
            _END,
        )
    )


def encode_content_buffers(
    channel: int,
    method: Method | bytes,
    properties: BasicProperties | bytes,
    body: bytes,
    frame_max: int,
) -> list[bytes | memoryview]:
    """The frames of `encode_content` as a list of buffers, without copying a large body.

    A body that spans several frames is not copied: each body frame's payload is a
    `memoryview` of `body` (of a copy made once if `body` is mutable, a `bytearray` say),
    between small buffers holding the frame headers. A body that fits in one frame comes as
    one buffer. Write the buffers in order (`socket.sendmsg` writes them with one call).
    """
    payload = method if isinstance(method, bytes) else method.encode()
    props = properties if isinstance(properties, bytes) else properties.encode()
    if 0 < len(body) <= frame_max - 8:
        return [encode_content(channel, payload, props, body, frame_max)]
    view = memoryview(body if type(body) is bytes else bytes(body))
    return _content_parts(channel, payload, props, view, frame_max)


def _content_parts(
    channel: int, payload: bytes, props: bytes, view: memoryview, frame_max: int
) -> list[bytes | memoryview]:
    """Frame headers (each joined with what precedes it) and views of the body between them."""
    size = len(view)
    head = b"".join(
        (
            _FRAME.pack(FRAME_METHOD, channel, len(payload)),
            payload,
            _END_AND_CONTENT_HEADER.pack(
                FRAME_END, FRAME_HEADER, channel, 12 + len(props), 60, 0, size
            ),
            props,
        )
    )
    parts: list[bytes | memoryview] = []
    chunk = frame_max - 8 if frame_max else size or 1
    pack = _END_AND_FRAME.pack
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        parts.append(head + pack(FRAME_END, FRAME_BODY, channel, len(piece)))
        parts.append(piece)
        head = b""
    parts.append(head + _END)
    return parts


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


def decode_method(payload: bytes) -> Method:
    """Decode a method frame's payload (class id, method id, arguments).

    Raises `AMQPNotImplemented` for an unknown method and `FrameError` for malformed arguments.
    """
    try:
        method, end = _METHODS[_U32.unpack_from(payload, 0)[0]].decode(payload, 4)
    except _DECODE_ERRORS:
        raise _method_error(payload) from None
    if end > len(payload):
        raise _method_error(payload)
    return method


def decode_header(payload: bytes) -> tuple[int, int, BasicProperties]:
    """Decode a content header payload: (class id, body size, properties)."""
    try:
        class_id, _weight, body_size, flags = _CONTENT_HEADER_FLAGS.unpack_from(payload, 0)
        properties, end = decode_properties(BasicProperties, flags, payload, 14)
    except _DECODE_ERRORS:
        raise _header_error(payload) from None
    if end > len(payload) or class_id != _BASIC:
        raise _header_error(payload)
    return class_id, body_size, properties


# The decoders above, and `FrameReader.read_frame` (which decodes in place, in its buffer), take
# the fast path: decode, then check the end offset. Generated decoders advance the offset past
# everything they read, so reading past the payload shows as an end offset beyond it. Any failure
# is then explained by the functions below, which decode the payload again, step by step, and
# return the typed error to raise: the slow path runs only on malformed input.

_DECODE_ERRORS = (KeyError, IndexError, struct.error, UnicodeDecodeError, FrameError)


def _method_error(payload: bytes) -> AMQPError:
    """The error a malformed method payload raises."""
    try:
        class_id, method_id = _IDS.unpack_from(payload, 0)
    except struct.error:
        return FrameError(f"method frame of {len(payload)} bytes has no method id")
    cls = _METHODS.get((class_id << 16) | method_id)
    if cls is None:
        return AMQPNotImplemented(f"unknown method {class_id}.{method_id}", class_id, method_id)
    try:
        _method, end = cls.decode(payload, 4)
    except (IndexError, struct.error) as exc:
        return FrameError(f"malformed {cls.NAME}: {exc}", class_id, method_id)
    except UnicodeDecodeError:
        return FrameError(f"malformed UTF-8 in a {cls.NAME} string", class_id, method_id)
    except FrameError as exc:
        return FrameError(f"malformed {cls.NAME}: {exc.reply_text}", class_id, method_id)
    if end > len(payload):
        text = f"{cls.NAME} arguments run past the end of the frame"
        return FrameError(text, class_id, method_id)
    return FrameError(f"malformed {cls.NAME}", class_id, method_id)  # pragma: no cover


def _header_error(payload: bytes) -> AMQPError:
    """The error a malformed content header payload raises."""
    try:
        class_id, _weight, _body_size = _CONTENT_HEADER.unpack_from(payload, 0)
    except struct.error:
        return FrameError(f"content header of {len(payload)} bytes is too short")
    if class_id != _BASIC:
        return UnexpectedFrame(f"content header for class {class_id}, which has no content")
    try:
        _properties, end = BasicProperties.decode(payload, 12)
    except (IndexError, struct.error) as exc:
        return FrameError(f"malformed content header: {exc}")
    except UnicodeDecodeError:
        return FrameError("malformed UTF-8 in a content header property")
    except FrameError as exc:
        return exc
    if end > len(payload):
        return FrameError("content header properties run past the end of the frame")
    return FrameError("malformed content header")  # pragma: no cover


class FrameReader:
    """Incremental frame reader: `feed` bytes, then call `read_frame` until it returns `None`.

    `frame_max` is the largest whole frame accepted (header and end octet included); it starts at
    the spec's minimum, 4096, and the connection raises it to the negotiated value after tune.

    With `assemble_content=True`, a content method whose header frame and single body frame
    (none for an empty body) are already buffered, whole and well-formed, comes back as one
    `ContentFrame` instead of three frames: the common case of a small message costs one call.
    Anything else — a body in several frames, frames not all received yet, a malformed or
    misplaced header or body — is returned frame by frame as without it, so the caller's own
    checks (and errors) stay the same.

    With `stream_bodies=True`, a body frame whose payload is not all buffered yet is returned
    in pieces as its bytes arrive: a `BodyFrame` per piece, whose `payload` is a read-only
    `memoryview` of the bytes fed. The pieces of one frame add up to its payload, and the last
    comes only once the frame-end octet is checked. A whole body frame in a lent buffer comes
    as a read-only view of it too. A large body is then copied once, from the bytes received
    to wherever the caller assembles it, with no frame-sized buffer between.

    A `bytearray` or `memoryview` fed is lent, not given: the caller may write into it again
    once `read_frame` has returned `None`, and the reader copies what it keeps by then. Until
    then, body pieces are views of it (so a read into a reused buffer is not copied first),
    and what is decoded in place (methods, headers) is copied out of it. One shorter than
    4 KiB is copied when fed: its few frames decode faster from bytes.
    """

    __slots__ = (
        "_assemble",
        "_buf",
        "_lent",
        "_max_payload",
        "_more",
        "_more_size",
        "_pos",
        "_stream",
        "_stream_channel",
        "_stream_left",
        "_want",
    )

    def __init__(
        self,
        frame_max: int = FRAME_MIN_SIZE,
        *,
        assemble_content: bool = False,
        stream_bodies: bool = False,
    ) -> None:
        self._buf = b""
        # `_buf` is the caller's bytearray or memoryview, ours until read_frame returns None
        # (`_keep` turns what is left of it into bytes of our own when it is kept longer)
        self._lent = False
        self._pos = 0
        self._max_payload = frame_max - 8
        self._assemble = assemble_content
        self._stream = stream_bodies
        # A body frame being streamed: its channel, and its payload bytes still to come plus
        # one for its frame-end octet (0: none is being streamed).
        self._stream_channel = 0
        self._stream_left = 0
        # Bytes fed while a frame known to be incomplete waits for the rest: kept aside and
        # joined once it is whole, so a large frame arriving in many reads is copied once, not
        # once per read. `_want` is how many more bytes that frame needs (0: none is waiting).
        self._more: list[bytes] = []
        self._more_size = 0
        self._want = 0

    @property
    def frame_max(self) -> int:
        """The largest frame accepted, in bytes."""
        return self._max_payload + 8

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        self._max_payload = value - 8

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._buf) - self._pos + self._more_size

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (a `bytearray` or `memoryview` is lent until `read_frame` returns
        `None`; see the class docstring)."""
        if self._want:  # a frame is incomplete: keep the bytes aside until it is whole
            self._more.append(data if type(data) is bytes else bytes(data))
            self._more_size += len(data)
            if self._more_size < self._want:
                return
            self._buf = b"".join((memoryview(self._buf)[self._pos :], *self._more))
            self._more.clear()
            self._more_size = self._want = 0
        elif self._pos >= len(self._buf):
            kind = type(data)
            if kind is bytes:
                self._lent = False
            elif len(data) < _COPY_BELOW:
                self._lent = False
                data = data.tobytes() if kind is memoryview else bytes(data)  # type: ignore[union-attr]
            else:
                self._lent = True
            self._buf = data  # type: ignore[assignment]  # lent: read like bytes until _keep
        else:  # what was kept and the new bytes, joined (`_keep`: in case it was not read)
            self._buf = self._keep()[self._pos :] + data
        self._pos = 0

    def read_frame(self) -> Frame | None:
        """The next whole frame (or body piece), or `None` when more data is needed."""
        if self._stream_left:
            return self._body_piece()
        buf = self._buf
        pos = self._pos
        have = len(buf)
        if pos >= have:  # everything was read (tested: the struct.error below costs more than
            self._let_go()  # reading a small frame, and a confirm's round trip reads one)
            return None
        try:  # the frame header and the payload's first 4 bytes: a method frame's method id
            kind, channel, size, key = _FRAME_AND_KEY.unpack_from(buf, pos)
        except struct.error:  # fewer than 11 bytes: a small frame, or not a frame header yet
            try:
                kind, channel, size = _FRAME.unpack_from(buf, pos)
            except struct.error:
                self._keep()
                return None
            key = -1  # a method frame this small has no method id: malformed
        end = pos + 7 + size
        if size > self._max_payload or have <= end:
            self._not_whole(kind, size)  # raises for a bad type or size, else: wait for more
            if have - pos >= 8:  # type and size checked: the frame needs exactly this much
                if kind == 3 and self._stream:  # FRAME_BODY: hand out what is here
                    self._stream_channel = channel
                    self._stream_left = size + 1
                    self._pos = pos + 7
                    return self._body_piece()
                self._want = end + 1 - have
            self._keep()
            return None
        if buf[end] != 206:  # FRAME_END
            raise _bad_frame_end(buf[end])
        frame: Frame
        if kind == 3:  # FRAME_BODY
            self._pos = end + 1
            frame = _new(BodyFrame)
            frame.channel = channel
            if self._lent:  # out of the caller's buffer: a view when streaming, else a copy
                payload = memoryview(buf)[pos + 7 : end]
                frame.payload = payload.toreadonly() if self._stream else payload.tobytes()
            else:
                frame.payload = buf[pos + 7 : end]
            return frame
        if self._lent:  # what is decoded in place is decoded from bytes of our own
            buf = self._keep()
            end -= pos
            pos = 0
        self._pos = end + 1
        if kind == 1:  # FRAME_METHOD: decode_method, in place
            try:
                method, stop = _DECODERS[key](buf, pos + 11)
            except _DECODE_ERRORS:
                stop = end + 1
            if stop > end:  # malformed, or a method added to METHODS since: the careful way
                method = decode_method(buf[pos + 7 : end])
            if self._assemble and method.HAS_CONTENT:
                content = self._content_after(buf, channel, method, end + 1)
                if content is not None:
                    return content
            frame = _new(MethodFrame)
            frame.channel = channel
            frame.method = method
            return frame
        if kind == 2:  # FRAME_HEADER: decode_header, in place
            try:
                head = _CONTENT_HEADER_FLAGS.unpack_from(buf, pos + 7)
                class_id, _weight, body_size, flags = head
                properties, stop = decode_properties(BasicProperties, flags, buf, pos + 21)
            except _DECODE_ERRORS:
                raise _header_error(buf[pos + 7 : end]) from None
            if stop > end or class_id != _BASIC:
                raise _header_error(buf[pos + 7 : end])
            frame = _new(HeaderFrame)
            frame.channel = channel
            frame.class_id = class_id
            frame.body_size = body_size
            frame.properties = properties
            return frame
        if kind == 8:  # FRAME_HEARTBEAT
            if size:
                raise FrameError(f"heartbeat frame with a {size}-byte payload")
            return HeartbeatFrame(channel)
        raise _bad_frame_type(kind, buf[pos : pos + 8])

    def _let_go(self) -> None:
        """Everything buffered was read: drop the buffer now, not at the next feed."""
        self._buf = b""
        self._lent = False
        self._pos = 0

    def _keep(self) -> bytes:
        """What is left of the buffer outlives this read: copy it if it is the caller's."""
        if self._lent:
            self._buf = memoryview(self._buf)[self._pos :].tobytes()
            self._lent = False
            self._pos = 0
        return self._buf

    def _body_piece(self) -> Frame | None:
        """The next piece of the body frame being streamed (see `stream_bodies`).

        The last payload byte is held back until the frame-end octet is here and checked, so
        the piece that completes a frame comes only from a well-formed frame.
        """
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            self._let_go()
            return None
        left = self._stream_left  # payload bytes still to come, plus the frame-end octet
        if avail >= left:  # the frame's end is here: its last piece
            end = pos + left - 1
            if buf[end] != 206:  # FRAME_END
                raise _bad_frame_end(buf[end])
            self._pos = end + 1
            self._stream_left = 0
        else:
            end = pos + min(avail, left - 2)
            if end == pos:  # only the last payload byte is here: wait for the frame-end octet
                self._keep()
                return None
            self._pos = end
            self._stream_left = left - (end - pos)
        frame = _new(BodyFrame)
        frame.channel = self._stream_channel
        piece = memoryview(buf)[pos:end]
        frame.payload = piece.toreadonly() if self._lent else piece
        return frame

    def _content_after(
        self, buf: bytes, channel: int, method: Method, pos: int
    ) -> ContentFrame | None:
        """The header and body that follow `method` at `pos`, as one frame, if they are there.

        `None` (read them one at a time) unless both are whole in the buffer, on `channel`,
        within frame_max, with their frame-end octets, a header of class basic that decodes,
        and one body frame of exactly the header's body size.
        """
        try:
            kind, number, size, class_id, _weight, body_size, flags = _HEADER_PEEK.unpack_from(
                buf, pos
            )
        except struct.error:
            return None
        end = pos + 7 + size
        if (
            kind != 2
            or number != channel
            or class_id != _BASIC
            or size > self._max_payload
            or len(buf) <= end
            or buf[end] != 206
        ):
            return None
        if flags:
            try:
                properties, stop = decode_properties(BasicProperties, flags, buf, pos + 21)
            except _DECODE_ERRORS:
                return None
            if stop > end:
                return None
        elif size < 14:  # no room for the fixed part (read past the frame above)
            return None
        else:  # no property set: a plain message, nothing to decode
            properties = _new(BasicProperties)
        pos = end + 1
        if body_size:
            try:
                kind, number, size = _FRAME.unpack_from(buf, pos)
            except struct.error:
                return None
            end = pos + 7 + size
            if (
                kind != 3
                or number != channel
                or size != body_size
                or size > self._max_payload
                or len(buf) <= end
                or buf[end] != 206
            ):
                return None
            body = buf[pos + 7 : end]
            pos = end + 1
        else:
            body = b""
        self._pos = pos
        frame = _new(ContentFrame)
        frame.channel = channel
        frame.method = method
        frame.properties = properties
        frame.body = body
        return frame

    def _not_whole(self, kind: int, size: int) -> None:
        """`read_frame` for a frame too large or not yet whole: refuse it or wait for more.

        It is called with at least a frame header (7 bytes): a known frame type announcing more
        than `frame_max` is refused at once, whatever follows (a hostile header alone must not
        leave the caller waiting for bytes that never come). An unknown type waits for the
        8th byte only while the bytes may still be a protocol header (`AMQP` and a version),
        which then names the version the peer speaks.
        """
        if kind not in _FRAME_TYPES:
            head = bytes(self._buf[self._pos : self._pos + 8])  # maybe lent: copied
            if len(head) < 8 and head.startswith(b"AMQP"):
                return
            raise _bad_frame_type(kind, head)
        if size > self._max_payload:
            raise FrameError(f"frame of {size} bytes exceeds frame_max {self.frame_max}")


_FRAME_TYPES = frozenset((FRAME_METHOD, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT))


def _bad_frame_end(octet: int) -> FrameError:
    return FrameError(f"frame-end octet is 0x{octet:02x}, not 0xce")


def _bad_frame_type(kind: int, head: bytes) -> FrameError:
    if head.startswith(b"AMQP"):
        version = ".".join(str(b) for b in head[5:8])
        return UnsupportedProtocol(f"the peer speaks AMQP {version} (protocol id {head[4]})")
    return FrameError(f"unknown frame type {kind}")
