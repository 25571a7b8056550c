"""Consumes: deliveries, prefetch, ack/reject/nack, cancel (ours and the broker's), recover."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import puka
import pytest

from tests.integration.helpers import SOON, Resources, message_count, wait_ok

#: How long to wait to be confident that nothing more is coming.
QUIET = 1.0


@pytest.fixture
def queue(client: Any, resources: Resources) -> str:
    name = resources.queue()
    wait_ok(client, client.queue_declare(queue=name))
    return name


def publish(client: Any, queue: str, count: int, prefix: bytes = b"m") -> list[bytes]:
    bodies = [b"%s%03d" % (prefix, i) for i in range(count)]
    client.wait_for_all(
        [client.basic_publish(exchange="", routing_key=queue, body=body) for body in bodies]
    )
    return bodies


def receive(client: Any, consume: int, count: int) -> list[Any]:
    return [wait_ok(client, consume) for _ in range(count)]


def assert_nothing_more(client: Any, consume: int, quiet: float = QUIET) -> None:
    extra = client.wait(consume, timeout=quiet)
    assert extra is None, f"unexpected delivery {extra!r}"


def test_consume_result_fields(client: Any, queue: str) -> None:
    wait_ok(
        client,
        client.basic_publish(
            exchange="", routing_key=queue, headers={"x-n": 1, "app_id": "a"}, body=b"hi"
        ),
    )
    consume = client.basic_consume(queue=queue)
    message = wait_ok(client, consume)
    assert message["body"] == b"hi"
    assert message["headers"]["x-n"] == 1
    assert message["headers"]["app_id"] == "a"
    assert isinstance(message["delivery_tag"], int)
    assert message["redelivered"] is False
    assert message["exchange"] == ""
    assert message["routing_key"] == queue
    assert isinstance(message["consumer_tag"], str)
    assert message["consumer_tag"]
    assert message.is_error is False
    client.basic_ack(message)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_consume_many_in_order_with_acks(client: Any, queue: str) -> None:
    bodies = publish(client, queue, 300)
    consume = client.basic_consume(queue=queue, prefetch_count=50)
    got = []
    for _ in range(300):  # acked one by one: the prefetch window keeps moving
        message = wait_ok(client, consume)
        got.append(message["body"])
        client.basic_ack(message)
    assert got == bodies
    assert_nothing_more(client, consume, quiet=0.3)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_acks_outside_a_wait_are_handed_to_the_socket_at_once(client: Any, queue: str) -> None:
    """Issue 19 item 1 (this test asserted the old rule, acks queued until 4 KiB or a block):
    `basic_ack` outside a wait leaves nothing queued in the engine or the client."""
    publish(client, queue, 250)
    consume = client.basic_consume(queue=queue, prefetch_count=250)
    messages = receive(client, consume, 250)
    for message in messages:
        client.basic_ack(message)
        assert client.engine.outgoing_bytes == 0 and not client.needs_write()
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_messages_published_after_the_consume_started(client: Any, queue: str) -> None:
    consume = client.basic_consume(queue=queue, no_ack=True)
    assert client.wait(consume, timeout=0.3) is None
    bodies = publish(client, queue, 5)
    assert [m["body"] for m in receive(client, consume, 5)] == bodies
    wait_ok(client, client.basic_cancel(consume))


def test_prefetch_is_honoured(client: Any, queue: str) -> None:
    publish(client, queue, 12)
    consume = client.basic_consume(queue=queue, prefetch_count=5)
    first = receive(client, consume, 5)
    assert [m["body"] for m in first] == [b"m%03d" % i for i in range(5)]
    # no acks: the broker stops at 5
    assert_nothing_more(client, consume)
    # one ack frees one slot
    client.basic_ack(first[0])
    sixth = wait_ok(client, consume)
    assert sixth["body"] == b"m005"
    assert_nothing_more(client, consume)
    for message in [*first[1:], sixth]:
        client.basic_ack(message)
    # all acked: the next 5 come at once, the 12th only after another ack
    rest = receive(client, consume, 5)
    assert [m["body"] for m in rest] == [b"m%03d" % i for i in range(6, 11)]
    assert_nothing_more(client, consume)
    client.basic_ack(rest[0])
    last = wait_ok(client, consume)
    assert last["body"] == b"m011"
    for message in [*rest[1:], last]:
        client.basic_ack(message)
    wait_ok(client, client.basic_cancel(consume))


def test_no_ack_consume_ignores_prefetch_and_empties_queue(client: Any, queue: str) -> None:
    bodies = publish(client, queue, 20)
    consume = client.basic_consume(queue=queue, no_ack=True)
    assert [m["body"] for m in receive(client, consume, 20)] == bodies
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_basic_qos_on_a_running_consume(client: Any, queue: str) -> None:
    consume = client.basic_consume(queue=queue)
    # issued right after the consume (pipelined): its result is its own, not the consume's
    result = wait_ok(client, client.basic_qos(consume, prefetch_count=3, global_=True))
    assert result.is_error is False
    assert result.name == "basic.qos_ok", result
    publish(client, queue, 10)
    # the channel-wide limit applies to the running consumer
    received = receive(client, consume, 3)
    assert_nothing_more(client, consume)
    for message in received:
        client.basic_ack(message)
    received = receive(client, consume, 3)
    assert_nothing_more(client, consume)
    # per-consumer qos (RabbitMQ applies it to later consumers) is accepted
    wait_ok(client, client.basic_qos(consume, prefetch_count=10))
    wait_ok(client, client.basic_qos(consume, prefetch_count=0, global_=True))
    for message in received:
        client.basic_ack(message)
    receive(client, consume, 4)
    wait_ok(client, client.basic_cancel(consume))


def test_ack_removes_messages(client: Any, queue: str) -> None:
    publish(client, queue, 3)
    consume = client.basic_consume(queue=queue)
    for message in receive(client, consume, 3):
        client.basic_ack(message)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


@pytest.mark.parametrize("settle", ["basic_ack", "basic_reject", "basic_nack"])
def test_settling_what_is_not_a_message_to_settle_is_a_value_error(
    client: Any, queue: str, settle: str
) -> None:
    """Not a message, or one fetched with no_ack: a clear `ValueError`; the client goes on."""
    declared = wait_ok(client, client.queue_declare(queue=queue, passive=True))
    publish(client, queue, 1)
    unacked = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    for wrong in ({"delivery_tag": 1}, declared, unacked, None):
        with pytest.raises(ValueError, match="message"):
            getattr(client, settle)(wrong)
    publish(client, queue, 1)
    message = wait_ok(client, client.basic_get(queue=queue))
    getattr(client, settle)(message)  # the client is still fine: the real one is settled
    if settle != "basic_ack":  # requeued: it comes back (the reject runs on another channel)
        deadline = time.monotonic() + SOON
        again = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
        while again.get("empty") and time.monotonic() < deadline:
            again = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
        assert again["body"] == message["body"] and again["redelivered"]


def test_reject_requeue_redelivers(client: Any, queue: str) -> None:
    publish(client, queue, 1)
    consume = client.basic_consume(queue=queue)
    first = wait_ok(client, consume)
    assert first["redelivered"] is False
    client.basic_reject(first)  # requeue=True by default
    again = wait_ok(client, consume)
    assert again["body"] == first["body"]
    assert again["redelivered"] is True
    client.basic_ack(again)
    assert_nothing_more(client, consume, quiet=0.3)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_reject_without_requeue_drops(client: Any, queue: str) -> None:
    publish(client, queue, 2)
    consume = client.basic_consume(queue=queue)
    first, second = receive(client, consume, 2)
    client.basic_reject(first, requeue=False)
    client.basic_ack(second)
    assert_nothing_more(client, consume)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_reject_without_requeue_dead_letters(client: Any, resources: Resources, queue: str) -> None:
    source = resources.queue("dlx-source")
    wait_ok(
        client,
        client.queue_declare(
            queue=source,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue},
        ),
    )
    publish(client, source, 1)
    consume = client.basic_consume(queue=source)
    message = wait_ok(client, consume)
    client.basic_reject(message, requeue=False)
    wait_ok(client, client.basic_cancel(consume))
    dead = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert dead["body"] == b"m000"
    assert "x-death" in dead["headers"]
    assert dead["headers"]["x-death"][0]["reason"] == "rejected"


def test_nack_requeue_redelivers(client: Any, queue: str) -> None:
    publish(client, queue, 1)
    consume = client.basic_consume(queue=queue)
    first = wait_ok(client, consume)
    client.basic_nack(first)  # requeue=True by default
    again = wait_ok(client, consume)
    assert again["body"] == b"m000"
    assert again["redelivered"] is True
    client.basic_nack(again, requeue=False)
    assert_nothing_more(client, consume)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_nack_multiple(client: Any, queue: str) -> None:
    publish(client, queue, 4)
    consume = client.basic_consume(queue=queue)
    messages = receive(client, consume, 4)
    # nack the first three at once, requeued
    client.basic_nack(messages[2], multiple=True, requeue=True)
    again = receive(client, consume, 3)
    assert sorted(m["body"] for m in again) == [b"m000", b"m001", b"m002"]
    assert all(m["redelivered"] for m in again)
    assert_nothing_more(client, consume)
    client.basic_ack(messages[3])
    for message in again:
        client.basic_ack(message)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_cancel_then_no_more_messages(client: Any, queue: str) -> None:
    publish(client, queue, 1)
    consume = client.basic_consume(queue=queue, prefetch_count=1)
    client.basic_ack(wait_ok(client, consume))
    result = wait_ok(client, client.basic_cancel(consume))
    assert result.is_error is False
    assert result.name == "basic.cancel_ok", result
    publish(client, queue, 3, prefix=b"late")
    # the consume yields nothing more: a timed wait gives None (or says the consume is over)
    try:
        extra = client.wait(consume, timeout=QUIET)
    except puka.ChannelClosed:
        extra = None
    assert extra is None, f"a cancelled consume yielded {extra!r}"
    assert message_count(client, queue) == 3


def test_two_cancels_in_flight_both_complete(client: Any, queue: str) -> None:
    consume = client.basic_consume(queue=queue)
    wait_ok(client, client.queue_declare(queue=queue, passive=True))  # consume-ok has arrived
    first, second = client.basic_cancel(consume), client.basic_cancel(consume)
    assert wait_ok(client, first).name == "basic.cancel_ok"
    assert wait_ok(client, second).name == "basic.cancel_ok"
    publish(client, queue, 2)  # nobody consumes them any more
    assert message_count(client, queue) == 2


def test_cancel_racing_the_brokers_cancel(
    client: Any, make_client: Callable[..., Any], queue: str
) -> None:
    """Our basic.cancel crosses the broker's (queue deleted): the cancel-ok that follows the
    broker's cancel must not reach whatever uses the channel next."""
    consume = client.basic_consume(queue=queue)
    wait_ok(client, client.queue_declare(queue=queue, passive=True))  # consume-ok has arrived
    cancel = client.basic_cancel(consume)  # not written yet: the blocking client writes in wait
    other = make_client()
    wait_ok(other, other.queue_delete(queue=queue))  # the broker cancels our consumer first
    assert wait_ok(client, cancel).name == "basic.cancel_ok"
    with pytest.raises(puka.ConsumerCancelled):
        client.wait(consume, timeout=SOON)
    # every channel, the consume's included, serves the next operations
    names = [f"{queue}-after-{i}" for i in range(20)]
    try:
        results = client.wait_for_all(
            [client.queue_declare(queue=n, exclusive=True) for n in names]
        )
        assert [r["queue"] for r in results] == names
    finally:
        client.wait_for_all([client.queue_delete(queue=n) for n in names], raise_errors=False)


def test_consume_with_callback(client: Any, queue: str) -> None:
    seen: list[Any] = []

    def on_message(promise: int, message: Any) -> None:
        seen.append((promise, message))
        client.basic_ack(message)
        if len(seen) == 5:
            client.loop_break()

    consume = client.basic_consume(queue=queue, callback=on_message)
    bodies = publish(client, queue, 5)
    client.loop(timeout=SOON)
    assert [m["body"] for _, m in seen] == bodies
    assert all(p == consume for p, _ in seen)
    wait_ok(client, client.basic_cancel(consume))


def test_consume_multi_two_queues(client: Any, resources: Resources) -> None:
    first, second = resources.queue("multi-a"), resources.queue("multi-b")
    wait_ok(client, client.queue_declare(queue=first))
    wait_ok(client, client.queue_declare(queue=second))
    publish(client, first, 3, prefix=b"a")
    publish(client, second, 3, prefix=b"b")
    consume = client.basic_consume_multi([first, {"queue": second}], prefetch_count=10)
    messages = receive(client, consume, 6)
    assert sorted(m["body"] for m in messages) == [
        b"a000",
        b"a001",
        b"a002",
        b"b000",
        b"b001",
        b"b002",
    ]
    assert {m["routing_key"] for m in messages} == {first, second}
    # per queue, in order
    assert [m["body"] for m in messages if m["routing_key"] == first] == [b"a000", b"a001", b"a002"]
    assert len({m["consumer_tag"] for m in messages}) == 2
    for message in messages:
        client.basic_ack(message)
    assert_nothing_more(client, consume, quiet=0.3)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, first) == 0
    assert message_count(client, second) == 0


def test_consume_multi_dict_options_and_no_ack(client: Any, resources: Resources) -> None:
    first, second = resources.queue("multi-a"), resources.queue("multi-b")
    wait_ok(client, client.queue_declare(queue=first))
    wait_ok(client, client.queue_declare(queue=second))
    consume = client.basic_consume_multi(
        [{"queue": first, "exclusive": True, "arguments": {}}, {"queue": second}], no_ack=True
    )
    assert client.wait(consume, timeout=0.3) is None
    publish(client, first, 2, prefix=b"a")
    publish(client, second, 2, prefix=b"b")
    assert len(receive(client, consume, 4)) == 4
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, first) == 0


def test_explicit_consumer_tag_is_echoed(client: Any, queue: str) -> None:
    tag = "puka-test-tag-ünï-1"
    publish(client, queue, 2)
    consume = client.basic_consume(queue=queue, consumer_tag=tag, no_ack=True)
    for message in receive(client, consume, 2):
        assert message["consumer_tag"] == tag
    wait_ok(client, client.basic_cancel(consume))


def test_exclusive_consume_locks_out_other_consumers(
    client: Any, make_client: Callable[..., Any], queue: str
) -> None:
    consume = client.basic_consume(queue=queue, exclusive=True)
    publish(client, queue, 1)
    wait_ok(client, consume)
    other = make_client()
    with pytest.raises(puka.AccessRefused):
        other.wait(other.basic_consume(queue=queue), timeout=SOON)
    wait_ok(client, client.basic_cancel(consume))


def test_consume_arguments_priority(client: Any, queue: str) -> None:
    consume = client.basic_consume(queue=queue, arguments={"x-priority": 10}, no_ack=True)
    publish(client, queue, 1)
    assert wait_ok(client, consume)["body"] == b"m000"
    wait_ok(client, client.basic_cancel(consume))


def test_no_local_is_accepted(client: Any, queue: str) -> None:
    # RabbitMQ ignores no_local; the flag must still go through
    consume = client.basic_consume(queue=queue, no_local=True, no_ack=True)
    publish(client, queue, 1)
    assert wait_ok(client, consume)["body"] == b"m000"
    wait_ok(client, client.basic_cancel(consume))


def test_consume_missing_queue_is_not_found(client: Any, resources: Resources) -> None:
    with pytest.raises(puka.NotFound):
        client.wait(client.basic_consume(queue=resources.queue("missing")), timeout=SOON)
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))


def test_server_sent_cancel_is_delivered_distinctly(
    client: Any, make_client: Callable[..., Any], queue: str
) -> None:
    consume = client.basic_consume(queue=queue)
    publish(client, queue, 1)
    client.basic_ack(wait_ok(client, consume))
    other = make_client()
    wait_ok(other, other.queue_delete(queue=queue))
    # not silence: either wait raises ConsumerCancelled, or a basic.cancel result comes out
    try:
        result = client.wait(consume, timeout=SOON)
    except puka.ConsumerCancelled:
        pass
    else:
        assert result is not None, "the broker's cancel was swallowed: wait timed out"
        assert result.name == "basic.cancel", result
    # the client keeps working
    wait_ok(client, client.queue_declare(queue=queue))


def test_server_sent_cancel_through_callback(
    client: Any, make_client: Callable[..., Any], queue: str
) -> None:
    seen: list[Any] = []

    def on_result(_promise: int, result: Any) -> None:
        seen.append(result)
        client.loop_break()

    client.basic_consume(queue=queue, callback=on_result)
    publish(client, queue, 1)
    client.loop(timeout=SOON)
    assert len(seen) == 1
    client.basic_ack(seen[0])
    other = make_client()
    wait_ok(other, other.queue_delete(queue=queue))
    client.loop(timeout=SOON)
    assert len(seen) == 2, "the broker's cancel did not reach the callback"
    cancel = seen[1]
    assert cancel.name == "basic.cancel" or (
        cancel.is_error and isinstance(cancel.exception, puka.ConsumerCancelled)
    ), cancel


def test_basic_recover_redelivers_unacked(client: Any, queue: str) -> None:
    publish(client, queue, 3)
    consume = client.basic_consume(queue=queue)
    messages = receive(client, consume, 3)
    client.basic_ack(messages[0])
    result = wait_ok(client, client.basic_recover(consume))
    assert result.is_error is False
    assert result.name == "basic.recover_ok", result
    again = receive(client, consume, 2)
    assert sorted(m["body"] for m in again) == [b"m001", b"m002"]
    assert all(m["redelivered"] for m in again)
    for message in again:
        client.basic_ack(message)
    assert_nothing_more(client, consume)
    wait_ok(client, client.basic_cancel(consume))
    assert message_count(client, queue) == 0


def test_recover_pipelined_right_after_consume(client: Any, queue: str) -> None:
    consume = client.basic_consume(queue=queue)
    recover = client.basic_recover(consume)  # before the consume is even confirmed
    result = wait_ok(client, recover)
    assert result.name == "basic.recover_ok", result
    publish(client, queue, 1)
    client.basic_ack(wait_ok(client, consume))
    cancel = wait_ok(client, client.basic_cancel(consume))
    assert cancel.name == "basic.cancel_ok", cancel


def test_two_consumes_share_a_queue(client: Any, queue: str) -> None:
    one = client.basic_consume(queue=queue, prefetch_count=1, consumer_tag="puka-test-one")
    two = client.basic_consume(queue=queue, prefetch_count=1, consumer_tag="puka-test-two")
    publish(client, queue, 10)
    got: list[bytes] = []
    tags: list[str] = []
    for _ in range(10):
        message = wait_ok(client, [one, two])  # whichever consume has a message
        got.append(message["body"])
        tags.append(message["consumer_tag"])
        client.basic_ack(message)
    assert sorted(got) == [b"m%03d" % i for i in range(10)]
    assert set(tags) == {"puka-test-one", "puka-test-two"}
    wait_ok(client, client.basic_cancel(one))
    wait_ok(client, client.basic_cancel(two))
