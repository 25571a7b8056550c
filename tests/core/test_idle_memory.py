"""What an idle connection holds: no empty deques, one copy of the broker's properties.

Thousands of idle connections from one process are the case (issue 22: memory per idle
connection): a deque costs 760 bytes even empty, the decoded server properties about 1.7 KB.
"""

from __future__ import annotations

from collections import deque

import puka
from puka import promises as promises_module
from puka.blocking.client import Client
from puka.engine import handshake

from tests.core.test_engine_pair import Pair


def test_connections_to_one_broker_share_its_properties_and_hand_out_copies() -> None:
    one, two = Pair(1), Pair(2)
    first = one.wait(one.engine.connect())
    second = two.wait(two.engine.connect())
    assert one.engine.server_properties is two.engine.server_properties  # one copy, shared
    assert one.engine.server_properties["product"] == "RabbitMQ"
    # what callers get is theirs to change
    first["server_properties"]["product"] = "changed"
    first["server_properties"]["capabilities"]["publisher_confirms"] = False
    assert second["server_properties"]["product"] == "RabbitMQ"
    assert two.engine.server_properties["capabilities"]["publisher_confirms"] is True


def test_different_properties_are_kept_apart_and_the_memory_is_bounded() -> None:
    tables = [{"product": "RabbitMQ", "version": f"3.{i}"} for i in range(20)]
    shared = [handshake.shared_server_properties(dict(t)) for t in tables]
    assert shared == tables
    assert handshake.shared_server_properties(dict(tables[-1])) is shared[-1]
    assert len(handshake._SERVER_PROPERTIES_SEEN) == handshake._SERVER_PROPERTIES_KEPT


def test_the_client_property_is_a_copy() -> None:
    pair = Pair(3)
    pair.open()
    client = Client.__new__(Client)  # only the property's behaviour: no socket
    client._engine = pair.engine
    props = client.server_properties
    props["capabilities"].clear()
    assert pair.engine.server_properties["capabilities"]
    assert isinstance(puka.Client.server_properties, property)


def test_an_open_engine_keeps_no_emptied_results_deque() -> None:
    pair = Pair(4)
    promise = pair.engine.connect()
    pair.pump()
    assert isinstance(promise.results, deque) and promise.results  # its result, waiting
    assert pair.engine.promises.take(promise.number) is not None
    assert promise.results is promises_module._NO_RESULTS  # the shared empty one, not its own
    assert type(pair.engine._secret_promises) is list
