"""The fixed RPC responder: the same fast raw-socket echo server for every client's rpc run.

Started by `child.py` as a process of its own (so neither its CPU time nor its memory counts as
the client's), it consumes the request queue with auto-ack and, for each request, publishes its
body unchanged to the reply queue named on the command line, with no properties. It ignores the
requests' `reply_to` and `correlation_id` (clients set them as a real RPC client would; replies
are matched by body). It prints `ready` once consuming, and exits after `count` requests or
when its connection is closed.

    python -m bench.responder URL REQUEST_QUEUE REPLY_QUEUE COUNT
"""

from __future__ import annotations

import sys

from puka_spec import encode_content, methods

from bench.common import Broker
from bench.rawamqp import RawConnection, read_deliveries


def main(argv: list[str]) -> int:
    url, request_queue, reply_queue, count = argv[0], argv[1], argv[2], int(argv[3])
    with RawConnection(Broker.from_url(url)) as conn:
        conn.consume(request_queue, no_ack=True)
        method = methods.BasicPublish(exchange="", routing_key=reply_queue).encode()
        frame_max = conn.frame_max
        out: list[bytes] = []

        def reply(body: bytes) -> None:
            out.append(encode_content(1, method, b"\x00\x00", body, frame_max))

        print("ready", flush=True)
        try:
            read_deliveries(conn, count, reply, ack=False, out=out)
        except (ConnectionError, OSError):
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
