"""Engine micro-benchmark: Puka's per-message cost with no broker and no socket.

Puka's engine is sans-I/O, so its per-message work can be timed on its own: an `Engine` is
connected to the in-memory fake broker the test suite uses too (`testkit/fake_broker.py`) for the
handshake and the consume set-up, then

consume-ack
    the engine is fed the wire bytes of N deliveries (``basic.deliver`` + content header with
    two properties + 100-byte body, pre-encoded, in 64 KiB chunks as a socket would hand them
    over); each message is taken from the consume promise and acknowledged; the ack frames the
    engine queues are collected (`data_to_send`) after each chunk, as a driver would write them.
consume-noack
    the same with an auto-ack consume (no acks to send).
publish
    N publishes with confirms on (`engine.publish` with a 100-byte body and one header), their
    frames collected; then the broker's ``basic.ack`` frames (one per publish) are fed back and
    each publish's result taken.

This is the work the blocking and asyncio clients do per message minus the system calls: the
table gives microseconds per message.

``--traced`` measures the same with puka-opentelemetry instrumenting the engine: an SDK
`TracerProvider` whose one span processor drops every span (the cost of making the spans, not
of exporting them); each delivery then carries a W3C ``traceparent`` header, as a traced
publisher sends it, and each publish gets one. Under ``--instructions`` the script only runs the
workloads (for `valgrind --tool=callgrind`, whose instruction counts stay the same whatever
else the machine is doing):

    python -m bench.engine [--count N] [--repeat R]          # from the repository root
    valgrind --tool=callgrind python -m bench.engine --instructions consume-ack --count 0
    valgrind --tool=callgrind python -m bench.engine --instructions consume-ack --count 20000
    (the difference of the two totals divided by 20000 is the cost of one message, with the
    set-up's encoding of the broker's frames for it; ``--setup-only`` with ``--count 20000``
    in place of ``--count 0`` leaves that out: the engine's own cost)
    python -m bench.engine --traced                           # the same, traced

or ``hatch run bench:engine``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from puka import Engine, parse_url
from puka_spec import BasicProperties, encode_content, encode_method_frame, methods

from testkit.fake_broker import FakeBroker

BODY = b"x" * 100
TRACING = False  # set by --traced
CHUNK = 65536
QUEUE = "bench"


class Setup:
    """An engine after the handshake, talking to the fake broker."""

    def __init__(self) -> None:
        self.broker = FakeBroker()
        self.engine = Engine(parse_url("amqp://guest:guest@localhost/"))
        self.engine.handle_timer(0.0)
        self.settle(self.engine.connect())
        self.settle(self.engine.rpc(methods.QueueDeclare(queue=QUEUE)))

    def pump(self) -> None:
        """Move bytes both ways until both sides are quiet."""
        while True:
            out = self.engine.data_to_send()
            if out:
                self.broker.receive_data(out)
            back = self.broker.data_to_send()
            if back:
                self.engine.receive_data(back)
            if not out and not back:
                return

    def settle(self, promise: object) -> None:
        self.pump()
        result = self.engine.promises.take(promise.number)  # type: ignore[attr-defined]
        if result is None or result.is_error:
            raise RuntimeError(f"set-up step failed: {result!r}")


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
"""The trace context a traced publisher puts in each message (`--traced`)."""


def traced() -> None:
    """Instrument Puka with puka-opentelemetry; its spans are made, and dropped when ended."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from puka_opentelemetry import PukaInstrumentor

    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())  # the base class: does nothing with a span
    PukaInstrumentor().instrument(tracer_provider=provider)


def _deliveries(channel: int, tag: str, count: int) -> list[bytes]:
    """The wire bytes of `count` deliveries, cut in CHUNK-sized pieces."""
    props = BasicProperties(content_type="application/octet-stream", delivery_mode=2)
    if TRACING:
        props.headers = {"traceparent": TRACEPARENT}
    wire = b"".join(
        encode_content(
            channel,
            methods.BasicDeliver(
                consumer_tag=tag, delivery_tag=i + 1, exchange="", routing_key=QUEUE
            ),
            props,
            BODY,
            131072,
        )
        for i in range(count)
    )
    return [wire[i : i + CHUNK] for i in range(0, len(wire), CHUNK)]


def consume(count: int, *, no_ack: bool) -> Callable[[], int]:
    """Set up a consume; return the timed part, which returns how many messages it took."""
    setup = Setup()
    engine = setup.engine
    promise = engine.consume([methods.BasicConsume(queue=QUEUE, no_ack=no_ack)], 0, None)
    setup.pump()
    channel = promise.op.channel.number
    (tag,) = setup.broker.consumers
    chunks = _deliveries(channel, tag, count)
    take, number = engine.promises.take, promise.number

    def run() -> int:
        taken = 0
        for chunk in chunks:
            engine.receive_data(chunk)
            while (message := take(number)) is not None:
                if message.is_error:
                    raise RuntimeError(f"delivery failed: {message!r}")
                if not no_ack:
                    engine.ack(message)
                taken += 1
            engine.data_to_send()
        return taken

    return run


def publish(count: int) -> Callable[[], int]:
    """Publishes with confirms, then their acks; return the timed part."""
    setup = Setup()
    engine = setup.engine
    # the publisher's channel in confirm mode: one publish through the broker first
    setup.settle(engine.publish("", QUEUE, False, None, BODY))
    channel = engine.publisher.channel.number  # type: ignore[union-attr]
    first = setup.broker.channels[channel].publish_seq + 1  # the next publish's tag
    acks = b"".join(
        encode_method_frame(channel, methods.BasicAck(delivery_tag=first + i, multiple=False))
        for i in range(count)
    )
    chunks = [acks[i : i + CHUNK] for i in range(0, len(acks), CHUNK)]
    headers = {"x-id": "abc"}

    def run() -> int:
        promises = [engine.publish("", QUEUE, False, headers, BODY) for _ in range(count)]
        engine.data_to_send()
        for chunk in chunks:
            engine.receive_data(chunk)
        take = engine.promises.take
        for promise in promises:
            result = take(promise.number)
            if result is None or result.is_error:
                raise RuntimeError(f"publish {promise.number} not confirmed: {result!r}")
        return count

    return run


WORKLOADS: dict[str, Callable[[int], Callable[[], int]]] = {
    "consume-ack": lambda n: consume(n, no_ack=False),
    "consume-noack": lambda n: consume(n, no_ack=True),
    "publish": publish,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per workload")
    parser.add_argument(
        "--instructions",
        metavar="WORKLOAD",
        choices=sorted(WORKLOADS),
        help="run WORKLOAD once, untimed (for callgrind)",
    )
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="with --instructions: set WORKLOAD up for --count messages, do not run it",
    )
    parser.add_argument(
        "--traced", action="store_true", help="with puka-opentelemetry's spans (see above)"
    )
    args = parser.parse_args(argv)
    if args.traced:
        global TRACING  # noqa: PLW0603 - one switch for the whole run
        TRACING = True
        traced()
    if args.instructions:
        run = WORKLOADS[args.instructions](args.count)
        if args.count and not args.setup_only:
            run()
        return 0
    print(
        f"Python {sys.version.split()[0]}; {args.count} messages x {args.repeat} runs"
        f"{'; traced (puka-opentelemetry)' if args.traced else ''}\n"
    )
    print("| workload | median µs/msg | min µs/msg |")
    print("|---|---:|---:|")
    for name, make in WORKLOADS.items():
        times = []
        for _ in range(args.repeat):
            run = make(args.count)
            gc.collect()
            started = time.perf_counter()
            taken = run()
            times.append((time.perf_counter() - started) / args.count * 1e6)
            if taken != args.count:
                raise RuntimeError(f"{name}: {taken} of {args.count} messages")
        print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
