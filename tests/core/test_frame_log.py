"""The `puka.frames` logger (issue 19 item 8): one DEBUG line per frame, no body, no secret."""

from __future__ import annotations

import logging

import pytest
from puka.engine import frame_log
from puka_spec import methods

from tests.core.test_engine_pair import Pair

SECRET = "s3cr3t-Pa55"


def _frames(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "puka.frames"]


def test_every_frame_in_and_out_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="puka.frames")
    pair = Pair(21)  # (the fake broker takes guest/guest only)
    pair.open()
    engine = pair.engine
    pair.wait(engine.rpc(methods.QueueDeclare(queue="q")))
    body = b"the body is never printed"
    pair.wait(engine.publish("", "q", False, {"content_type": "text/plain", "x-a": 1}, body))
    pair.wait(engine.get("q", False))
    lines = _frames(caplog)
    assert lines[0] == "> protocol header AMQP 0-9-1"
    assert any(line.startswith("< ch=0 connection.start version_major=0") for line in lines)
    assert "> ch=0 connection.start-ok " in "\n".join(lines)
    assert any(
        line.startswith("> ch=1 basic.publish exchange='' routing_key='q' mandatory=False")
        for line in lines
    )
    header = [line for line in lines if line.startswith("> ch=1 header")]
    assert header == [
        "> ch=1 header body_size=25 properties={'content_type': 'text/plain', "
        "'headers': {'x-a': 1}}"
    ]
    assert f"> ch=1 body {len(body)} bytes" in lines
    assert any(line.startswith("< ch=") and "basic.get-ok" in line for line in lines)
    assert f"< ch=2 body {len(body)} bytes" in lines or f"< ch=1 body {len(body)} bytes" in lines
    text = "\n".join(lines)
    assert "never printed" not in text
    assert "response=<redacted>" in text and "\\x00guest" not in text


def test_a_new_secret_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="puka.frames")
    pair = Pair(22)
    pair.open()
    pair.engine.update_secret(SECRET.encode(), "refresh")
    pair.engine.data_to_send()
    text = "\n".join(_frames(caplog))
    assert "connection.update-secret new_secret=<redacted> reason='refresh'" in text
    assert SECRET not in text


def test_heartbeats_are_logged_both_ways(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="puka.frames")
    pair = Pair(23, url="amqp://guest:guest@localhost/?heartbeat=2")
    pair.open()
    pair.engine.handle_timer(1.0)
    pair.engine.handle_timer(2.0)
    pair.broker.send_heartbeat()
    pair.pump()
    lines = _frames(caplog)
    assert "> heartbeat" in lines and "< heartbeat" in lines


def test_nothing_is_described_while_debug_is_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off (the default), the engine asks once per batch and formats nothing."""
    caplog.set_level(logging.INFO, logger="puka.frames")

    def fail(frame: object) -> list[str]:
        raise AssertionError("a frame was described with DEBUG off")

    monkeypatch.setattr(frame_log, "describe", fail)
    pair = Pair(24)
    pair.open()
    pair.wait(pair.engine.publish("", "q", False, None, b"x"))
    assert _frames(caplog) == []
