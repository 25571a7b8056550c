"""The engine against the in-memory fake broker: whole scenarios, bytes fed in random splits."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from puka import Engine, NoRoute, NotFound, PreconditionFailed, PublishNacked, Recovery, parse_url
from puka.engine.channels import SHORT_CHANNELS
from puka.errors import ClientClosed, ConnectionLost, ConsumerCancelled
from puka.promises import Promise
from puka.results import Result
from puka_spec import encode_method_frame, methods
from puka_spec.exceptions import AccessRefused, ConnectionForced, UnexpectedFrame

from testkit.fake_broker import FakeBroker


class Pair:
    """An engine wired to a fake broker; `pump` moves bytes both ways in random slices."""

    def __init__(
        self, seed: int = 0, url: str = "amqp://guest:guest@localhost/", **kw: object
    ) -> None:
        self.rng = random.Random(seed)
        self.broker = FakeBroker(seed=seed)
        self.engine = Engine(parse_url(url), **kw)  # type: ignore[arg-type]
        self.engine.handle_timer(0.0)

    def _slices(self, data: bytes) -> list[bytes]:
        out, pos = [], 0
        while pos < len(data):
            step = self.rng.randint(1, 64)
            out.append(data[pos : pos + step])
            pos += step
        return out

    def pump(self) -> None:
        for _ in range(200):
            to_broker = self.engine.data_to_send()
            for piece in self._slices(to_broker):
                self.broker.receive_data(piece)
            to_client = self.broker.data_to_send()
            for piece in self._slices(to_client):
                self.engine.receive_data(piece)
            if not to_broker and not to_client:
                return
        raise AssertionError("the pair never went quiet")

    def wait(self, promise: object) -> Result:
        self.pump()
        result = self.engine.promises.take(promise.number)  # type: ignore[attr-defined]
        assert result is not None, "no result"
        return result

    def open(self) -> None:
        result = self.wait(self.engine.connect())
        assert result.name == "connection.open_ok"

    def consuming(self, queue: str, tag: str) -> Promise:
        """Open, declare `queue` and start a consume of it under consumer tag `tag`."""
        self.open()
        self.wait(self.engine.rpc(methods.QueueDeclare(queue=queue)))
        consume = self.engine.consume([methods.BasicConsume(queue=queue, consumer_tag=tag)], 0)
        self.pump()
        return consume


@pytest.mark.parametrize("seed", range(5))
def test_declare_publish_get_round_trip(seed: int) -> None:
    pair = Pair(seed)
    pair.open()
    engine = pair.engine
    assert pair.wait(engine.rpc(methods.QueueDeclare(queue="q")))["queue"] == "q"
    body = bytes(range(256)) * 40  # every byte value; the pair splits the stream at random
    confirm = pair.wait(engine.publish("", "q", False, {"content_type": "x/y", "x-n": 1}, body))
    assert not confirm.is_error
    got = pair.wait(engine.get("q", False))
    assert got["body"] == body
    assert got["headers"] == {"content_type": "x/y", "x-n": 1}
    engine.ack(got)
    pair.pump()
    assert not pair.broker.channels[got._ack[0].number].unacked  # type: ignore[index]


def test_a_large_body_goes_out_as_views_of_it_between_joined_small_buffers() -> None:
    pair = Pair(3)
    pair.open()
    engine = pair.engine
    pair.wait(engine.rpc(methods.QueueDeclare(queue="big")))
    body = bytes(range(256)) * 2048  # 512 KiB: several frames whatever frame_max was agreed
    small = [engine.publish("", "big", False, None, b"s%d" % i) for i in range(3)]
    large = engine.publish("", "big", False, None, body)
    after = engine.publish("", "big", False, None, b"after")
    buffers = engine.buffers_to_send()
    views = [b for b in buffers if isinstance(b, memoryview)]
    assert len(views) == -(-len(body) // (engine.frame_max - 8))
    assert all(view.obj is body for view in views)
    kinds = [isinstance(b, memoryview) for b in buffers]
    assert all(a or b for a, b in pairwise(kinds)), "small buffers next to each other"
    pair.broker.receive_data(b"".join(buffers))
    for promise in [*small, large, after]:
        assert not pair.wait(promise).is_error
    got = [pair.wait(engine.get("big", True))["body"] for _ in range(5)]
    assert got == [b"s0", b"s1", b"s2", body, b"after"]


@pytest.mark.parametrize("channel_max", [1, 3])
def test_more_operations_than_channels_wait_for_one(channel_max: int) -> None:
    """With every channel in use, further operations queue until a channel is free."""
    pair = Pair(7)
    pair.open()
    pair.engine.channels.channel_max = channel_max
    names = [f"q{i}" for i in range(10)]
    declares = [pair.engine.rpc(methods.QueueDeclare(queue=name)) for name in names]
    assert len(pair.engine.channels.by_number) <= channel_max
    assert [pair.wait(promise)["queue"] for promise in declares] == names
    assert len(pair.engine.channels.by_number) <= channel_max


def test_calls_before_the_handshake_are_queued() -> None:
    pair = Pair(1)
    connect = pair.engine.connect()
    declare = pair.engine.rpc(methods.QueueDeclare(queue="early"))
    publish = pair.engine.publish("", "early", False, None, b"x")
    pair.pump()
    assert pair.engine.promises.take(connect.number) is not None
    assert pair.wait(declare)["queue"] == "early"
    assert not pair.wait(publish).is_error
    assert len(pair.broker.queues["early"].messages) == 1


def test_pipelined_declares_use_many_channels_and_recycle_them() -> None:
    pair = Pair(2)
    pair.open()
    promises = [pair.engine.rpc(methods.QueueDeclare(queue=f"q{i}")) for i in range(50)]
    pair.pump()
    assert all(pair.engine.promises.take(p.number) for p in promises)
    assert len(pair.engine.channels) == 50
    assert len(pair.broker.queues) >= 50
    again = [pair.engine.rpc(methods.QueueDeclare(queue=f"q{i}", passive=True)) for i in range(50)]
    pair.pump()
    assert all(pair.engine.promises.take(p.number) for p in again)
    assert len(pair.engine.channels) == 50  # reused, not opened again


def test_short_operations_open_at_most_short_channels_and_keep_their_order() -> None:
    """A burst of declares runs on SHORT_CHANNELS reused channels, not one new channel each."""
    pair = Pair(8)
    pair.open()
    engine = pair.engine
    names = [f"q{i}" for i in range(3 * SHORT_CHANNELS + 5)]
    declares = [engine.rpc(methods.QueueDeclare(queue=name)) for name in names]
    consume = engine.consume([methods.BasicConsume(queue="q0", consumer_tag="late")], 0)
    gets = [engine.get("q1", True) for _ in range(3)]
    assert len(engine.channels) == SHORT_CHANNELS  # the rest wait, the consume behind them
    peak = 0
    for _ in range(200):
        to_broker = engine.data_to_send()
        pair.broker.receive_data(to_broker)
        to_client = pair.broker.data_to_send()
        engine.receive_data(to_client)
        peak = max(peak, len(engine.channels))
        if not to_broker and not to_client:
            break
    # at most SHORT_CHANNELS for the short operations, plus the consume's own
    assert peak <= SHORT_CHANNELS + 1
    assert [pair.wait(p)["queue"] for p in declares] == names
    assert all(pair.wait(p)["empty"] for p in gets)
    assert "late" in pair.broker.consumers
    assert not consume.done


def test_consumes_holding_channels_leave_short_operations_their_places() -> None:
    pair = Pair(9)
    pair.open()
    engine = pair.engine
    pair.wait(engine.rpc(methods.QueueDeclare(queue="held")))
    consumes = [
        engine.consume([methods.BasicConsume(queue="held", consumer_tag=f"c{i}")], 0)
        for i in range(SHORT_CHANNELS + 2)
    ]
    pair.pump()
    assert len(pair.broker.consumers) == SHORT_CHANNELS + 2
    declares = [engine.rpc(methods.QueueDeclare(queue=f"d{i}")) for i in range(10)]
    assert [pair.wait(p)["queue"] for p in declares] == [f"d{i}" for i in range(10)]
    assert all(not c.done for c in consumes)


def test_unacked_gets_do_not_hold_the_places_of_short_operations() -> None:
    """A get whose message is not acked yet parks its channel; the next get still runs."""
    pair = Pair(10)
    pair.open()
    engine = pair.engine
    pair.wait(engine.rpc(methods.QueueDeclare(queue="g")))
    count = SHORT_CHANNELS + 3
    for i in range(count):
        pair.wait(engine.publish("", "g", False, None, b"%d" % i))
    got = []
    for _ in range(count):  # each waited for and kept unacked, as a batch-acking reader would
        got.append(pair.wait(engine.get("g", False)))
    assert [m["body"] for m in got] == [b"%d" % i for i in range(count)]
    assert pair.wait(engine.get("g", False))["empty"]
    for message in got:
        engine.ack(message)
    pair.pump()
    assert not any(ch.unacked for ch in pair.broker.channels.values())


def test_short_operations_whose_channels_the_broker_closes_free_their_places() -> None:
    pair = Pair(11)
    pair.open()
    engine = pair.engine
    count = 2 * SHORT_CHANNELS + 1
    missing = [engine.rpc(methods.QueueDeclare(queue=f"no{i}", passive=True)) for i in range(count)]
    results = [pair.wait(p) for p in missing]
    assert all(isinstance(r.exception, NotFound) for r in results)
    assert engine.channels.short_owned == 0
    assert pair.wait(engine.rpc(methods.QueueDeclare(queue="after")))["queue"] == "after"


def test_a_channel_error_fails_only_its_operation() -> None:
    pair = Pair(3)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="d", durable=True)))
    bad = pair.engine.rpc(methods.QueueDeclare(queue="d"))
    good = pair.engine.rpc(methods.QueueDeclare(queue="other"))
    missing = pair.engine.rpc(methods.QueueDeclare(queue="nope", passive=True))
    pair.pump()
    assert isinstance(pair.engine.promises.take(bad.number).exception, PreconditionFailed)  # type: ignore[union-attr]
    assert pair.engine.promises.take(good.number)["queue"] == "other"  # type: ignore[index]
    assert isinstance(pair.engine.promises.take(missing.number).exception, NotFound)  # type: ignore[union-attr]
    assert pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="d", durable=True)))["queue"] == "d"


def test_confirms_batched_nacked_and_returned() -> None:
    pair = Pair(4)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="q")))
    pair.broker.confirm_batch = 3
    promises = [pair.engine.publish("", "q", False, None, b"%d" % i) for i in range(6)]
    pair.pump()
    assert all(not pair.engine.promises.take(p.number).is_error for p in promises)  # type: ignore[union-attr]
    pair.broker.confirm_batch = 1
    pair.broker.nack_next = 1
    nacked = pair.wait(pair.engine.publish("", "q", False, None, b"n"))
    assert isinstance(nacked.exception, PublishNacked)
    returned = pair.wait(pair.engine.publish("", "no-such-queue", True, None, b"r"))
    assert isinstance(returned.exception, NoRoute)
    assert returned["body"] == b"r"
    assert not pair.wait(pair.engine.publish("", "q", True, None, b"ok")).is_error


def test_publish_to_a_missing_exchange_fails_in_flight_publishes_only() -> None:
    pair = Pair(5)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="q")))
    failed = pair.wait(pair.engine.publish("missing-exchange", "q", False, None, b"x"))
    assert isinstance(failed.exception, NotFound)
    assert not pair.wait(pair.engine.publish("", "q", False, None, b"later")).is_error


def test_consume_prefetch_ack_cancel() -> None:
    pair = Pair(6)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="q")))
    for i in range(10):
        pair.engine.publish("", "q", False, None, b"%d" % i)
    consume = pair.engine.consume([methods.BasicConsume(queue="q")], 3)
    pair.pump()
    got = []
    while (result := pair.engine.promises.take(consume.number)) is not None:
        got.append(result)
    assert [m["body"] for m in got] == [b"0", b"1", b"2"]  # prefetch 3
    for message in got:
        pair.engine.ack(message)
    pair.pump()
    while (result := pair.engine.promises.take(consume.number)) is not None:
        got.append(result)
    assert len(got) == 6
    cancel = pair.engine.on_holder(consume.number, "cancel", methods.BasicCancel(consumer_tag=""))
    assert pair.wait(cancel).name == "basic.cancel_ok"
    assert pair.engine.promises.is_finished_consume(consume.number) or consume.done


def test_a_repeated_consume_ok_is_dropped_and_an_unknown_one_is_refused() -> None:
    """RabbitMQ 3.10 may answer one consume on a quorum queue twice during a leader election."""
    pair = Pair(6)
    consume = pair.consuming("q", "t1")
    number = consume.op.channel.number
    pair.broker.inject(encode_method_frame(number, methods.BasicConsumeOk(consumer_tag="t1")))
    pair.pump()
    assert pair.engine.duplicate_consume_oks == 1
    assert not pair.engine.closed
    assert not pair.wait(pair.engine.publish("", "q", False, None, b"after")).is_error
    assert pair.wait(consume)["body"] == b"after"  # the consume goes on, registered once
    pair.broker.inject(encode_method_frame(number, methods.BasicConsumeOk(consumer_tag="t2")))
    pair.pump()
    assert pair.engine.closed
    assert isinstance(pair.engine.error, UnexpectedFrame)
    assert pair.engine.error.reply_code == 505


def test_server_cancel_is_delivered_distinctly() -> None:
    pair = Pair(7)
    consume = pair.consuming("q", "tag-1")
    pair.broker.delete_queue("q")
    pair.pump()
    result = pair.engine.promises.take(consume.number)
    assert result is not None
    assert result.name == "basic.cancel"
    assert result.is_error


def _drain(pair: Pair, promise: Promise) -> list[Result]:
    pair.pump()
    results = []
    while (result := pair.engine.promises.take(promise.number)) is not None:
        results.append(result)
    return results


def test_a_consumer_tag_may_repeat_within_a_multi_consume() -> None:
    """Issue 19: one tag on several queues of one consume no longer closes the connection (530).

    On the wire the tags become unique (`tag.N`); deliveries, the broker's cancel and the
    cancel-ok show the tag the user gave.
    """
    pair = Pair(11)
    pair.open()
    for queue in ("a", "b", "c"):
        pair.wait(pair.engine.rpc(methods.QueueDeclare(queue=queue)))
        assert not pair.wait(pair.engine.publish("", queue, False, None, queue.encode())).is_error
    consume = pair.engine.consume(
        [
            methods.BasicConsume(queue="a", consumer_tag="same"),
            methods.BasicConsume(queue="b", consumer_tag="same"),
            methods.BasicConsume(queue="c", consumer_tag="same.1"),  # the wire name of "b"'s
        ],
        0,
    )
    messages = _drain(pair, consume)
    assert not pair.engine.closed
    assert sorted((m["body"], m["consumer_tag"]) for m in messages) == [
        (b"a", "same"),
        (b"b", "same"),
        (b"c", "same.1"),
    ]
    assert sorted(pair.broker.channels[consume.op.channel.number].consumers) == [
        "same.0",
        "same.1",
        "same.1.2",
    ]
    for message in messages:
        pair.engine.ack(message)
    pair.broker.delete_queue("b")
    (cancelled,) = _drain(pair, consume)
    assert isinstance(cancelled.exception, ConsumerCancelled)
    assert cancelled["consumer_tag"] == "same"
    cancel = pair.engine.on_holder(consume.number, "cancel", methods.BasicCancel(consumer_tag=""))
    assert pair.wait(cancel)["consumer_tag"] in ("same", "same.1")
    assert not pair.engine.closed


def test_distinct_consumer_tags_go_out_as_given() -> None:
    pair = Pair(12)
    pair.open()
    for queue in ("a", "b"):
        pair.wait(pair.engine.rpc(methods.QueueDeclare(queue=queue)))
    consume = pair.engine.consume(
        [
            methods.BasicConsume(queue="a", consumer_tag="one"),
            methods.BasicConsume(queue="b", consumer_tag=""),
            methods.BasicConsume(queue="a", consumer_tag="two"),
        ],
        0,
    )
    pair.pump()
    tags = sorted(pair.broker.channels[consume.op.channel.number].consumers)
    assert tags[1:] == ["one", "two"]
    assert tags[0].startswith("amq.ctag-")


def test_wrong_password_and_missing_vhost() -> None:
    pair = Pair(8, url="amqp://guest:s3cret@localhost/")
    result = pair.wait(pair.engine.connect())
    assert isinstance(result.exception, AccessRefused)
    assert "s3cret" not in str(result.exception)
    with pytest.raises(ClientClosed):
        pair.engine.rpc(methods.QueueDeclare(queue="q"))
    pair = Pair(9, url="amqp://guest:guest@localhost/nope")
    result = pair.wait(pair.engine.connect())
    assert result.exception is not None
    assert result.exception.reply_code == 530  # type: ignore[attr-defined]


def test_broker_close_and_transport_loss_fail_everything_pending() -> None:
    pair = Pair(10)
    pair.open()
    pending = pair.engine.rpc(methods.QueueDeclare(queue="q", passive=True))
    pair.broker.close_connection()
    pair.engine.receive_data(pair.broker.data_to_send())
    assert isinstance(pair.engine.promises.take(pending.number).exception, ConnectionForced)  # type: ignore[union-attr]
    pair = Pair(11)
    pair.open()
    pending = pair.engine.publish("", "q", False, None, b"x")
    pair.engine.connection_lost(OSError("reset"))
    assert isinstance(pair.engine.promises.take(pending.number).exception, ConnectionLost)  # type: ignore[union-attr]


def test_heartbeats_are_sent_and_a_silent_broker_is_dead() -> None:
    from puka.errors import HeartbeatTimeout

    pair = Pair(12, url="amqp://guest:guest@localhost/?heartbeat=2")
    pair.open()
    assert pair.engine.heartbeat == 2
    now = 0.0
    for _ in range(6):  # idle: the engine sends heartbeats every second
        now += 1.0
        pair.engine.handle_timer(now)
        pair.broker.send_heartbeat()
        pair.pump()
    assert pair.broker.heartbeats_received >= 4
    pending = pair.engine.rpc(methods.QueueDeclare(queue="q", passive=True))
    for _ in range(6):  # the broker goes silent
        now += 1.0
        pair.engine.handle_timer(now)
    result = pair.engine.promises.take(pending.number)
    assert result is not None
    assert isinstance(result.exception, HeartbeatTimeout)


@pytest.mark.parametrize("last_byte", [10.0, 10.01, 10.49, 10.5, 10.99])
def test_a_dead_broker_is_reported_two_intervals_after_its_last_byte(last_byte: float) -> None:
    """Issue 19 item 7: with the arrival time passed in, the deadline is the last byte plus two
    heartbeat intervals, whatever the phase of the half-interval ticks (it was up to 2.5)."""
    from puka.errors import HeartbeatTimeout

    pair = Pair(14, url="amqp://guest:guest@localhost/?heartbeat=2")
    pair.open()
    engine = pair.engine
    now = 0.0
    while now < last_byte:  # a live broker: a heartbeat now and then, timed as it arrives
        now = min(now + 0.5, last_byte)
        engine.handle_timer(now)
        pair.broker.send_heartbeat()
        engine.data_to_send()
        engine.receive_data(pair.broker.data_to_send(), now)
    pending = engine.rpc(methods.QueueDeclare(queue="q", passive=True))
    timer = engine.next_timer()
    assert timer is not None and timer <= last_byte + 4.0
    while (timer := engine.next_timer()) is not None and timer < last_byte + 4.0:
        engine.handle_timer(timer)  # the ticks before the deadline: still alive
        assert not engine.closed
    assert timer == pytest.approx(last_byte + 4.0)
    engine.handle_timer(timer)
    result = engine.promises.take(pending.number)
    assert result is not None and isinstance(result.exception, HeartbeatTimeout)
    assert "for 4.0 s" in str(result.exception)


@pytest.mark.parametrize("recovering", [False, True], ids=["no-recovery", "recovery"])
def test_a_lost_transport_is_the_cause_of_the_connection_lost(recovering: bool) -> None:
    """The socket's own error (a reset, EPIPE) stays reachable as ``__cause__``: it tells a
    reset apart from a clean EOF, which the broker's reply code cannot when none came."""
    pair = Pair(13)
    if recovering:
        pair.engine.recovery = Recovery()
    pair.open()
    lost: list[BaseException] = []
    pair.engine.on_connection_lost = lost.append
    pending = pair.engine.publish("", "q", False, None, b"x")
    reset = ConnectionResetError(104, "Connection reset by peer")
    pair.engine.connection_lost(reset)
    error = pair.engine.promises.take(pending.number).exception  # type: ignore[union-attr]
    assert isinstance(error, ConnectionLost)
    assert "Connection reset by peer" in str(error)
    reported = lost[0] if recovering else error
    assert reported.__cause__ is reset


def _take(pair: Pair, number: int) -> Result:
    result = pair.engine.promises.take(number)
    assert result is not None, f"promise {number} is still pending"
    return result


def test_bare_publishes_settle_by_batched_confirm_nack_and_return() -> None:
    """What `puka.Client` publishes: numbers, no promise objects, settled by tag."""
    pair = Pair(14)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="q")))
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # opens the publish channel
    pair.broker.confirm_batch = 3
    numbers = [pair.engine.publish("", "q", False, None, b"%d" % i, bare=True) for i in range(6)]
    assert set(numbers) == set(pair.engine.promises.bare)  # no objects made
    assert all(pair.engine.promises.take(n) is None for n in numbers)  # in flight
    pair.pump()
    assert all(_take(pair, n).name == "basic.ack" for n in numbers)
    assert pair.engine.promises.live == {} and not pair.engine.promises.bare
    pair.broker.confirm_batch = 1
    pair.broker.nack_next = 1
    nacked = pair.engine.publish("", "q", False, None, b"n", bare=True)
    returned = pair.engine.publish("", "no-such-queue", True, None, b"r", bare=True)
    pair.pump()
    assert isinstance(_take(pair, nacked).exception, PublishNacked)
    assert _take(pair, returned)["body"] == b"r"
    with pytest.raises(TypeError):  # a bare promise has nowhere to keep a callback
        pair.engine.publish("", "q", False, None, b"c", lambda n, r: None, bare=True)  # type: ignore[call-overload]


def test_a_missing_exchange_fails_its_bare_publish_and_sends_the_others_again() -> None:
    pair = Pair(15)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="q")))
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # opens the publish channel
    pair.broker.confirm_batch = 10  # nothing confirmed before the channel dies
    before = pair.engine.publish("", "q", False, None, b"before", bare=True)
    culprit = pair.engine.publish("missing-exchange", "q", False, None, b"x", bare=True)
    after = pair.engine.publish("", "q", False, None, b"after", bare=True)
    assert {before, culprit, after} == set(pair.engine.promises.bare)
    pair.pump()
    assert isinstance(_take(pair, culprit).exception, NotFound)
    pair.broker.confirm_batch = 1
    pair.wait(pair.engine.publish("", "q", False, None, b"flush"))
    assert _take(pair, before).name == "basic.ack"
    assert _take(pair, after).name == "basic.ack"


def test_publishes_in_flight_share_their_destination() -> None:
    """A publish in flight keeps one new tuple (what the collector counts), not two: its
    (exchange, routing key, mandatory) is the publisher's cached one."""
    pair = Pair(17)
    pair.open()
    pair.wait(pair.engine.rpc(methods.QueueDeclare(queue="q")))
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # opens the publish channel
    pair.broker.confirm_batch = 100  # nothing confirmed yet
    for i in range(3):
        pair.engine.publish("", "q", False, {"n": i}, b"%d" % i, bare=True)
        pair.engine.publish("", "other", True, None, b"%d" % i, bare=True)
    publisher = pair.engine.publisher
    assert publisher is not None
    keys = [entry[1] for entry in publisher.unconfirmed().values()]
    assert keys == [("", "q", False), ("", "other", True)] * 3
    assert len({id(key) for key in keys}) == 2


def test_bare_publishes_without_confirms_settle_once_written() -> None:
    pair = Pair(16, pubacks=False)
    pair.open()
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # opens the publish channel
    number = pair.engine.publish("", "q", False, None, b"x", bare=True)
    assert number in pair.engine.promises.bare
    closing = pair.engine.close()
    assert pair.engine.promises.take(number) is None  # queued, not written yet
    sent = pair.engine.data_to_send()
    assert sent.index(b"x") < sent.index(b"Goodbye")  # the close follows the publish
    assert _take(pair, number).name == "ok"
    pair.broker.receive_data(sent)
    pair.engine.receive_data(pair.broker.data_to_send())
    assert _take(pair, closing.number).name == "connection.close_ok"


@pytest.mark.parametrize("pubacks", [True, False])
def test_a_lost_connection_fails_bare_publishes_while_recovering(pubacks: bool) -> None:
    pair = Pair(17, pubacks=pubacks)
    pair.engine.recovery = Recovery()
    pair.open()
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # opens the publish channel
    number = pair.engine.publish("", "q", False, None, b"x", bare=True)  # not even written
    assert number in pair.engine.promises.bare
    pair.engine.connection_lost(ConnectionResetError(104, "reset"))
    assert isinstance(_take(pair, number).exception, ConnectionLost)
    assert not pair.engine.promises.bare


@pytest.mark.parametrize("recovering", [False, True], ids=["no-recovery", "recovery"])
@pytest.mark.parametrize("cause", ["blocked", "heartbeat"])
def test_a_timeout_fails_what_is_in_flight_with_its_own_class(recovering: bool, cause: str) -> None:
    """Issue 19 item 7: `except puka.BlockedTimeout` (or `HeartbeatTimeout`) catches the
    publishes in flight with recovery on as well as off; both are `ConnectionLost`s."""
    from puka import BlockedTimeout, HeartbeatTimeout, Recovery

    expected = BlockedTimeout if cause == "blocked" else HeartbeatTimeout
    pair = Pair(
        15,
        url="amqp://guest:guest@localhost/?heartbeat=2",
        blocked_timeout=1.0,
        recovery=Recovery() if recovering else None,
    )
    pair.open()
    engine = pair.engine
    engine.handle_timer(0.0)
    if cause == "blocked":
        assert pair.broker.block()
        engine.receive_data(pair.broker.data_to_send(), 0.1)
    pending = engine.publish("", "q", False, None, b"x")
    result = None
    for step in range(1, 60):  # the broker answers nothing more
        engine.handle_timer(step * 0.1)
        if (result := engine.promises.take(pending.number)) is not None:
            break
        if cause == "blocked":  # but it is alive: heartbeats keep coming
            pair.broker.send_heartbeat()
            engine.receive_data(pair.broker.data_to_send(), step * 0.1)
    assert result is not None, "the publish was never failed"
    assert type(result.exception) is expected, repr(result.exception)
    assert engine.state.value == ("recovering" if recovering else "closed")
    pair.broker.send_heartbeat()  # a late byte of the dropped transport changes nothing
    engine.receive_data(pair.broker.data_to_send(), 10.0)
    assert engine.state.value == ("recovering" if recovering else "closed")


def test_a_forced_close_crossing_our_close_ends_the_connection_even_with_recovery() -> None:
    """We sent connection.close and the broker's own close (320, a node shutting down) crossed
    it: the connection is over, as the user asked; it is not recovered."""
    pair = Pair()
    pair.engine.recovery = Recovery()
    pair.open()
    close = pair.engine.close()
    pair.engine.data_to_send()  # our close is on the wire; the broker's crosses it
    pair.broker.close_connection()
    pair.engine.receive_data(pair.broker.data_to_send(), 1.0)
    assert pair.engine.closed
    assert not pair.engine.recovering and not pair.engine.transport_wanted
    result = pair.engine.promises.take(close.number)
    assert result is not None and isinstance(result.exception, ConnectionForced)
    assert pair.engine.next_timer() is None  # no reconnect scheduled
