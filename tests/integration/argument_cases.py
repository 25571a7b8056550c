"""Wrong arguments for every public call of both clients, as hypothesis strategies.

`COMMON_CASES` are the calls of `puka.api.Calls` (both clients), `BLOCKING_CASES` and
`ASYNC_CASES` those of one driver. Each `Case` has valid arguments (built from a `Context`
of the connected client) and, for each argument it checks, a strategy of values it must refuse
with `TypeError` or `ValueError`. A valid call of a case only touches the test's own exclusive
queue, names that do not exist, or the client's own promises: if a check let a wrong value
through, the broker is not changed for other tests.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import puka
from hypothesis import strategies as st

St = st.SearchStrategy[Any]


@dataclass
class Context:
    """What valid arguments are made of: the client's own queue, promises and message."""

    client: Any
    url: str
    queue: str  # an exclusive queue of the client (it holds one unacked message, `message`)
    missing: str  # a name no queue or exchange has
    consume: Any  # a running consume (on `missing_consume`: an exclusive queue of its own)
    tx: Any  # a transaction
    message: Any  # a message fetched without no_ack, never settled
    done: Any  # a promise that is over (its result taken)


@dataclass(frozen=True)
class Case:
    """A call, its valid arguments, and a strategy of wrong values for each argument checked."""

    call: str
    valid: Callable[[Context], dict[str, Any]]
    bad: dict[str, St]
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Words one of which the message must hold, by argument (default: the argument's name)."""

    def words(self, argument: str) -> tuple[str, ...]:
        return self.names.get(argument, (argument,))


# --- wrong values by kind --------------------------------------------------------------------

_OTHER = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.sets(st.integers(), max_size=1),
    st.just(object()),
    st.just(b"bytes"),
    st.complex_numbers(allow_nan=False, max_magnitude=5),
)
"""Values of types no argument of the kind below takes."""

NOT_STR = st.one_of(_OTHER, st.booleans())
LONG_ASCII = st.text(alphabet="abcxyz.-_", min_size=256, max_size=300)
LONG_UTF8 = st.text(alphabet="éü€𝄞", min_size=128, max_size=140)  # 2 to 4 bytes each: > 255
SURROGATE = st.sampled_from(["\ud800", "queue-\udfff"])
SHORTSTR = st.one_of(NOT_STR.filter(lambda v: v is not None), LONG_ASCII, LONG_UTF8, SURROGATE)
"""Not a short string (`None` aside: some short strings take it; see `SHORTSTR_OR_NONE`)."""
SHORTSTR_OR_NONE = st.one_of(SHORTSTR, st.none())

BOOL = st.one_of(
    st.none(),
    st.integers(-2, 3),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.lists(st.booleans(), max_size=1),
)


def int_range(low: int, high: int) -> St:
    """Not an int from `low` to `high`."""
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        st.booleans(),
        st.floats(allow_nan=True),
        st.text(max_size=4),
        st.none(),
        st.decimals(allow_nan=False, places=1),
    )


SHORT = int_range(0, 0xFFFF)
LONG = int_range(0, 0xFFFFFFFF)

TABLE = st.one_of(
    st.integers(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=2),
    st.booleans(),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),  # keys not str
    st.dictionaries(LONG_ASCII, st.integers(), min_size=1, max_size=1),  # a key too long
    st.dictionaries(
        st.text(alphabet="abc", min_size=1, max_size=3),
        st.one_of(
            st.sets(st.integers(), max_size=1),
            st.just(object()),
            st.complex_numbers(allow_nan=False, max_magnitude=5),
            st.integers(min_value=2**64),
            st.integers(max_value=-(2**63) - 1),
            st.just(datetime.datetime(1960, 1, 1, tzinfo=datetime.timezone.utc)),
            SURROGATE,
        ),
        min_size=1,
        max_size=2,
    ),
)
"""Not a field table (`None` and `{}` are tables)."""

CALLBACK = st.one_of(
    st.integers(), st.text(max_size=3), st.lists(st.integers(), max_size=1), st.booleans()
)
"""Not a callback (`None` is one: no callback)."""

PROMISE = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.floats(allow_nan=True),
    st.booleans(),
    st.integers(max_value=0),
    st.integers(min_value=10**9),
    st.lists(st.integers(1, 3), max_size=1),
)
"""Not a promise of the client: other types, and numbers it never gave out."""

PROMISES = st.one_of(
    PROMISE.filter(lambda v: not isinstance(v, list)),
    st.just([]),
    st.lists(PROMISE.filter(lambda v: not isinstance(v, list)), min_size=1, max_size=3),
    st.just("12"),
    st.just({1: 1}),
)
"""Not one promise nor an iterable of promises (an empty one waits for nothing: refused)."""

TIMEOUT = st.one_of(
    st.floats(max_value=-1e-9),
    st.integers(max_value=-1),
    st.sampled_from([math.inf, -math.inf, math.nan]),
    st.text(max_size=3),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)
"""Not `None` nor a finite number of seconds at least 0."""

POSITIVE_TIMEOUT = st.one_of(TIMEOUT, st.just(0), st.just(0.0))

BODY = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.lists(st.integers(0, 255), max_size=3),
    SURROGATE,
)

_SHORTSTR_PROPERTIES = [
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "message_id",
    "type",
    "user_id",
    "app_id",
]


def _property(name: str) -> St:
    """A wrong value of basic property `name` (`None` means absent: it is valid)."""
    if name in _SHORTSTR_PROPERTIES:
        return SHORTSTR
    if name in ("delivery_mode", "priority"):
        return int_range(0, 255).filter(lambda v: v is not None)
    if name == "expiration":
        return st.one_of(
            st.integers(0, 10**9),
            st.sampled_from(["soon", "-1", "1.5", "", "1e3", " 60", "٣"]),
            st.text(alphabet="0123456789", min_size=256, max_size=260),
            NOT_STR.filter(lambda v: v is not None and not isinstance(v, int)),
        )
    assert name == "timestamp"
    return st.one_of(
        st.floats(),
        st.integers(max_value=-1),
        st.integers(min_value=2**64),
        st.booleans(),
        st.text(max_size=4),
        st.just(datetime.datetime(1969, 12, 31, tzinfo=datetime.timezone.utc)),
        st.just(datetime.date(2024, 1, 1)),
    )


PROPERTY_NAMES = [*_SHORTSTR_PROPERTIES, "delivery_mode", "priority", "expiration", "timestamp"]

WRONG_PROPERTY = st.sampled_from(PROPERTY_NAMES).flatmap(
    lambda name: _property(name).map(lambda value: {name: value})
)
"""A dict of one basic property with a wrong value."""

HEADERS = st.one_of(TABLE, WRONG_PROPERTY, st.just([]), st.just(0), st.just(""))
"""Wrong `headers` (Puka's one dict): not a table, or a property with a wrong value."""

PROPERTIES = st.one_of(
    st.integers(),
    st.text(max_size=3),
    st.lists(st.integers(), max_size=1),
    st.just([]),
    WRONG_PROPERTY,
    st.dictionaries(
        st.sampled_from(["headers", "x-custom", "cluster_id", "reserved", "Type"]),
        st.integers(),
        min_size=1,
        max_size=1,
    ),
)
"""Wrong `properties`: not a dict, a key that is no basic property, or a wrong value."""

MSG_RESULT = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=3),
    st.just({"delivery_tag": 1}),
    st.just(puka.Result("queue.declare_ok", {"queue": "q"})),
)

QUEUES = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=4),
    st.just([]),
    st.just({"queue": "q"}),
    st.lists(st.one_of(st.integers(), st.none(), st.just(b"q")), min_size=1, max_size=2),
    st.just([{"q": "x"}]),
    st.just([{"queue": "q", "durable": True}]),
    SHORTSTR.map(lambda bad: [{"queue": bad}]),
    BOOL.map(lambda bad: [{"queue": "q", "exclusive": bad}]),
    TABLE.filter(lambda v: v is not None).map(lambda bad: [{"queue": "q", "arguments": bad}]),
)

_PROPERTY_WORDS = ("property",)

COMMON_CASES = [
    Case(
        "queue_declare",
        lambda c: {"queue": c.queue, "passive": True},
        {
            "queue": SHORTSTR,
            "durable": BOOL,
            "exclusive": BOOL,
            "auto_delete": BOOL,
            "passive": BOOL,
            "arguments": TABLE,
            "callback": CALLBACK,
        },
    ),
    Case(
        "queue_delete",
        lambda c: {"queue": c.missing},
        {"queue": SHORTSTR, "if_unused": BOOL, "if_empty": BOOL, "callback": CALLBACK},
    ),
    Case("queue_purge", lambda c: {"queue": c.queue}, {"queue": SHORTSTR, "callback": CALLBACK}),
    *(
        Case(
            call,
            lambda c: {"queue": c.queue, "exchange": "amq.direct", "routing_key": c.missing},
            {
                "queue": SHORTSTR,
                "exchange": SHORTSTR,
                "routing_key": SHORTSTR,
                "arguments": TABLE,
                "callback": CALLBACK,
            },
        )
        for call in ("queue_bind", "queue_unbind")
    ),
    Case(
        "exchange_declare",
        lambda c: {"exchange": "amq.direct", "passive": True},
        {
            "exchange": SHORTSTR,
            "type": SHORTSTR,
            "durable": BOOL,
            "auto_delete": BOOL,
            "passive": BOOL,
            "internal": BOOL,
            "arguments": TABLE,
            "callback": CALLBACK,
        },
    ),
    Case(
        "exchange_delete",
        lambda c: {"exchange": c.missing},
        {"exchange": SHORTSTR, "if_unused": BOOL, "callback": CALLBACK},
    ),
    *(
        Case(
            call,
            lambda c: {"destination": c.missing, "source": "amq.direct"},
            {
                "destination": SHORTSTR,
                "source": SHORTSTR,
                "routing_key": SHORTSTR,
                "arguments": TABLE,
                "callback": CALLBACK,
            },
        )
        for call in ("exchange_bind", "exchange_unbind")
    ),
    Case(
        "basic_publish",
        lambda c: {"exchange": "", "routing_key": c.queue, "body": b"x"},
        {
            "exchange": SHORTSTR,
            "routing_key": SHORTSTR,
            "mandatory": BOOL,
            "headers": HEADERS,
            "body": BODY,
            "callback": CALLBACK,
            "channel_of": PROMISE.filter(lambda v: v is not None),
            "properties": PROPERTIES,
        },
        {"headers": ("headers", *_PROPERTY_WORDS), "properties": ("properties", "property")},
    ),
    Case(
        "basic_get",
        lambda c: {"queue": c.queue, "no_ack": True},
        {"queue": SHORTSTR, "no_ack": BOOL, "callback": CALLBACK},
    ),
    Case(
        "basic_consume",
        lambda c: {"queue": c.missing},
        {
            "queue": SHORTSTR,
            "prefetch_count": SHORT,
            "no_local": BOOL,
            "no_ack": BOOL,
            "exclusive": BOOL,
            "arguments": TABLE,
            "callback": CALLBACK,
            "consumer_tag": SHORTSTR,
        },
    ),
    Case(
        "basic_consume_multi",
        lambda c: {"queues": [c.missing]},
        {"queues": QUEUES, "prefetch_count": SHORT, "no_ack": BOOL, "callback": CALLBACK},
    ),
    Case(
        "basic_qos",
        lambda c: {"consume_promise": c.consume},
        {
            "consume_promise": PROMISE,
            "prefetch_count": SHORT,
            "prefetch_size": LONG,
            "global_": BOOL,
            "callback": CALLBACK,
        },
    ),
    Case(
        "basic_cancel",
        lambda c: {"consume_promise": c.consume},
        {"consume_promise": PROMISE, "callback": CALLBACK},
    ),
    Case(
        "basic_recover",
        lambda c: {"consume_promise": c.consume},
        {"consume_promise": PROMISE, "requeue": BOOL, "callback": CALLBACK},
    ),
    Case(
        "basic_ack",
        lambda c: {"msg_result": c.message},
        {"msg_result": MSG_RESULT, "multiple": BOOL},
    ),
    Case(
        "basic_reject",
        lambda c: {"msg_result": c.message},
        {"msg_result": MSG_RESULT, "requeue": BOOL},
    ),
    Case(
        "basic_nack",
        lambda c: {"msg_result": c.message},
        {"msg_result": MSG_RESULT, "multiple": BOOL, "requeue": BOOL},
    ),
    Case("tx_select", lambda c: {}, {"callback": CALLBACK}),
    *(
        Case(call, lambda c: {"tx": c.tx}, {"tx": PROMISE, "callback": CALLBACK})
        for call in ("tx_commit", "tx_rollback", "tx_close")
    ),
    Case(
        "update_secret",
        lambda c: {"new_secret": b"x", "reason": "test"},
        {
            "new_secret": NOT_STR.filter(lambda v: not isinstance(v, bytes)),
            "reason": SHORTSTR,
            "callback": CALLBACK,
        },
    ),
    *(
        Case(f"={hook}", lambda c: {}, {"fn": CALLBACK}, {"fn": (hook,)})
        for hook in ("on_blocked", "on_unblocked", "on_connection_lost", "on_recovered")
    ),
]
"""The calls of both clients. A call named `=hook` is the assignment `client.hook = fn`."""

_CONSTRUCTOR: dict[str, St] = {
    "amqp_url": st.one_of(
        st.none(),
        st.integers(),
        st.just(b"amqp://"),
        st.lists(st.one_of(st.integers(), st.none()), min_size=1, max_size=2),
    ),
    "pubacks": BOOL.filter(lambda v: v is not None),
    "client_properties": TABLE,
    "heartbeat": int_range(0, 0xFFFF).filter(lambda v: v is not None),
    "ssl": st.one_of(st.integers(), st.text(max_size=3), st.booleans()),
    "connection_timeout": POSITIVE_TIMEOUT,
    "connection_name": NOT_STR.filter(lambda v: v is not None),
    "max_message_size": st.one_of(st.integers(max_value=0), st.text(max_size=3), st.floats()),
    "reconnect": st.one_of(st.none(), st.integers(), st.text(max_size=3), st.floats()),
    "shuffle": BOOL,
    "blocked_timeout": POSITIVE_TIMEOUT,
    "handshake_timeout": POSITIVE_TIMEOUT,
}

BLOCKING_CASES = [
    *COMMON_CASES,
    Case(
        "puka.Client",
        lambda c: {"amqp_url": c.url},
        _CONSTRUCTOR,
        {"amqp_url": ("amqp_url", "URL")},
    ),
    Case("connect", lambda c: {}, {"callback": CALLBACK}),
    Case("close", lambda c: {}, {"callback": CALLBACK}),
    Case(
        "set_callback",
        lambda c: {"promise": c.done, "callback": lambda *_: None},
        {"promise": PROMISE, "callback": st.one_of(CALLBACK, st.none())},
    ),
    Case(
        "wait",
        lambda c: {"promise_numbers": c.done, "timeout": 0},
        {"promise_numbers": PROMISES, "timeout": TIMEOUT, "raise_errors": BOOL},
    ),
    *(
        Case(
            call,
            lambda c: {"promise_list": [c.done]},
            {"promise_list": PROMISES.filter(lambda v: v != []), "raise_errors": BOOL},
        )
        for call in ("wait_for_all", "wait_for_any")
    ),
    Case("loop", lambda c: {"timeout": 0}, {"timeout": TIMEOUT}),
    Case(
        "puka.loop",
        lambda c: {"clients": [c.client], "timeout": 0},
        {
            "clients": st.one_of(
                st.none(), st.integers(), st.lists(st.integers(), min_size=1, max_size=2)
            ),
            "timeout": TIMEOUT,
        },
    ),
]
"""Every public call of `puka.Client` (and its constructor, and `puka.loop`)."""

ASYNC_CASES = [
    *COMMON_CASES,
    *(
        Case(
            "basic_publish_wait",
            case.valid,
            case.bad,
            case.names,
        )
        for case in COMMON_CASES
        if case.call == "basic_publish"
    ),
    Case(
        "puka_asyncio.connect",
        lambda c: {"amqp_url": c.url},
        _CONSTRUCTOR,
        {"amqp_url": ("amqp_url", "URL")},
    ),
    Case("close", lambda c: {}, {"callback": CALLBACK}),
    Case(
        "wait_for_all",
        lambda c: {"handles": []},
        {
            "handles": st.one_of(
                st.none(),
                st.integers(),
                st.lists(
                    st.one_of(st.integers(), st.none(), st.text(max_size=2)), min_size=1, max_size=2
                ),
            ),
            "raise_errors": BOOL,
        },
    ),
]
"""Every public call of `puka_asyncio.AsyncClient` (and `puka_asyncio.connect`)."""


def state(client: Any) -> tuple[Any, ...]:
    """What a refused call must leave as it was: promises issued and pending, bytes queued,
    operations waiting."""
    engine = client.engine
    return (
        engine.promises._next,
        engine.promises.pending(),
        engine.outgoing_bytes,
        len(engine._queue.waiting),
        engine.state,
    )
