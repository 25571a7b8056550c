"""Codec micro-benchmark: puka-spec against pika and pamqp, in one process.

Two workloads, each timed for every library:

encode publish
    Build a ``basic.publish`` method (exchange ``""``, routing key ``"bench-queue"``) and its
    properties (content type, delivery mode 2, message id and a one-entry ``headers`` table),
    then encode the method frame, the content header frame and one 100-byte body frame into a
    single ``bytes`` object, as a client writes it to the socket. Constructing the method and
    properties objects is part of the timed work. puka-spec: `puka_spec.encode_content`; pika:
    `pika.frame.Method/Header/Body(...).marshal()`; pamqp: `pamqp.frame.marshal` of a
    `pamqp.commands.Basic.Publish`, a `pamqp.header.ContentHeader` and a `pamqp.body.ContentBody`.

decode deliver
    Turn the wire bytes of a ``basic.deliver`` (built once, up front) with the same properties
    and body back into the library's decoded method, content header (properties, headers table
    included) and body frames. puka-spec: a `FrameReader`, `feed()` then three `read_frame()`;
    pika: `pika.frame.decode_frame` in a loop; pamqp: `pamqp.frame.unmarshal` in a loop. The pika
    and pamqp loops drop consumed bytes by slicing the buffer, as their connections do.
    "puka-spec, content assembled" is how puka-core's engine reads: a
    `FrameReader(assemble_content=True)` gives the three frames as one `ContentFrame`.

Only the codecs are measured: no sockets, no channel bookkeeping, and the body always fits in one
frame (frame_max 131072). Each measurement times N calls with `time.perf_counter_ns` (garbage
collection off during the loop, as `timeit` does) and is repeated R times; the libraries take
turns within each repetition, in a rotating order, so machine noise hits all of them alike. The
table shows the median and the minimum time per call in microseconds, and how many times slower
than puka-spec each library is (by median). After timing, every library's results are checked:
the decoded frames must carry the expected fields, and every library's encoded publish must
decode (with puka-spec's `FrameReader`) to the same method, properties and body. A failed check
prints an error and exits with status 1.

Run from the repository root:

    PYTHONPATH=packages/puka-spec/src python -m bench.codec [--quick] [--json PATH]

or ``hatch run bench:codec``. ``--quick`` uses N=3000, R=3 instead of N=20000, R=7.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pamqp.body
import pamqp.commands
import pamqp.frame
import pamqp.header
import pika.frame
import pika.spec
import puka_spec
from puka_spec import (
    BasicProperties,
    BodyFrame,
    ContentFrame,
    FrameReader,
    HeaderFrame,
    MethodFrame,
    encode_content,
)
from puka_spec.methods import BasicDeliver, BasicPublish

CHANNEL = 1
FRAME_MAX = 131072
EXCHANGE = ""
ROUTING_KEY = "bench-queue"
CONTENT_TYPE = "application/json"
DELIVERY_MODE = 2
MESSAGE_ID = "msg-1"
HEADERS = {"x-trace": "abc123"}
BODY = (b"0123456789abcdef" * 7)[:100]
CONSUMER_TAG = "ctag-1"
DELIVERY_TAG = 12345

assert len(BODY) == 100

BASELINE = "puka-spec"
ASSEMBLED = "puka-spec, content assembled"
ENCODE = "encode publish"
DECODE = "decode deliver"

Summary = dict[str, object]
"""The fields of a decoded message, library-neutral, for the correctness checks."""

EXPECTED_PROPERTIES: Summary = {
    "content_type": CONTENT_TYPE,
    "delivery_mode": DELIVERY_MODE,
    "message_id": MESSAGE_ID,
    "headers": HEADERS,
    "body_size": len(BODY),
    "body": BODY,
}
EXPECTED_PUBLISH: Summary = {
    "channel": CHANNEL,
    "method": "basic.publish",
    "exchange": EXCHANGE,
    "routing_key": ROUTING_KEY,
    "mandatory": False,
    "immediate": False,
    **EXPECTED_PROPERTIES,
}
EXPECTED_DELIVER: Summary = {
    "channel": CHANNEL,
    "method": "basic.deliver",
    "consumer_tag": CONSUMER_TAG,
    "delivery_tag": DELIVERY_TAG,
    "redelivered": False,
    "exchange": EXCHANGE,
    "routing_key": ROUTING_KEY,
    **EXPECTED_PROPERTIES,
}


def _text(value: object) -> object:
    """Header values as text: a library may return a long string as `bytes`."""
    return value.decode() if isinstance(value, bytes) else value


def _headers(headers: object) -> object:
    if isinstance(headers, dict):
        return {_text(key): _text(value) for key, value in headers.items()}
    return headers


# ---------------------------------------------------------------------------------------------
# puka-spec
# ---------------------------------------------------------------------------------------------


def encode_puka() -> bytes:
    """Encode the publish with puka-spec."""
    return encode_content(
        CHANNEL,
        BasicPublish(exchange=EXCHANGE, routing_key=ROUTING_KEY),
        BasicProperties(
            content_type=CONTENT_TYPE,
            delivery_mode=DELIVERY_MODE,
            message_id=MESSAGE_ID,
            headers={"x-trace": "abc123"},
        ),
        BODY,
        FRAME_MAX,
    )


def decode_puka(wire: bytes) -> Sequence[object]:
    """Decode the deliver with puka-spec: method, header and body frames."""
    reader = FrameReader(FRAME_MAX)
    reader.feed(wire)
    return (reader.read_frame(), reader.read_frame(), reader.read_frame())


def decode_puka_assembled(wire: bytes) -> Sequence[object]:
    """Decode the deliver as puka-core's engine does: one `ContentFrame` for all three frames."""
    reader = FrameReader(FRAME_MAX, assemble_content=True)
    reader.feed(wire)
    return (reader.read_frame(),)


def summarize_puka(frames: Sequence[object]) -> Summary:
    """The fields of frames read by a puka-spec `FrameReader`."""
    summary: Summary = {}
    body: list[bytes] = []
    unexpected: list[str] = []
    for frame in frames:
        if isinstance(frame, ContentFrame):
            frames = [
                MethodFrame(frame.channel, frame.method),
                HeaderFrame(frame.channel, 60, len(frame.body), frame.properties),
                BodyFrame(frame.channel, frame.body),
            ]
            return summarize_puka(frames)
        if isinstance(frame, MethodFrame):
            method = frame.method
            summary["channel"] = frame.channel
            summary["method"] = method.NAME
            summary.update((name, getattr(method, name)) for name, _type in method.FIELDS)
        elif isinstance(frame, HeaderFrame):
            props = frame.properties
            summary.update(
                (name, getattr(props, name))
                for name in BasicProperties.NAMES
                if getattr(props, name) is not None
            )
            summary["headers"] = _headers(props.headers)
            summary["body_size"] = frame.body_size
        elif isinstance(frame, BodyFrame):
            body.append(frame.payload)
        else:
            unexpected.append(repr(frame))
    summary["body"] = b"".join(body)
    if unexpected:
        summary["unexpected frames"] = unexpected
    return summary


# ---------------------------------------------------------------------------------------------
# pika
# ---------------------------------------------------------------------------------------------


def encode_pika() -> bytes:
    """Encode the publish with pika."""
    method = pika.spec.Basic.Publish(exchange=EXCHANGE, routing_key=ROUTING_KEY)
    properties = pika.spec.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=DELIVERY_MODE,
        message_id=MESSAGE_ID,
        headers={"x-trace": "abc123"},
    )
    return b"".join(
        (
            pika.frame.Method(CHANNEL, method).marshal(),
            pika.frame.Header(CHANNEL, len(BODY), properties).marshal(),
            pika.frame.Body(CHANNEL, BODY).marshal(),
        )
    )


def decode_pika(wire: bytes) -> Sequence[object]:
    """Decode the deliver with pika: its Method, Header and Body frames."""
    frames: list[object] = []
    while wire:
        consumed, frame = pika.frame.decode_frame(wire)
        if frame is None:  # incomplete frame: wait for more data
            break
        frames.append(frame)
        wire = wire[consumed:]
    return frames


def summarize_pika(frames: Sequence[object]) -> Summary:
    """The fields of pika frames."""
    summary: Summary = {}
    body: list[bytes] = []
    unexpected: list[str] = []
    for frame in frames:
        if isinstance(frame, pika.frame.Method):
            method: Any = frame.method
            summary["channel"] = frame.channel_number
            summary["method"] = "basic.deliver" if method.NAME == "Basic.Deliver" else method.NAME
            summary.update(
                consumer_tag=method.consumer_tag,
                delivery_tag=method.delivery_tag,
                redelivered=method.redelivered,
                exchange=method.exchange,
                routing_key=method.routing_key,
            )
        elif isinstance(frame, pika.frame.Header):
            props: Any = frame.properties
            summary.update(
                content_type=props.content_type,
                delivery_mode=props.delivery_mode,
                message_id=props.message_id,
                headers=_headers(props.headers),
                body_size=frame.body_size,
            )
        elif isinstance(frame, pika.frame.Body):
            body.append(frame.fragment)
        else:
            unexpected.append(repr(frame))
    summary["body"] = b"".join(body)
    if unexpected:
        summary["unexpected frames"] = unexpected
    return summary


# ---------------------------------------------------------------------------------------------
# pamqp
# ---------------------------------------------------------------------------------------------


def encode_pamqp() -> bytes:
    """Encode the publish with pamqp."""
    method = pamqp.commands.Basic.Publish(exchange=EXCHANGE, routing_key=ROUTING_KEY)
    properties = pamqp.commands.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=DELIVERY_MODE,
        message_id=MESSAGE_ID,
        headers={"x-trace": "abc123"},
    )
    marshal = pamqp.frame.marshal
    return b"".join(
        (
            marshal(method, CHANNEL),
            marshal(pamqp.header.ContentHeader(0, len(BODY), properties), CHANNEL),
            marshal(pamqp.body.ContentBody(BODY), CHANNEL),
        )
    )


def decode_pamqp(wire: bytes) -> Sequence[object]:
    """Decode the deliver with pamqp: (channel, frame) pairs."""
    frames: list[object] = []
    while wire:
        consumed, channel, frame = pamqp.frame.unmarshal(wire)
        frames.append((channel, frame))
        wire = wire[consumed:]
    return frames


def summarize_pamqp(frames: Sequence[object]) -> Summary:
    """The fields of pamqp (channel, frame) pairs."""
    summary: Summary = {}
    body: list[bytes] = []
    unexpected: list[str] = []
    for item in frames:
        channel, frame = item if isinstance(item, tuple) else (None, item)
        if isinstance(frame, pamqp.commands.Basic.Deliver):
            summary.update(
                channel=channel,
                method="basic.deliver",
                consumer_tag=frame.consumer_tag,
                delivery_tag=frame.delivery_tag,
                redelivered=frame.redelivered,
                exchange=frame.exchange,
                routing_key=frame.routing_key,
            )
        elif isinstance(frame, pamqp.header.ContentHeader):
            props = frame.properties
            summary.update(
                content_type=props.content_type,
                delivery_mode=props.delivery_mode,
                message_id=props.message_id,
                headers=_headers(props.headers),
                body_size=frame.body_size,
            )
        elif isinstance(frame, pamqp.body.ContentBody):
            body.append(frame.value)
        else:
            unexpected.append(repr(frame))
    summary["body"] = b"".join(body)
    if unexpected:
        summary["unexpected frames"] = unexpected
    return summary


# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------


@dataclass
class Library:
    name: str
    encode: Callable[[], bytes] | None  # None: a decoding variant only
    decode: Callable[[bytes], Sequence[object]]
    summarize: Callable[[Sequence[object]], Summary]


LIBRARIES = (
    Library(BASELINE, encode_puka, decode_puka, summarize_puka),
    Library(ASSEMBLED, None, decode_puka_assembled, summarize_puka),
    Library("pika", encode_pika, decode_pika, summarize_pika),
    Library("pamqp", encode_pamqp, decode_pamqp, summarize_pamqp),
)


@dataclass
class Case:
    """One workload for one library, with its timings and the result of its last call."""

    workload: str
    library: Library
    func: Callable[[], object]
    samples_us: list[float] = field(default_factory=list)
    result: object = None

    def run(self, iterations: int) -> None:
        """Time `iterations` calls and record the time per call."""
        func = self.func
        result: object = None
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            for _ in range(iterations):
                result = func()
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()
        self.samples_us.append(elapsed / iterations / 1000)
        self.result = result


def deliver_wire() -> bytes:
    """The wire bytes of the deliver, its header and its body (built once, with puka-spec)."""
    return encode_content(
        CHANNEL,
        BasicDeliver(
            consumer_tag=CONSUMER_TAG,
            delivery_tag=DELIVERY_TAG,
            exchange=EXCHANGE,
            routing_key=ROUTING_KEY,
        ),
        BasicProperties(
            content_type=CONTENT_TYPE,
            delivery_mode=DELIVERY_MODE,
            message_id=MESSAGE_ID,
            headers=dict(HEADERS),
        ),
        BODY,
        FRAME_MAX,
    )


def make_cases(wire: bytes) -> dict[str, list[Case]]:
    """The cases of each workload, puka-spec first."""
    return {
        ENCODE: [Case(ENCODE, lib, lib.encode) for lib in LIBRARIES if lib.encode is not None],
        DECODE: [Case(DECODE, lib, partial(lib.decode, wire)) for lib in LIBRARIES],
    }


def measure(cases: dict[str, list[Case]], iterations: int, repeats: int) -> None:
    """Warm every case up, then run the repetitions round-robin, rotating the order."""
    for group in cases.values():
        for case in group:
            case.run(max(iterations // 10, 100))
            case.samples_us.clear()
    for repeat in range(repeats):
        for group in cases.values():
            shift = repeat % len(group)
            for case in group[shift:] + group[:shift]:
                case.run(iterations)


def _differences(expected: Summary, actual: Summary) -> list[str]:
    return [
        f"{key}: expected {expected[key]!r}, got {actual.get(key, '<missing>')!r}"
        for key in expected
        if actual.get(key) != expected[key]
    ] + [f"{key}: {actual[key]!r}" for key in actual if key not in expected]


def verify(cases: dict[str, list[Case]]) -> list[str]:
    """Check every case's last result; returns the problems found."""
    errors: list[str] = []
    for case in cases[ENCODE]:
        wire = case.result
        if not isinstance(wire, bytes):
            errors.append(f"{ENCODE} / {case.library.name}: returned {type(wire).__name__}")
            continue
        try:
            reader = FrameReader(FRAME_MAX)
            reader.feed(wire)
            frames = [reader.read_frame() for _ in range(3)]
        except puka_spec.AMQPError as exc:
            errors.append(f"{ENCODE} / {case.library.name}: undecodable: {exc!r}")
            continue
        if reader.buffered:
            errors.append(f"{ENCODE} / {case.library.name}: {reader.buffered} trailing bytes")
        summary = summarize_puka(frames)
        errors.extend(
            f"{ENCODE} / {case.library.name}: {problem}"
            for problem in _differences(EXPECTED_PUBLISH, summary)
        )
    for case in cases[DECODE]:
        frames = case.result
        if not isinstance(frames, Sequence):
            errors.append(f"{DECODE} / {case.library.name}: returned {type(frames).__name__}")
            continue
        summary = case.library.summarize(frames)
        errors.extend(
            f"{DECODE} / {case.library.name}: {problem}"
            for problem in _differences(EXPECTED_DELIVER, summary)
        )
    return errors


def results(cases: dict[str, list[Case]]) -> list[dict[str, Any]]:
    """One row per case: median, min and ratio of medians against puka-spec."""
    rows: list[dict[str, Any]] = []
    for workload, group in cases.items():
        baseline = statistics.median(group[0].samples_us)
        for case in group:
            median = statistics.median(case.samples_us)
            rows.append(
                {
                    "workload": workload,
                    "library": case.library.name,
                    "median_us": median,
                    "min_us": min(case.samples_us),
                    "ratio": median / baseline,
                    "samples_us": case.samples_us,
                }
            )
    return rows


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "puka-spec": puka_spec.__version__,
        "pika": version("pika"),
        "pamqp": version("pamqp"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | library | median µs | min µs | ratio vs puka-spec |",
        "|---|---|---:|---:|---:|",
    ]
    lines.extend(
        f"| {row['workload']} | {row['library']} | {row['median_us']:.2f} "
        f"| {row['min_us']:.2f} | {row['ratio']:.2f} |"
        for row in rows
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=3000, R=3 (default N=20000, R=7)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    iterations, repeats = (3000, 3) if args.quick else (20000, 7)

    cases = make_cases(deliver_wire())
    measure(cases, iterations, repeats)
    errors = verify(cases)
    if errors:
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        return 1

    rows = results(cases)
    info = versions()
    print(
        f"Python {info['python']} ({platform.python_implementation()}), "
        f"puka-spec {info['puka-spec']}, pika {info['pika']}, pamqp {info['pamqp']}; "
        f"N={iterations} calls x R={repeats} repetitions"
    )
    print()
    print(table(rows))
    if args.json:
        report = {
            "versions": info,
            "implementation": platform.python_implementation(),
            "iterations": iterations,
            "repeats": repeats,
            "results": rows,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
