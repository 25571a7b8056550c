"""Publishes in flight: what they cost, and how confirms in any order settle them.

The publisher keeps each unconfirmed publish at `tag - base` of two lists (its promise, its
body) and what it was sent with in runs of tags; settled entries at the head are dropped once
they are many. A dict of 4-tuples by tag cost about 145 bytes per publish (with the bare
promise's 73, 190 to 240 in all); now 78 to 102 in all.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

import pytest
from puka_spec import encode_method_frame, methods

from tests.core.test_engine_pair import Pair

COUNT = 20000


def _publishing(seed: int = 0) -> tuple[Pair, int]:
    """An open pair whose broker confirms nothing by itself; the publish channel's number."""
    pair = Pair(seed)
    pair.open()
    pair.wait(pair.engine.publish("", "q", False, None, b"first"))  # opens the publish channel
    pair.broker.confirm_batch = 10**9
    publisher = pair.engine.publisher
    assert publisher is not None
    return pair, publisher.channel.number


def test_a_publish_in_flight_costs_about_100_bytes() -> None:
    """Bare publishes of one shared body, none confirmed: 78 to 102 bytes each, as the bare
    promises' dict grows (before: 190 to 240)."""
    pair, _ = _publishing()
    engine, body = pair.engine, b"m" * 16
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(50000):
            engine.publish("", "q", False, None, body, bare=True)
            if engine.outgoing_bytes > 1 << 20:
                engine.data_to_send()
        engine.data_to_send()
        gc.collect()
        each = (tracemalloc.get_traced_memory()[0] - before) / 50000
    finally:
        tracemalloc.stop()
    assert each < 110, f"{each:.0f} bytes per publish in flight"


@pytest.mark.parametrize("seed", range(3))
def test_confirms_in_any_order_settle_each_publish_once(seed: int) -> None:
    """Multiple acks, single acks and nacks in a random order, over more publishes than the
    lists keep settled at their head: each publish ends once, with its own outcome, and what
    stays in flight is exactly what was not confirmed."""
    rng = random.Random(seed)
    pair, channel = _publishing(seed)
    engine = pair.engine
    publisher = engine.publisher
    assert publisher is not None
    first = publisher.next_tag
    numbers = {}
    for index in range(COUNT):
        headers = {"n": index // 500}  # a new run of properties every 500 publishes
        numbers[first + index] = engine.publish("", "q", False, headers, b"m", bare=True)
    engine.data_to_send()
    last = first + COUNT - 1
    outcome: dict[int, str] = {}
    step = first
    while step <= last:
        if rng.random() < 0.3:  # a multiple ack of a stretch (some of it settled before)
            upto = min(last, step + rng.randrange(1, 3000))
            frame = methods.BasicAck(delivery_tag=upto, multiple=True)
            for tag in range(step, upto + 1):
                outcome.setdefault(tag, "ack")
            step = upto + 1
        else:  # single acks and nacks of tags ahead, in any order
            for tag in rng.sample(range(step, min(last, step + 200) + 1), 20):
                if tag in outcome:
                    continue
                nack = rng.random() < 0.2
                outcome[tag] = "nack" if nack else "ack"
                kind = methods.BasicNack if nack else methods.BasicAck
                engine.receive_data(encode_method_frame(channel, kind(delivery_tag=tag)))
            continue
        engine.receive_data(encode_method_frame(channel, frame))
        pending = [tag for tag in range(first, last + 1) if tag not in outcome]
        assert sorted(publisher.unconfirmed()) == pending
        assert publisher.in_flight == len(pending)
    assert publisher.in_flight == 0
    assert len(publisher._promises) < COUNT // 2  # the settled head was dropped
    assert publisher.unknown_confirms == 0
    for tag, number in numbers.items():
        result = engine.promises.take(number)
        assert result is not None, tag
        assert result.is_error == (outcome[tag] == "nack"), tag


def test_a_channel_killed_by_one_publish_sends_the_others_again_as_they_were() -> None:
    """After many publishes were settled and dropped, the publishes still in flight go out
    again with their own routing keys and properties when another kills the channel."""
    pair, channel = _publishing(4)
    engine = pair.engine
    publisher = engine.publisher
    assert publisher is not None
    first = publisher.next_tag
    for index in range(10000):
        engine.publish("", f"q{index // 1000}", False, {"n": index}, b"%d" % index, bare=True)
    engine.data_to_send()
    settled = first + 9000 - 1
    engine.receive_data(
        encode_method_frame(channel, methods.BasicAck(delivery_tag=settled, multiple=True))
    )
    assert publisher._base > first  # the settled head is gone
    expected = publisher.unconfirmed()
    assert sorted(expected) == list(range(settled + 1, first + 10000))
    for tag, (_, key, _, body) in expected.items():
        index = tag - first
        assert key == ("", f"q{index // 1000}", False)
        assert body == b"%d" % index
    assert len({properties for _, _, properties, _ in expected.values()}) == 1000
