"""Blocking-client helpers shared by the connection-fault tests."""

from __future__ import annotations

from typing import Any

import puka


def connect(url: str, **kwargs: Any) -> puka.Client:
    """A `puka.Client` on `url`, connected (fails the test if the handshake does not finish)."""
    client = puka.Client(url, **kwargs)
    assert client.wait(client.connect(), timeout=10) is not None
    return client


def close(client: puka.Client) -> None:
    """Close `client`, or at least its socket when the connection is already broken."""
    try:
        client.wait(client.close(), timeout=3, raise_errors=False)
    except Exception:
        client._close_socket()


def delete_queue(amqp_url: str, queue: str) -> None:
    """Delete `queue` through a connection of its own."""
    admin = connect(amqp_url)
    try:
        admin.wait(admin.queue_delete(queue), timeout=10)
    finally:
        close(admin)
