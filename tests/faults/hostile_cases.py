"""The hostile broker's cases, as data: the §4 table of issue 7, one `Case` a row.

Each case pairs the bytes a hostile broker sends with the reaction expected of the client;
`tests.faults.hostile_broker` is the harness that serves them (`ScriptedBroker`, the runners)
and `test_hostile_broker.py` runs every case with every driver.

The bytes come from puka_spec's encoders (`encode_method_frame`, `encode_header_frame`,
`encode_content`) wherever those can produce them, cut short or with their end octet replaced
where a case says so. What the encoders refuse to produce is built by hand with the helpers
below: a frame of an unknown type, a heartbeat on a channel other than 0, a frame header
announcing a size its payload does not have, a frame whose payload is too short for its type
(`frame`, `frame_header`), a body frame without its method or beyond its header's size
(`body`), a payload or field table that does not parse (`table`, `nested_tables`, raw
payloads), another protocol's header.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from puka import PublishNacked
from puka.errors import ConnectFailed, ConnectionLost, ConnectTimeout, HeartbeatTimeout
from puka.results import Result
from puka_spec import (
    BasicProperties,
    encode_content,
    encode_header_frame,
    encode_method_frame,
    methods,
)
from puka_spec.constants import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
)
from puka_spec.exceptions import (
    AMQPNotImplemented,
    ChannelError,
    FrameError,
    UnexpectedFrame,
    UnsupportedProtocol,
)

from tests.faults.hostile_broker import START, Case, Channels, MiB, Outcome

# --- what the encoders produce ----------------------------------------------------------------

BASIC = BasicProperties.CLASS_ID
FRAME_MAX = 131072  # what the script tunes to, unless a case says otherwise
HEADERS = 0x2000  # property flag of `headers`
TIMESTAMP = 0x0040  # property flag of `timestamp`


def _delivery(tag: int = 1) -> methods.BasicDeliver:
    return methods.BasicDeliver("ctag", tag, False, "", "q")


def deliver(channel: int, tag: int = 1) -> bytes:
    """basic.deliver for the client's consumer."""
    return encode_method_frame(channel, _delivery(tag))


def header(channel: int, size: int) -> bytes:
    """A content header declaring a body of `size` bytes, no properties."""
    return encode_header_frame(channel, BASIC, size, BasicProperties())


def raw_header(channel: int, size: int, flags: int, props: bytes) -> bytes:
    """A content header with property `flags` and hand-made property bytes after them."""
    return encode_header_frame(channel, BASIC, size, struct.pack(">H", flags) + props)


def message(channel: int, body: bytes, props: bytes = b"\x00\x00") -> bytes:
    """A whole delivery: basic.deliver, its header and body; `props` are the header's property
    flags and properties, encoded (the default: no properties)."""
    return encode_content(channel, _delivery(), props, body, FRAME_MAX)


# --- what they refuse to produce --------------------------------------------------------------


def frame_header(kind: int, channel: int, size: int) -> bytes:
    """The 7 bytes that open a frame, announcing a payload of `size` bytes."""
    return struct.pack(">BHI", kind, channel, size)


def frame(kind: int, channel: int, payload: bytes, end: int = FRAME_END) -> bytes:
    """A frame of any type, channel and payload, with any end octet."""
    return frame_header(kind, channel, len(payload)) + payload + bytes([end])


def body(channel: int, data: bytes) -> bytes:
    """A body frame on its own (the encoders write one only after its method and header)."""
    return frame(FRAME_BODY, channel, data)


def table(entries: bytes) -> bytes:
    """A field table around hand-made entries."""
    return struct.pack(">I", len(entries)) + entries


def nested_tables(depth: int) -> bytes:
    """`depth` tables, each holding the next under key "n" (the encoders stop at 64)."""
    inner = table(b"")
    for _ in range(depth - 1):
        inner = table(b"\x01nF" + inner)
    return inner


# --- the cases --------------------------------------------------------------------------------

_BIG_START = encode_method_frame(
    0,
    methods.ConnectionStart(0, 9, {"filler": "x" * 5000}, b"PLAIN", b"en_US"),
)
_TRUNCATED = deliver(1)[:5]


def _ts_and_decimal(ch: Channels) -> bytes:
    entries = b"\x01tT" + b"\xff" * 8 + b"\x01dD\xff\x80\x00\x00\x00"
    props = struct.pack(">H", HEADERS | TIMESTAMP) + table(entries) + b"\xff" * 8
    return message(ch.consume, b"ok", props)


def _check_timestamp(outcome: Outcome) -> None:
    message = outcome.results["consume"]
    assert isinstance(message, Result) and not message.is_error, message
    assert message["body"] == b"ok"
    assert message["headers"]["t"] == 2**64 - 1  # beyond datetime: kept as the raw int
    assert message["headers"]["timestamp"] == 2**64 - 1
    assert str(message["headers"]["d"]) == "-2.147483648E-246"


def _acks(ch: Channels) -> bytes:
    p = ch.publish
    return b"".join(
        encode_method_frame(p, m)
        for m in (
            methods.BasicAck(9, False),  # never published
            methods.BasicAck(2, True),  # 1 and 2
            methods.BasicNack(3, False, False),
            methods.BasicAck(3, False),  # after its nack
            methods.BasicAck(3, True),  # a range already settled
            methods.BasicAck(100, True),  # beyond anything published
        )
    )


def _check_acks(outcome: Outcome) -> None:
    results = outcome.results
    assert not results["publish1"].is_error and not results["publish2"].is_error, results
    nacked = results["publish3"]
    error = nacked if isinstance(nacked, BaseException) else nacked.exception
    assert isinstance(error, PublishNacked), results
    assert outcome.unknown_confirms == 4
    assert outcome.engine_error is None


def _check_ack_beyond(outcome: Outcome) -> None:
    for i in (1, 2, 3):
        result = outcome.results[f"publish{i}"]
        assert isinstance(result, Result) and not result.is_error, outcome.results
    assert outcome.unknown_confirms == 1
    assert outcome.engine_error is None


def _check_tune(channel_max: int, frame_max: int, heartbeat: int) -> Callable[[Outcome], None]:
    def check(outcome: Outcome) -> None:
        tune_ok = outcome.tune_ok
        assert tune_ok is not None
        assert (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat) == (
            channel_max,
            frame_max,
            heartbeat,
        )
        assert outcome.engine_error is None
        assert isinstance(outcome.results["declare"], Result)

    return check


def _check_small_limit(outcome: Outcome) -> None:
    message = outcome.results["consume"]
    assert isinstance(message, Result) and message["body"] == b"y" * 1000, message


CASES: list[Case] = [
    # frame size > negotiated frame_max (> 4096 before tune): 501 at the 7-byte header
    Case(
        "frame-2^32-1",
        "open",
        lambda ch: frame_header(FRAME_BODY, ch.consume, 2**32 - 1) + b"x" * 64,
        501,
        FrameError,
    ),
    Case(
        "frame-2^31-1",
        "open",
        lambda ch: frame_header(FRAME_METHOD, ch.declare, 2**31 - 1) + b"x" * 64,
        501,
        FrameError,
    ),
    Case("frame-over-4096-before-tune", "start", _BIG_START, 501, FrameError),
    # the 7-byte header alone, nothing after it (issue 19 item 5): refused at once, not after
    # the handshake timeout; `silence` keeps the socket open, so only the header can fail it
    Case(
        "header-alone-2GiB-before-tune",
        "start",
        frame_header(FRAME_METHOD, 0, 2**31),
        501,
        FrameError,
        then="silence",
    ),
    Case(
        "header-alone-4097-before-tune",
        "start",
        frame_header(FRAME_METHOD, 0, 4097 - 7),
        501,
        FrameError,
        then="silence",
    ),
    Case(
        "header-alone-2GiB-when-open",
        "open",
        lambda ch: frame_header(FRAME_BODY, ch.consume, 2**31),
        501,
        FrameError,
        then="silence",
    ),
    Case(
        "frame-2^32-1-before-tune",
        "start",
        frame_header(FRAME_METHOD, 0, 2**32 - 1) + b"\x00\x0a",
        501,
        FrameError,
    ),
    # frame size smaller than the type's fixed part (rabbitmq-c GHSA-9mmv)
    Case(
        "method-frame-of-1-byte",
        "open",
        lambda ch: frame(FRAME_METHOD, ch.declare, b"\x00"),
        501,
        FrameError,
    ),
    Case(
        "header-frame-of-2-bytes",
        "open",
        lambda ch: deliver(ch.consume) + frame(FRAME_HEADER, ch.consume, b"\x00\x3c"),
        501,
        FrameError,
    ),
    Case(
        "method-frame-without-arguments",
        "open",
        lambda ch: frame(FRAME_METHOD, ch.consume, b"\x00\x3c\x00\x3c"),
        501,
        FrameError,
    ),
    # frame-end octet
    Case(
        "frame-end-not-0xce",
        "open",
        lambda ch: (
            encode_method_frame(ch.declare, methods.QueueDeclareOk("q", 0, 0))[:-1] + b"\x00"
        ),
        501,
        FrameError,
    ),
    # unknown frame type (never ignored: GHSA-5fp7)
    Case("frame-type-9", "open", frame(9, 0, b"abc"), 501, FrameError),
    Case("frame-type-0", "open", frame(0, 0, b""), 501, FrameError),
    # heartbeat on a channel other than 0
    Case(
        "heartbeat-on-open-channel",
        "open",
        lambda ch: frame(FRAME_HEARTBEAT, ch.declare, b""),
        505,
        UnexpectedFrame,
    ),
    Case(
        "heartbeat-on-unopened-channel",
        "open",
        frame(FRAME_HEARTBEAT, 99, b""),
        505,
        UnexpectedFrame,
    ),
    # content out of order
    Case("header-without-method", "open", lambda ch: header(ch.consume, 1), 505, UnexpectedFrame),
    Case("body-without-method", "open", lambda ch: body(ch.consume, b"x"), 505, UnexpectedFrame),
    Case(
        "header-class-50-after-deliver",
        "open",
        lambda ch: deliver(ch.consume) + encode_header_frame(ch.consume, 50, 1, BasicProperties()),
        505,
        UnexpectedFrame,
    ),
    Case(
        "method-while-body-pending",
        "open",
        lambda ch: (
            deliver(ch.consume)
            + header(ch.consume, 10)
            + body(ch.consume, b"ab")
            + deliver(ch.consume, 2)
        ),
        505,
        UnexpectedFrame,
    ),
    # body beyond body_size; body_size above the maximum message size
    Case(
        "body-beyond-body-size",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 1) + body(ch.consume, b"ab"),
        501,
        FrameError,
    ),
    Case(
        "body-size-2^62",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 2**62),
        501,
        FrameError,
    ),
    Case(
        "body-size-64MiB+1",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 64 * MiB + 1),
        501,
        FrameError,
    ),
    Case(
        "body-size-over-url-limit",
        "open",
        lambda ch: deliver(ch.consume) + header(ch.consume, 1001),
        501,
        FrameError,
        query="max_message_size=1000",
    ),
    Case(
        "body-size-at-url-limit",
        "open",
        lambda ch: message(ch.consume, b"y" * 1000),
        query="max_message_size=1000",
        publishes=0,
        check=_check_small_limit,
        wait_for=("declare", "consume"),
    ),
    # channels above channel_max, or never opened
    Case(
        "channel-above-channel-max",
        "open",
        encode_method_frame(11, methods.ChannelOpenOk()),
        504,
        ChannelError,
        tune=(10, 131072, 0),
    ),
    Case("channel-65535", "open", deliver(65535), 504, ChannelError),
    Case("channel-not-opened", "open", lambda ch: body(9, b"x" * 100), 504, ChannelError),
    # unknown class or method
    Case(
        "unknown-method-60.99",
        "open",
        lambda ch: frame(FRAME_METHOD, ch.declare, b"\x00\x3c\x00\x63"),
        540,
        AMQPNotImplemented,
    ),
    Case(
        "unknown-class-4660",
        "open",
        frame(FRAME_METHOD, 0, b"\x12\x34\x00\x01"),
        540,
        AMQPNotImplemented,
    ),
    # malformed UTF-8 in short strings: names and table keys
    Case(
        "shortstr-bad-utf8",
        "open",
        lambda ch: frame(
            FRAME_METHOD,
            ch.consume,
            struct.pack(">HH", 60, 60) + b"\x02\xff\xfe" + struct.pack(">Q", 1) + b"\x00\x00\x01q",
        ),
        501,
        FrameError,
    ),
    Case(
        "table-key-bad-utf8",
        "open",
        lambda ch: (
            deliver(ch.consume) + raw_header(ch.consume, 0, HEADERS, table(b"\x02\xff\xfeV"))
        ),
        501,
        FrameError,
    ),
    # lengths beyond what is left, nesting
    Case(
        "table-length-past-frame",
        "open",
        lambda ch: (
            deliver(ch.consume) + raw_header(ch.consume, 0, HEADERS, b"\xff\xff\xff\xf0\x01kV")
        ),
        501,
        FrameError,
    ),
    Case(
        "array-length-past-frame",
        "open",
        lambda ch: (
            deliver(ch.consume)
            + raw_header(ch.consume, 0, HEADERS, table(b"\x01kA\xff\xff\xff\xf0"))
        ),
        501,
        FrameError,
    ),
    Case(
        "longstr-length-past-frame",
        "open",
        lambda ch: (
            deliver(ch.consume)
            + raw_header(ch.consume, 0, HEADERS, table(b"\x01kS\xff\xff\xff\xffabc"))
        ),
        501,
        FrameError,
    ),
    Case(
        "server-properties-length-past-frame",
        "start",
        frame(FRAME_METHOD, 0, b"\x00\x0a\x00\x0a\x00\x09\xff\xff\xff\xff"),
        501,
        FrameError,
    ),
    Case(
        "tables-nested-65-deep",
        "open",
        lambda ch: deliver(ch.consume) + raw_header(ch.consume, 0, HEADERS, nested_tables(65)),
        501,
        FrameError,
    ),
    # out-of-range timestamp and decimal: kept raw, never OSError/OverflowError
    Case(
        "timestamp-and-decimal-out-of-range",
        "open",
        _ts_and_decimal,
        publishes=0,
        check=_check_timestamp,
        wait_for=("declare", "consume"),
    ),
    # tune
    Case(
        "tune-frame-max-4095",
        "tune",
        encode_method_frame(0, methods.ConnectionTune(2047, 4095, 0)),
        505,
        UnexpectedFrame,
    ),
    Case(
        "tune-frame-max-1",
        "tune",
        encode_method_frame(0, methods.ConnectionTune(2047, 1, 0)),
        505,
        UnexpectedFrame,
    ),
    Case(
        "tune-channel-max-0-heartbeat-0",
        "open",
        b"",
        tune=(0, 131072, 0),
        publishes=0,
        check=_check_tune(65535, 131072, 0),
    ),
    Case(
        "tune-frame-max-0",
        "open",
        b"",
        tune=(2047, 0, 0),
        publishes=0,
        check=_check_tune(2047, 131072, 0),
    ),
    Case(
        "tune-frame-max-2^32-1",
        "open",
        b"",
        tune=(2047, 2**32 - 1, 0),
        publishes=0,
        check=_check_tune(2047, 64 * MiB + 8, 0),
    ),
    # another protocol version
    Case(
        "protocol-header-0-9-0",
        "header",
        b"AMQP\x00\x00\x09\x00",
        501,
        UnsupportedProtocol,
        then="eof",
    ),
    Case(
        "protocol-header-amqp-1.0",
        "header",
        b"AMQP\x00\x01\x00\x00",
        501,
        UnsupportedProtocol,
        then="eof",
    ),
    # truncated frame, then EOF or silence
    Case("truncated-then-eof", "open", _TRUNCATED, None, ConnectionLost, then="eof"),
    Case(
        "truncated-start-then-eof",
        "start",
        encode_method_frame(0, START)[:20],
        None,
        ConnectFailed,
        then="eof",
    ),
    Case(
        "truncated-then-silence",
        "open",
        _TRUNCATED,
        None,
        HeartbeatTimeout,
        then="silence",
        tune=(2047, 131072, 1),
        max_seconds=3.0,
    ),
    Case(
        "truncated-start-then-silence",
        "start",
        encode_method_frame(0, START)[:20],
        None,
        ConnectTimeout,
        then="silence",
        query="connection_timeout=500",
        max_seconds=1.5,
    ),
    # confirms for tags never published, multiple ranges, ack after nack: ignored and counted
    Case(
        "acks-unpublished-ranges-after-nack",
        "open",
        _acks,
        publishes=3,
        check=_check_acks,
        wait_for=("declare", "publish1", "publish2", "publish3"),
    ),
    Case(
        "multiple-ack-beyond-last-tag",
        "open",
        lambda ch: encode_method_frame(ch.publish, methods.BasicAck(5, True)),
        publishes=3,
        check=_check_ack_beyond,
        wait_for=("declare", "publish1", "publish2", "publish3"),
    ),
]
"""The rows of the §4 table, each as one or more cases."""
