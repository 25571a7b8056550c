"""Direct reply-to RPC: consume amq.rabbitmq.reply-to and publish on the same channel."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import puka

from tests.integration.helpers import SOON, BreakClock, Resources, wait_ok

REPLY_TO = "amq.rabbitmq.reply-to"


def test_direct_reply_to_round_trip(make_client: Callable[..., Any], resources: Resources) -> None:
    server, caller = make_client(), make_client()
    rpc_queue = resources.queue("rpc")
    wait_ok(server, server.queue_declare(queue=rpc_queue))
    requests = server.basic_consume(queue=rpc_queue)

    replies = caller.basic_consume(queue=REPLY_TO, no_ack=True)
    for n in range(5):
        correlation_id = f"call-{n}"
        wait_ok(
            caller,
            caller.basic_publish(
                exchange="",
                routing_key=rpc_queue,
                headers={"reply_to": REPLY_TO, "correlation_id": correlation_id},
                body=b"%d" % n,
                channel_of=replies,
            ),
        )
        request = wait_ok(server, requests)
        reply_to = request["headers"]["reply_to"]
        assert reply_to.startswith(REPLY_TO + ".")  # the broker's per-channel pseudo-queue
        assert request["headers"]["correlation_id"] == correlation_id
        wait_ok(
            server,
            server.basic_publish(
                exchange="",
                routing_key=reply_to,
                headers={"correlation_id": request["headers"]["correlation_id"]},
                body=b"%d" % (int(request["body"]) ** 2),
            ),
        )
        server.basic_ack(request)
        reply = wait_ok(caller, replies)
        assert reply["headers"]["correlation_id"] == correlation_id
        assert reply["body"] == b"%d" % (n * n)
    wait_ok(caller, caller.basic_cancel(replies))
    wait_ok(server, server.basic_cancel(requests))


def test_direct_reply_to_with_callbacks_and_puka_loop(
    make_client: Callable[..., Any], resources: Resources
) -> None:
    server, caller = make_client(), make_client()
    rpc_queue = resources.queue("rpc")
    wait_ok(server, server.queue_declare(queue=rpc_queue))
    count = 20
    answers: dict[str, bytes] = {}
    clock = BreakClock()

    def serve(_promise: int, request: Any) -> None:
        server.basic_publish(
            exchange="",
            routing_key=request["headers"]["reply_to"],
            headers={"correlation_id": request["headers"]["correlation_id"]},
            body=request["body"].upper(),
        )
        server.basic_ack(request)

    def on_reply(_promise: int, reply: Any) -> None:
        answers[reply["headers"]["correlation_id"]] = reply["body"]
        if len(answers) == count:
            clock.mark()
            caller.loop_break()
            server.loop_break()

    requests = server.basic_consume(queue=rpc_queue, callback=serve)
    replies = caller.basic_consume(queue=REPLY_TO, no_ack=True, callback=on_reply)
    for n in range(count):
        caller.basic_publish(
            exchange="",
            routing_key=rpc_queue,
            headers={"reply_to": REPLY_TO, "correlation_id": f"c{n}"},
            body=b"hello %d" % n,
            channel_of=replies,
        )
    puka.loop([caller, server], timeout=SOON * 2)
    returned = time.monotonic()
    assert answers == {f"c{n}": b"HELLO %d" % n for n in range(count)}
    clock.assert_prompt(returned)
    wait_ok(server, server.basic_cancel(requests))
