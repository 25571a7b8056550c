"""RPC over direct reply-to: no reply queue, replies come straight back to the caller.

    python examples/rpc_direct_reply_to.py [N]  # AMQP_URL picks another broker

Two connections driven from one thread: a server consuming its request queue, and a caller
that consumes the pseudo-queue ``amq.rabbitmq.reply-to`` and publishes its requests ON THE SAME
CHANNEL (``channel_of=`` the consume), as RabbitMQ requires. The server squares numbers.
Exits 0 once every call got its answer.
"""

from __future__ import annotations

import os
import sys
import uuid

import puka

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REPLY_TO = "amq.rabbitmq.reply-to"


def main(count: int) -> int:
    server = puka.Client(URL)
    caller = puka.Client(URL)
    server.wait(server.connect())
    caller.wait(caller.connect())
    rpc_queue = f"puka-example-rpc-{uuid.uuid4().hex[:8]}"
    answers: dict[str, int] = {}
    try:
        server.wait(server.queue_declare(queue=rpc_queue))

        def serve(_promise: int, request: puka.Result) -> None:
            """The server: answer each request to the address in its reply_to."""
            number = int(request["body"])
            server.basic_publish(
                exchange="",
                routing_key=request["headers"]["reply_to"],
                headers={"correlation_id": request["headers"]["correlation_id"]},
                body=str(number * number),
            )
            server.basic_ack(request)

        def on_reply(_promise: int, reply: puka.Result) -> None:
            answers[reply["headers"]["correlation_id"]] = int(reply["body"])
            if len(answers) == count:
                caller.loop_break()
                server.loop_break()

        requests = server.basic_consume(queue=rpc_queue, callback=serve)
        replies = caller.basic_consume(queue=REPLY_TO, no_ack=True, callback=on_reply)
        for n in range(count):
            caller.basic_publish(
                exchange="",
                routing_key=rpc_queue,
                headers={"reply_to": REPLY_TO, "correlation_id": f"call-{n}"},
                body=str(n),
                channel_of=replies,  # the channel that consumes amq.rabbitmq.reply-to
            )
        puka.loop([caller, server], timeout=30)

        expected = {f"call-{n}": n * n for n in range(count)}
        if answers != expected:
            missing = sorted(set(expected) - set(answers))
            print(f"wrong or missing answers (missing: {missing[:5]})", file=sys.stderr)
            return 1
        print(f"{count} RPC calls answered through {REPLY_TO}")
        caller.wait(caller.basic_cancel(replies))
        server.wait(server.basic_cancel(requests))
    finally:
        server.wait(server.queue_delete(queue=rpc_queue))
        caller.wait(caller.close())
        server.wait(server.close())
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
