"""atheris target: the sans-I/O engine fed server bytes after a scripted handshake.

The input picks a sequence of frames, each a well-formed template (deliveries, confirms,
channel opens and closes, content) with fuzzed channel numbers, tags and sizes, or raw fuzzed
bytes. `Engine.receive_data` must never raise; a connection that ends must end with a typed error
and fail every promise with it. Run by hand (see README.md).
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["puka", "puka_spec"]):
    from puka import Engine, parse_url
    from puka.errors import PukaError
    from puka_spec import (
        AMQPError,
        BasicProperties,
        encode_header_frame,
        encode_method_frame,
        methods,
    )

START = methods.ConnectionStart(0, 9, {"capabilities": {"publisher_confirms": True}}, b"PLAIN", b"")
HANDSHAKE = [
    encode_method_frame(0, START),
    encode_method_frame(0, methods.ConnectionTune(16, 4096, 0)),
    encode_method_frame(0, methods.ConnectionOpenOk()),
]


def _templates(fdp: atheris.FuzzedDataProvider) -> list[Callable[[int], bytes]]:
    tag = lambda: fdp.ConsumeIntInRange(0, 12)  # noqa: E731
    return [
        lambda ch: encode_method_frame(ch, methods.ChannelOpenOk()),
        lambda ch: encode_method_frame(ch, methods.ConfirmSelectOk()),
        lambda ch: encode_method_frame(ch, methods.BasicAck(tag(), fdp.ConsumeBool())),
        lambda ch: encode_method_frame(ch, methods.BasicNack(tag(), fdp.ConsumeBool(), False)),
        lambda ch: encode_method_frame(ch, methods.BasicConsumeOk("c")),
        lambda ch: encode_method_frame(ch, methods.BasicDeliver("c", tag(), False, "", "q")),
        lambda ch: encode_method_frame(ch, methods.BasicReturn(312, "NO_ROUTE", "", "q")),
        lambda ch: encode_method_frame(ch, methods.BasicGetOk(tag(), False, "", "q", 0)),
        lambda ch: encode_method_frame(ch, methods.BasicCancel("c", False)),
        lambda ch: encode_method_frame(ch, methods.QueueDeclareOk("q", 0, 0)),
        lambda ch: encode_method_frame(ch, methods.ChannelClose(404, "NOT_FOUND", 50, 10)),
        lambda ch: encode_method_frame(ch, methods.ChannelCloseOk()),
        lambda ch: encode_method_frame(ch, methods.ChannelFlow(fdp.ConsumeBool())),
        lambda ch: encode_method_frame(0, methods.ConnectionBlocked("x")),
        lambda ch: encode_method_frame(0, methods.ConnectionUnblocked()),
        lambda ch: encode_method_frame(0, methods.ConnectionClose(320, "bye", 0, 0)),
        lambda ch: encode_method_frame(0, methods.ConnectionCloseOk()),
        lambda ch: encode_header_frame(
            ch, 60, fdp.ConsumeIntInRange(0, 1 << 40), BasicProperties(message_id="m")
        ),
        lambda ch: struct.pack(">BHI", 3, ch, 3) + b"abc\xce",
        lambda ch: struct.pack(">BHI", 8, ch, 0) + b"\xce",
    ]


def test_one_input(data: bytes) -> None:
    """One fuzz input: operations to start, then frames (templates or raw bytes)."""
    fdp = atheris.FuzzedDataProvider(data)
    engine = Engine(parse_url("amqp://guest:guest@localhost/"), max_message_size=1 << 16)
    engine.handle_timer(0.0)
    engine.connect()
    for frame in HANDSHAKE:
        engine.receive_data(frame)
    promises = [
        engine.rpc(methods.QueueDeclare(queue="q")),
        engine.publish("", "q", fdp.ConsumeBool(), None, b"x"),
        engine.publish("", "q", False, None, b"y"),
        engine.consume([methods.BasicConsume(queue="q")], 0),
        engine.get("q", False),
    ]
    engine.data_to_send()
    templates = _templates(fdp)
    for _ in range(fdp.ConsumeIntInRange(0, 24)):
        if fdp.ConsumeProbability() < 0.8:
            channel = fdp.ConsumeIntInRange(0, 6)
            chunk = templates[fdp.ConsumeIntInRange(0, len(templates) - 1)](channel)
        else:
            chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))
        engine.receive_data(chunk)  # must never raise
        engine.data_to_send()
        for promise in promises:
            while promise.results:
                result = promise.results.popleft()
                if result.is_error and not isinstance(result.exception, (AMQPError, PukaError)):
                    raise AssertionError(f"untyped error {result.exception!r}")
        if engine.closed:
            break
    if engine.closed:
        if not isinstance(engine.error, (AMQPError, PukaError)):
            raise AssertionError(f"the engine ended with {engine.error!r}")
        if any(not p.done for p in promises):
            raise AssertionError("a promise is still pending on a closed engine")


def main() -> None:
    """Run the fuzzer (atheris takes libFuzzer's flags, e.g. -max_total_time=120)."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
