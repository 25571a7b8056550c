"""The broker's side of a run: what the orchestrator sets up before it and checks after it.

Done by the orchestrator's process over `rawamqp` (never in the measured child, so neither the
pre-fill nor the check counts towards a client's CPU time or memory):

before: declare the run's queues; for a consume workload, pre-fill the queue with its N
    bodies (published with confirms, then the count checked by passive declare) — for
    large-consume, N copies of the 4 MiB body, encoded and written one message at a time;
    for rpc, start the fixed responder (`responder.py`) and wait until it consumes.
after: for a publish workload, the queue must hold exactly N messages, which are drained and
    compared (CRC over the bodies, in order) with what should have been published; for a
    consume workload and the 4 MiB ones, the queue must be empty once the client has closed
    its connection (an unacked message would be back in it); for the declare workloads, every
    declared queue must exist. Then every queue the run may have created is deleted — also
    when the run failed or timed out.
"""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import zlib

from puka_spec import methods

from bench.common import (
    CONSUMING,
    DECLARING,
    LARGE_SIZE,
    PUBLISHING,
    WORKLOADS_BY_KEY,
    Broker,
    expected_crc,
    large_body,
    queue_names,
    small_bodies,
)
from bench.rawamqp import RawConnection, read_deliveries

RESPONDER_START_TIMEOUT = 15.0


class BrokerCheckFailed(Exception):
    """The broker's state after a run is not what the workload should have left."""


class Stage:
    """Set-up, check and clean-up of one run's queues (and responder)."""

    def __init__(self, broker: Broker, workload: str, count: int, prefix: str) -> None:
        self.broker = broker
        self.workload = WORKLOADS_BY_KEY[workload]
        self.count = count
        self.queue = f"{prefix}.q"
        self.reply_queue = f"{prefix}.reply"
        self.names = queue_names(workload, prefix, count)
        self.responder: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Queues, pre-filled messages, responder."""
        key = self.workload.key
        if key in DECLARING:
            return
        with RawConnection(self.broker) as conn:
            conn.declare(self.queue)
            if key == "rpc":
                conn.declare(self.reply_queue)
            bodies = self._prefill()
            if bodies:
                conn.publish_confirmed(self.queue, bodies)
                seen = conn.message_count(self.queue)
                if seen != self.count:
                    raise BrokerCheckFailed(f"pre-fill left {seen} messages, not {self.count}")
        if key == "rpc":
            self._start_responder()

    def _prefill(self) -> list[bytes]:
        """What a consume workload's queue holds before the run ([] for the others)."""
        key = self.workload.key
        if key in CONSUMING:
            return small_bodies(self.count)
        if key == "large-consume":
            return [large_body()] * self.count  # one body, referenced N times
        return []

    def _start_responder(self) -> None:
        command = [
            sys.executable,
            "-m",
            "bench.responder",
            self.broker.url,
            self.queue,
            self.reply_queue,
            str(self.count),
        ]
        self.responder = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
        stdout = self.responder.stdout
        assert stdout is not None
        readable, _, _ = select.select([stdout], [], [], RESPONDER_START_TIMEOUT)
        if not readable or stdout.readline().strip() != b"ready":
            raise BrokerCheckFailed("the RPC responder did not start")

    def verify(self) -> None:
        """Check what the broker holds after a successful client run."""
        key = self.workload.key
        with RawConnection(self.broker) as conn:
            if key in PUBLISHING:
                seen = conn.message_count(self.queue)
                if seen != self.count:
                    raise BrokerCheckFailed(f"queue holds {seen} messages, not {self.count}")
                crc = 0

                def take(body: bytes) -> None:
                    nonlocal crc
                    crc = zlib.crc32(body, crc)

                conn.consume(self.queue, no_ack=True)
                read_deliveries(conn, self.count, take, ack=False)
                if crc != expected_crc(self.count):
                    raise BrokerCheckFailed("the queue's bodies differ from those published")
            elif key in CONSUMING or self.workload.size == LARGE_SIZE:
                left = conn.message_count(self.queue)
                if left:
                    raise BrokerCheckFailed(f"{left} messages left in the queue (unacked?)")
            elif key in DECLARING:
                for start in range(0, self.count, 500):
                    chunk = self.names[2:][start : start + 500]
                    conn.pipelined(1, [methods.QueueDeclare(queue=n, passive=True) for n in chunk])

    def cleanup(self) -> str:
        """Stop the responder, delete every queue the run may have made; '' or what failed."""
        if self.responder is not None:
            with contextlib.suppress(ProcessLookupError):
                self.responder.kill()
            self.responder.wait()
            if self.responder.stdout is not None:
                self.responder.stdout.close()
            self.responder = None
        try:
            with RawConnection(self.broker) as conn:
                conn.delete_queues(self.names)
        except Exception as exc:
            return f"could not delete the queues {self.names[0]}...: {exc}"
        return ""
