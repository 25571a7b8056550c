"""A broker's last words survive a reset: its connection.close is read before the loss is told.

A write that comes before the loop has read the broker's close (320 when its node shuts down)
fails with ECONNRESET, and asyncio's transport reports the loss at once with the close still
unread (`tests.loopback_server`). The protocol reads what is left first, as the blocking
client does, so the reason users and recovery see is the broker's 320, not a bare reset.
(uvloop reads the close before it reports the failed write, so its runs pass either way.)
"""

from __future__ import annotations

import asyncio

import puka_asyncio
import pytest
from puka.errors import ConnectionLost
from puka_spec.exceptions import ConnectionForced

from testkit.fake_broker import FakeBroker
from tests.asyncio.helpers import within
from tests.loopback_server import LoopbackServer


@pytest.mark.parametrize("pubacks", [True, False])
async def test_a_close_unread_when_a_write_is_reset_is_still_the_reason(pubacks: bool) -> None:
    server = LoopbackServer(FakeBroker())
    client = await within(puka_asyncio.connect(server.url, pubacks=pubacks))
    await within(client.queue_declare(queue="q"))
    server.shut_down()
    # no await between the reset and the write: the write comes first, the close is unread
    publish = client.basic_publish(exchange="", routing_key="q", body=b"after the reset")
    outcome = (await within(asyncio.gather(publish, return_exceptions=True)))[0]
    error = client.engine.error
    assert isinstance(error, ConnectionForced), repr(error)
    assert error.reply_code == 320
    if pubacks:  # unconfirmed: it failed, outcome unknown, for the broker's reason
        assert isinstance(outcome, (ConnectionForced, ConnectionLost)), repr(outcome)
        assert isinstance(outcome, ConnectionForced) or "320" in str(outcome), repr(outcome)
    await within(client.close())
