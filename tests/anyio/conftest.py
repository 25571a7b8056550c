"""Tests of puka-anyio, each run on trio and on asyncio by AnyIO's pytest plugin."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The AnyIO backend a test runs on."""
    return str(request.param)
