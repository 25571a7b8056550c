"""Hypothesis strategies for AMQP values, shared by the spec tests."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from puka_spec import BasicProperties

UTC = datetime.timezone.utc

short_strings = st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255)
keys = st.text(min_size=0, max_size=20).filter(lambda s: len(s.encode()) <= 255)
decimals = st.builds(
    lambda unscaled, scale: Decimal(unscaled).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 20),
)
timestamps = st.integers(0, 2**33).map(
    lambda s: datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(seconds=s)
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=50),
    st.binary(max_size=50),
    decimals,
    timestamps,
)


def _containers(children: Any) -> Any:
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
    )


field_values = st.recursive(scalars, _containers, max_leaves=25)
field_tables = st.dictionaries(keys, field_values, max_size=8)

properties = st.builds(
    BasicProperties,
    content_type=st.none() | short_strings,
    content_encoding=st.none() | short_strings,
    headers=st.none() | field_tables,
    delivery_mode=st.none() | st.integers(0, 255),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none() | short_strings,
    reply_to=st.none() | short_strings,
    expiration=st.none() | short_strings,
    message_id=st.none() | short_strings,
    timestamp=st.none() | st.integers(0, 2**64 - 1),
    type=st.none() | short_strings,
    user_id=st.none() | short_strings,
    app_id=st.none() | short_strings,
    reserved=st.none() | short_strings,
)
