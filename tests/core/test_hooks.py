"""`puka.hooks`: what an instrumentation sees of publishes and deliveries (issue 21 item 3).

The engine against the in-memory fake broker: a hook adds headers without touching the caller's
dict, learns each publish's outcome exactly once (confirmed, nacked, returned, refused, lost),
sees every delivery with its queue, and stops seeing anything once uninstalled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from puka import ConnectionParameters, NoRoute, PublishNacked
from puka.errors import ClientClosed, ConnectionLost
from puka.hooks import (
    INSTALLED,
    Hook,
    Outcome,
    OutgoingMessage,
    install,
    installed,
    recall,
    remember,
    uninstall,
)
from puka.results import Result
from puka_spec import methods

from tests.core.test_engine_pair import Pair


class Recorder(Hook):
    """Adds a header to every publish and records what it is told."""

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.published: list[OutgoingMessage] = []
        self.outcomes: list[tuple[str, Result]] = []
        self.deliveries: list[tuple[Result, str, bool]] = []

    def on_publish(self, params: ConnectionParameters, message: OutgoingMessage) -> Outcome | None:
        self.published.append(message)
        message.add_header(f"x-{self.name}", message.routing_key)
        key = message.routing_key

        def outcome(result: Result) -> None:
            self.outcomes.append((key, result))

        return outcome

    def on_delivery(
        self, params: ConnectionParameters, message: Result, queue: str, no_ack: bool
    ) -> None:
        self.deliveries.append((message, queue, no_ack))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    hook = Recorder()
    install(hook)
    try:
        yield hook
    finally:
        uninstall(hook)
    assert not INSTALLED


def _open_pair() -> Pair:
    pair = Pair()
    pair.open()
    for name in ("q1", "q2"):
        pair.wait(pair.engine.rpc(methods.QueueDeclare(queue=name)))
    return pair


def test_a_hook_adds_headers_and_learns_each_confirm_once(recorder: Recorder) -> None:
    pair = _open_pair()
    headers = {"app": 1}
    first = pair.engine.publish("", "q1", False, headers, b"one")
    second = pair.engine.publish("", "q2", False, None, b"two", bare=True)
    pair.pump()
    assert headers == {"app": 1}  # the caller's dict is never changed
    assert [key for key, _ in recorder.outcomes] == ["q1", "q2"]
    assert all(not r.is_error for _, r in recorder.outcomes)
    assert pair.engine.promises.take(first.number) is not None
    assert pair.engine.promises.take(second) is not None
    queued = pair.broker.queues["q1"].messages[0]
    assert queued.properties.headers == {"app": 1, "x-rec": "q1"}
    assert [m.body for m in recorder.published] == [b"one", b"two"]
    assert pair.broker.queues["q2"].messages[0].properties.headers == {"x-rec": "q2"}
    assert not pair.engine.promises.watchers  # nothing left behind


def test_a_nacked_publish_is_an_error_outcome(recorder: Recorder) -> None:
    pair = _open_pair()
    pair.wait(pair.engine.publish("", "q1", False, None, b"first"))  # opens the publish channel
    pair.broker.nack_next = 1
    promise = pair.engine.publish("", "q1", False, None, b"nacked")
    pair.pump()
    _key, result = recorder.outcomes[-1]
    assert result.is_error and isinstance(result.exception, PublishNacked)
    assert pair.engine.promises.take(promise.number) is result  # the user sees the same result


def test_a_returned_publish_is_an_error_outcome(recorder: Recorder) -> None:
    pair = _open_pair()
    pair.engine.publish("", "nowhere", True, None, b"lost")
    pair.pump()
    assert len(recorder.outcomes) == 1
    assert isinstance(recorder.outcomes[0][1].exception, NoRoute)


def test_publishes_lost_with_the_connection_are_error_outcomes(recorder: Recorder) -> None:
    pair = _open_pair()
    pair.wait(pair.engine.publish("", "q1", False, None, b"first"))
    for n in range(3):
        pair.engine.publish("", "q1", False, None, b"%d" % n, bare=True)
    pair.engine.data_to_send()  # written, never confirmed
    pair.engine.connection_lost(ConnectionResetError("reset"), 1.0)
    lost = recorder.outcomes[1:]
    assert len(lost) == 3
    assert all(isinstance(r.exception, ConnectionLost) for _, r in lost)
    assert not pair.engine.promises.watchers


def test_a_refused_publish_is_an_error_outcome_and_still_raises(recorder: Recorder) -> None:
    pair = _open_pair()
    with pytest.raises(TypeError, match="priority"):
        pair.engine.publish("", "q1", False, {"priority": "high"}, b"bad")
    assert isinstance(recorder.outcomes[-1][1].exception, TypeError)
    pair.wait(pair.engine.close())
    with pytest.raises(ClientClosed):
        pair.engine.publish("", "q1", False, None, b"late")
    assert isinstance(recorder.outcomes[-1][1].exception, ClientClosed)
    assert len(recorder.outcomes) == 2


def test_a_publish_before_the_connection_opens_is_watched_too(recorder: Recorder) -> None:
    pair = Pair()
    connect = pair.engine.connect()
    promise = pair.engine.publish("", "q1", False, None, b"early")  # deferred: not open yet
    pair.wait(connect)
    pair.pump()
    assert len(recorder.outcomes) == 1
    assert pair.engine.promises.take(promise.number) is not None


def test_deliveries_are_seen_with_their_queue(recorder: Recorder) -> None:
    pair = _open_pair()
    for queue in ("q1", "q2"):
        pair.broker.publish("", queue, b"for " + queue.encode())
    consume = pair.engine.consume(
        [methods.BasicConsume(queue="q1"), methods.BasicConsume(queue="q2", no_ack=True)], 0
    )
    pair.pump()
    seen = {(m["body"], queue, no_ack) for m, queue, no_ack in recorder.deliveries}
    assert seen == {(b"for q1", "q1", False), (b"for q2", "q2", False)}
    taken = [pair.engine.promises.take(consume.number) for _ in range(2)]
    assert {m["body"] for m in taken if m is not None} == {b"for q1", b"for q2"}


def test_a_fetched_message_is_seen_with_its_queue(recorder: Recorder) -> None:
    pair = _open_pair()
    pair.broker.publish("", "q2", b"fetched")
    result = pair.wait(pair.engine.get("q2", no_ack=True))
    assert recorder.deliveries == [(result, "q2", True)]


def test_a_failing_hook_is_logged_and_the_client_goes_on(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hook):
        def on_publish(
            self, params: ConnectionParameters, message: OutgoingMessage
        ) -> Outcome | None:
            raise RuntimeError("broken on_publish")

        def on_delivery(
            self, params: ConnectionParameters, message: Result, queue: str, no_ack: bool
        ) -> None:
            raise RuntimeError("broken on_delivery")

    broken = Broken()
    install(broken)
    try:
        pair = _open_pair()
        with caplog.at_level(logging.ERROR, logger="puka"):
            promise = pair.engine.publish("", "q1", False, None, b"still")
            pair.broker.publish("", "q2", b"delivered")
            pair.wait(pair.engine.get("q2", no_ack=True))
        assert not pair.wait(promise).is_error
        assert len(recorder.outcomes) == 1 and len(recorder.deliveries) == 1
        assert "broken on_publish" in caplog.text and "broken on_delivery" in caplog.text
    finally:
        uninstall(broken)


def test_uninstall_stops_the_hook(recorder: Recorder) -> None:
    pair = _open_pair()
    uninstall(recorder)
    assert installed() == ()
    pair.wait(pair.engine.publish("", "q1", False, None, b"unseen"))
    assert recorder.published == [] and recorder.outcomes == []
    install(recorder)
    install(recorder)  # once only
    assert installed() == (recorder,)


def test_two_hooks_each_add_a_header_and_each_hear_the_outcome(recorder: Recorder) -> None:
    other = Recorder("other")
    install(other)
    try:
        pair = _open_pair()
        pair.wait(pair.engine.publish("", "q1", False, {"app": 1}, b"both"))
        headers = pair.broker.queues["q1"].messages[0].properties.headers
        assert headers == {"app": 1, "x-rec": "q1", "x-other": "q1"}
        assert len(recorder.outcomes) == len(other.outcomes) == 1
    finally:
        uninstall(other)


def test_install_refuses_what_is_not_a_hook() -> None:
    bad: Any = object()
    with pytest.raises(TypeError, match=r"puka\.hooks\.Hook"):
        install(bad)


def test_add_header_refuses_a_property_name() -> None:
    message = OutgoingMessage("", "q", False, {"message_id": "m1"}, None)
    assert message.property("message_id") == "m1"
    with pytest.raises(ValueError, match="basic property"):
        message.add_header("message_id", "m2")
    with_properties = OutgoingMessage("", "q", False, {"message_id": "h"}, {"message_id": "p"})
    assert with_properties.property("message_id") == "p"


def test_a_hook_keeps_a_value_with_a_message_it_saw(recorder: Recorder) -> None:
    pair = _open_pair()
    pair.broker.publish("", "q1", b"first")
    pair.broker.publish("", "q1", b"second")
    consume = pair.engine.consume([methods.BasicConsume(queue="q1", no_ack=True)], 0)
    pair.pump()
    first, second = (pair.engine.promises.take(consume.number) for _ in range(2))
    assert first is not None and second is not None
    other = Recorder("other")
    assert recall(recorder, first) is None  # nothing kept yet
    remember(recorder, first, "span of the first")
    remember(other, first, 2)
    remember(recorder, second, "span of the second")
    assert recall(recorder, first) == "span of the first"
    assert recall(other, first) == 2 and recall(other, second) is None
    remember(recorder, first, "replaced")
    assert recall(recorder, first) == "replaced"
    assert "span" not in repr(first) and set(first) == set(second)  # the dict is untouched


def test_remember_and_recall_refuse_what_is_not_a_message(recorder: Recorder) -> None:
    with pytest.raises(TypeError, match="remember: message must be a puka Result"):
        remember(recorder, {"body": b""}, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"recall: message must be a puka Result .*, not str"):
        recall(recorder, "message")  # type: ignore[arg-type]
