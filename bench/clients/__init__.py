"""The clients the benchmark compares, and how each one is written.

This registry is all the orchestrator imports: the client modules themselves (which import
their libraries) are loaded only by the child process of a run. Each module exposes `RUNNERS`,
a dict from workload key to a function taking a `common.Context`. A workload a client cannot
do in a correct way is listed in `unsupported` with the reason, shown as "n/a (reason)".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.common import WORKLOADS


@dataclass(frozen=True)
class ClientInfo:
    """One client as it appears in the results."""

    key: str
    label: str
    module: str
    distribution: str  # whose version is reported ("" for none)
    style: str  # how the client is written, for the report
    unsupported: dict[str, str] = field(default_factory=dict)
    variant_of: str = ""  # the client whose style it varies, on a few workloads only


RAW = "raw"
PUKA = "puka"
PUKA_ASYNCIO = "puka-asyncio"
RAW_BATCH = "raw-batch"
PUKA_CALLBACKS = "puka-callbacks"
PUKA_ASYNCIO_IDIOMS = "puka-asyncio-idioms"
PUKA_RETRY = "puka-retry"
PUKA_TRIO = "puka-trio"


def _only(workloads: set[str], reason: str) -> dict[str, str]:
    """`unsupported` for a client that runs only `workloads`: every other one, for `reason`."""
    return {w.key: reason for w in WORKLOADS if w.key not in workloads}


CLIENTS: tuple[ClientInfo, ...] = (
    ClientInfo(
        RAW,
        "raw socket (ceiling)",
        "bench.clients.raw",
        "",
        "pre-encoded frames written with sendall; replies parsed with struct, no objects",
    ),
    ClientInfo(
        PUKA,
        "puka",
        "bench.clients.puka_blocking",
        "puka",
        "puka.Client; promises pipelined, wait/wait_for_all; acked consumes in callbacks (loop)",
    ),
    ClientInfo(
        PUKA_ASYNCIO,
        "puka-asyncio",
        "bench.clients.puka_async",
        "puka-asyncio",
        "puka_asyncio; wait_for_all over call futures, async for (callbacks when acked)",
    ),
    ClientInfo(
        PUKA_TRIO,
        "puka-anyio (trio)",
        "bench.clients.puka_trio",
        "puka-anyio",
        "puka_anyio on trio; wait_for_all over call handles, async for + basic_ack",
    ),
    ClientInfo(
        RAW_BATCH,
        "raw socket, multiple acks (ceiling)",
        "bench.clients.raw_batch",
        "",
        "the raw ceiling's acked consume, one multiple ack per read (not one ack per message)",
        _only({"consume-ack"}, "only an acked consume has acks to merge"),
        RAW,
    ),
    ClientInfo(
        PUKA_CALLBACKS,
        "puka callbacks",
        "bench.clients.puka_callbacks",
        "puka",
        "puka.Client as in Puka 0.0.8: a callback per publish or message, run by loop()",
        _only({"confirm-pipelined", "consume-noack"}, "not one of the idioms it measures"),
        PUKA,
    ),
    ClientInfo(
        PUKA_ASYNCIO_IDIOMS,
        "puka-asyncio gather / async for",
        "bench.clients.puka_async_idioms",
        "puka-asyncio",
        "puka_asyncio; asyncio.gather over windows of 1,000 publishes, async for + basic_ack",
        _only({"confirm-pipelined", "consume-ack"}, "not one of the idioms it measures"),
        PUKA_ASYNCIO,
    ),
    ClientInfo(
        PUKA_RETRY,
        "puka at-least-once",
        "bench.clients.puka_retry",
        "puka",
        "puka.Client; basic_publish(..., retry=True): at least once, a message_id each",
        _only({"confirm-pipelined"}, "it measures at-least-once publishing only"),
        PUKA,
    ),
    ClientInfo(
        "pika",
        "pika BlockingConnection",
        "bench.clients.pika_blocking",
        "pika",
        "BlockingChannel; basic_consume + start_consuming",
        {
            "confirm-pipelined": "BlockingChannel waits for each confirm; see pika Select",
            "declare-pipelined": "BlockingChannel waits for each reply; see pika Select",
        },
    ),
    ClientInfo(
        "pika-select",
        "pika SelectConnection",
        "bench.clients.pika_select",
        "pika",
        "SelectConnection callbacks; publishes in batches between I/O rounds",
    ),
    ClientInfo(
        "aio-pika",
        "aio-pika",
        "bench.clients.aio_pika_client",
        "aio-pika",
        "aio_pika.connect; default_exchange.publish, queue.consume callbacks",
    ),
    ClientInfo(
        "aiormq",
        "aiormq",
        "bench.clients.aiormq_client",
        "aiormq",
        "aiormq.connect; channel.basic_publish, basic_consume callbacks",
    ),
    ClientInfo(
        "py-amqp",
        "py-amqp",
        "bench.clients.py_amqp",
        "amqp",
        "amqp.Connection; drain_events, confirms through channel.events",
    ),
)
CLIENTS_BY_KEY = {c.key: c for c in CLIENTS}
