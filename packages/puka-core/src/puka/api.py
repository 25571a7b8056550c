"""Puka's calls, written once for every driver.

`Calls` holds every operation of Puka's API with its arguments and defaults; a driver subclasses
it and says, in `_wrap`, what a call returns: the blocking `puka.Client` returns the promise
number, the asyncio client an awaitable. Every call that returns a promise takes
`callback=fn(promise, result)`.

Every call checks its arguments first (`puka.arguments`): a wrong type raises `TypeError`, a
wrong value `ValueError`, naming the argument and what it accepts, and nothing is counted, queued
or sent for the refused call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from puka_spec import FieldTable, methods

from puka.arguments import (
    check_bool,
    check_callback,
    check_int,
    check_method,
    check_shortstr,
    message_body,
    promise_number,
    refuse_type,
)
from puka.engine import Engine
from puka.engine.retrying import RetryPolicy, retry_policy
from puka.errors import WrongThread
from puka.promises import Callback, Promise
from puka.results import Result
from puka.urls import ConnectionParameters

__all__ = ["Calls"]

T = TypeVar("T")
_NOTHING = object()  # no argument is this object


class Calls(Generic[T]):
    """The AMQP operations of a Puka client; `T` is what a call returns."""

    _engine: Engine

    _bare_publishes = False
    """Whether a publish without a callback is a bare promise (`Engine.publish`, `bare=True`),
    handed to `_wrap_number`. A driver that does not wait by number learns that one ended from
    `promises.on_bare_ended` (see `puka.promises`)."""

    def _wrap(self, promise: Promise) -> T:
        raise NotImplementedError

    def _wrap_number(self, number: int) -> T:
        """What a bare promise's call returns (only with `_bare_publishes`)."""
        raise NotImplementedError

    # The exchange and routing key of the last publish whose arguments were checked: a publish
    # to the very same objects (a str is immutable) needs no second look at them.
    _checked_exchange: object = _NOTHING
    _checked_routing_key: object = _NOTHING

    def _sent(self) -> None:
        """A call queued bytes without a promise (an ack): the driver may want to flush."""

    _owner: int | None = None
    """The thread inside the driver's wait or loop, while one is, as `_ident()` names it (a
    driver that has threads to tell apart sets both): a call from another thread meanwhile
    raises `WrongThread` before it touches the engine. A driver that leaves it `None` pays one
    attribute test per call."""

    _ident: Callable[[], int]
    """The calling thread's identity (`threading.get_ident`, given by a driver that sets
    `_owner`: this module stays free of threads)."""

    def _wrong_thread(self, call: str) -> None:
        """Raise `WrongThread` for `call`, made from a thread other than `_owner`."""
        raise WrongThread(
            f"{call}: thread {self._ident()} called the client while thread {self._owner} is "
            "inside wait or loop; a client is driven by one thread: hand the call to it with "
            "client.call_soon_threadsafe(fn, *args) (see puka.threads)"
        )

    # --- the connection's state (the engine's, shared by every driver) ---------------------

    @property
    def engine(self) -> Engine:
        """The sans-I/O engine behind this client."""
        return self._engine

    @property
    def params(self) -> ConnectionParameters:
        """The broker this client talks to (in a cluster: the node that answered last)."""
        return self._engine.params

    @property
    def server_properties(self) -> dict[str, Any]:
        """What the broker said about itself in connection.start (a copy of its own)."""
        return copy.deepcopy(self._engine.server_properties)

    @property
    def blocked(self) -> bool:
        """Whether the broker has blocked publishing (a memory or disk alarm)."""
        return self._engine.blocked

    @property
    def on_blocked(self) -> Any:
        """`fn(reason)`, called when the broker blocks the connection (a memory or disk alarm)."""
        return self._engine.on_blocked

    @on_blocked.setter
    def on_blocked(self, fn: Any) -> None:
        check_callback(fn, "on_blocked", "")
        self._engine.on_blocked = fn

    @property
    def on_unblocked(self) -> Any:
        """`fn()`, called when the broker unblocks the connection."""
        return self._engine.on_unblocked

    @on_unblocked.setter
    def on_unblocked(self, fn: Any) -> None:
        check_callback(fn, "on_unblocked", "")
        self._engine.on_unblocked = fn

    @property
    def on_connection_lost(self) -> Any:
        """`fn(error)`, called when the connection is lost and recovery starts."""
        return self._engine.on_connection_lost

    @on_connection_lost.setter
    def on_connection_lost(self, fn: Any) -> None:
        check_callback(fn, "on_connection_lost", "")
        self._engine.on_connection_lost = fn

    @property
    def on_recovered(self) -> Any:
        """`fn()`, called once a recovery has reconnected, redeclared and reconsumed."""
        return self._engine.on_recovered

    @on_recovered.setter
    def on_recovered(self, fn: Any) -> None:
        check_callback(fn, "on_recovered", "")
        self._engine.on_recovered = fn

    # --- queues ---------------------------------------------------------------------------

    def queue_declare(
        self,
        queue: str = "",
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
    ) -> T:
        """Declare a queue (an empty name lets the broker pick one).

        Result: `{"queue": name, "message_count": n, "consumer_count": n}`. `passive=True` only
        checks that the queue exists (`NotFound` if not); redeclaring with other settings
        fails with `PreconditionFailed`. `arguments` is a field table (`x-queue-type`,
        `x-message-ttl`, …).
        """
        method = methods.QueueDeclare(
            queue=queue,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )
        return self._rpc("queue_declare", method, callback)

    def queue_delete(
        self,
        queue: str,
        if_unused: bool = False,
        if_empty: bool = False,
        callback: Callback | None = None,
    ) -> T:
        """Delete a queue. Result: `{"message_count": n}` (messages deleted with it)."""
        method = methods.QueueDelete(queue=queue, if_unused=if_unused, if_empty=if_empty)
        return self._rpc("queue_delete", method, callback)

    def queue_purge(self, queue: str, callback: Callback | None = None) -> T:
        """Remove every ready message of a queue. Result: `{"message_count": n}`."""
        return self._rpc("queue_purge", methods.QueuePurge(queue=queue), callback)

    def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
    ) -> T:
        """Bind a queue to an exchange."""
        method = methods.QueueBind(
            queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments
        )
        return self._rpc("queue_bind", method, callback)

    def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
    ) -> T:
        """Remove a binding of a queue."""
        method = methods.QueueUnbind(
            queue=queue, exchange=exchange, routing_key=routing_key, arguments=arguments
        )
        return self._rpc("queue_unbind", method, callback)

    # --- exchanges ------------------------------------------------------------------------

    def exchange_declare(
        self,
        exchange: str,
        type: str = "direct",
        durable: bool = False,
        auto_delete: bool = False,
        passive: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
    ) -> T:
        """Declare an exchange (`direct`, `fanout`, `topic`, `headers`, or a plugin's type)."""
        method = methods.ExchangeDeclare(
            exchange=exchange,
            type=type,
            passive=passive,
            durable=durable,
            auto_delete=auto_delete,
            internal=internal,
            arguments=arguments,
        )
        return self._rpc("exchange_declare", method, callback)

    def exchange_delete(
        self, exchange: str, if_unused: bool = False, callback: Callback | None = None
    ) -> T:
        """Delete an exchange."""
        method = methods.ExchangeDelete(exchange=exchange, if_unused=if_unused)
        return self._rpc("exchange_delete", method, callback)

    def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
    ) -> T:
        """Bind exchange `destination` to exchange `source` (a RabbitMQ extension)."""
        method = methods.ExchangeBind(
            destination=destination, source=source, routing_key=routing_key, arguments=arguments
        )
        return self._rpc("exchange_bind", method, callback)

    def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
    ) -> T:
        """Remove an exchange-to-exchange binding."""
        method = methods.ExchangeUnbind(
            destination=destination, source=source, routing_key=routing_key, arguments=arguments
        )
        return self._rpc("exchange_unbind", method, callback)

    def _rpc(self, call: str, method: methods.Method, callback: Callback | None) -> T:
        """Check the method's fields (named as `call`'s arguments) and the callback; send it."""
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread(call)
        check_method(method, call)
        check_callback(callback, "callback", call)
        return self._wrap(self._engine.rpc(method, callback))

    # --- messages -------------------------------------------------------------------------

    def basic_publish(
        self,
        exchange: str,
        routing_key: str = "",
        mandatory: bool = False,
        headers: dict[str, Any] | None = None,
        body: bytes | str = b"",
        callback: Callback | None = None,
        channel_of: Any = None,
        properties: dict[str, Any] | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> T:
        """Publish a message. The promise settles when the broker confirms it.

        `body` is `bytes` (a `str` is encoded as UTF-8; a `bytearray` or `memoryview` is
        copied).

        Properties and headers: without `properties`, `headers` is Puka's one dict of both
        the basic properties (the keys `content_type`, `content_encoding`, `delivery_mode`,
        `priority`, `correlation_id`, `reply_to`, `expiration`, `message_id`, `timestamp`,
        `type`, `user_id`, `app_id`) and the application headers (any other key). With
        `properties` (a dict of basic properties by those names, even `{}`), the two are
        apart: `properties` holds the basic properties (another key is a `ValueError`) and
        every key of `headers` is an application header, even one named like a property (an
        application header `type` stays an application header). A property set to `None` is
        left out. Property values are checked against their AMQP types: short strings (at
        most 255 bytes of UTF-8), `delivery_mode` and `priority` an `int` 0..255
        (`delivery_mode` 2: persistent, 1: transient), `expiration` a `str` of digits
        (milliseconds: `"60000"`, not `60000`), `timestamp` an `int` of seconds since 1970 or
        a `datetime`. Application header values are anything a field table holds (see
        `puka_spec.table`).

        An unroutable `mandatory` message fails with `NoRoute` (the error result carries the
        returned message); a message the broker refuses fails with `PublishNacked`. With
        `pubacks=False` the promise settles once the message is written to the socket.

        `channel_of=consume_promise` publishes on that consume's channel (not confirmed), as
        direct reply-to (`reply_to="amq.rabbitmq.reply-to"`) requires; `channel_of=tx`
        publishes inside a transaction (see `tx_select`).

        `retry=True` (or a `puka.RetryPolicy`) makes the publish at least once: it is sent
        again after a nack or a lost connection (across recoveries), and the promise settles
        only when the broker confirms the message, or fails with `PublishFailed` (carrying the
        last cause) once the policy gives up. The message gets a `message_id` if it has none,
        for consumers to drop duplicates. See `puka.engine.retrying` for what order is kept.
        """
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("basic_publish")
        policy = None if retry is None else retry_policy(retry, "basic_publish")
        # The usual publish (bytes, to the names of the publish before) is checked in short;
        # other names in a few cheap steps; anything unusual (a str body too) in full.
        if (
            type(body) is not bytes
            or exchange is not self._checked_exchange
            or routing_key is not self._checked_routing_key
            or (mandatory is not False and mandatory is not True)
        ):
            if (
                type(body) is bytes
                and type(exchange) is str
                and type(routing_key) is str
                and exchange.isascii()
                and routing_key.isascii()
                and len(exchange) <= 255
                and len(routing_key) <= 255
                and (mandatory is False or mandatory is True)
            ):
                self._checked_exchange = exchange
                self._checked_routing_key = routing_key
            else:
                body = _publish_arguments(exchange, routing_key, mandatory, body)
                self._checked_exchange = exchange
                self._checked_routing_key = routing_key
        if channel_of is None and callback is None and self._bare_publishes:
            number = self._engine.publish(
                exchange,
                routing_key,
                mandatory,
                headers,
                body,
                bare=True,
                properties=properties,
                retry=policy,
            )
            return self._wrap_number(number)
        check_callback(callback, "callback", "basic_publish")
        channel_number = (
            None
            if channel_of is None
            else self._promise_number(channel_of, "channel_of", "basic_publish")
        )
        return self._wrap(
            self._engine.publish(
                exchange,
                routing_key,
                mandatory,
                headers,
                body,
                callback,
                channel_number,
                properties=properties,
                retry=policy,
            )
        )

    def basic_get(self, queue: str, no_ack: bool = False, callback: Callback | None = None) -> T:
        """Fetch one message: the message, or `{"empty": True}`."""
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("basic_get")
        check_shortstr(queue, "queue", "basic_get")
        check_bool(no_ack, "no_ack", "basic_get")
        check_callback(callback, "callback", "basic_get")
        return self._wrap(self._engine.get(queue, no_ack, callback))

    def basic_consume(
        self,
        queue: str,
        prefetch_count: int = 0,
        no_local: bool = False,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: FieldTable | None = None,
        callback: Callback | None = None,
        consumer_tag: str = "",
    ) -> T:
        """Consume a queue: the promise yields one result per message until cancelled.

        `prefetch_count` (0..65535) limits unacknowledged messages on this consume (0: no
        limit).
        """
        method = methods.BasicConsume(
            queue=queue,
            consumer_tag=consumer_tag,
            no_local=no_local,
            no_ack=no_ack,
            exclusive=exclusive,
            arguments=arguments,
        )
        check_method(method, "basic_consume")
        return self._consume("basic_consume", [method], prefetch_count, callback)

    def basic_consume_multi(
        self,
        queues: Iterable[str | dict[str, Any]],
        prefetch_count: int = 0,
        no_ack: bool = False,
        callback: Callback | None = None,
    ) -> T:
        """Consume several queues on one channel; one promise for all.

        `prefetch_count` applies to each queue's consumer on its own: RabbitMQ (3.3 and
        later) takes the non-global `basic.qos` Puka sends as a limit per consumer, not one
        shared by the channel.

        `queues` is a list (or another iterable, not a `str`) of at least one item, each a
        queue name or a dict with `queue` and optionally `no_local`, `exclusive`,
        `arguments`, `consumer_tag`.
        """
        call = "basic_consume_multi"
        if isinstance(queues, (str, bytes, Mapping)) or not isinstance(queues, Iterable):
            refuse_type(queues, "queues", call, "a list of queue names or dicts")
        consumes = []
        for index, item in enumerate(queues):
            where = f"queues[{index}]"
            spec = _consume_spec(item, where, call)
            method = methods.BasicConsume(
                queue=spec["queue"],
                consumer_tag=spec.get("consumer_tag", ""),
                no_local=spec.get("no_local", False),
                no_ack=no_ack,
                exclusive=spec.get("exclusive", False),
                arguments=spec.get("arguments"),
            )
            check_method(method, call, f"{where}.")
            consumes.append(method)
        if not consumes:
            raise ValueError(f"{call}: queues must name at least one queue")
        return self._consume(call, consumes, prefetch_count, callback)

    def _consume(
        self,
        call: str,
        consumes: list[methods.BasicConsume],
        prefetch_count: int,
        callback: Callback | None,
    ) -> T:
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread(call)
        if type(prefetch_count) is not int or not 0 <= prefetch_count <= 0xFFFF:
            check_int(prefetch_count, "prefetch_count", call, 0, 0xFFFF)
        check_callback(callback, "callback", call)
        return self._wrap(self._engine.consume(consumes, prefetch_count, callback))

    def basic_qos(
        self,
        consume_promise: Any,
        prefetch_count: int = 0,
        prefetch_size: int = 0,
        global_: bool = False,
        callback: Callback | None = None,
    ) -> T:
        """Change the prefetch of a running consume.

        RabbitMQ (3.3+) applies `prefetch_count` (0..65535) per consumer, or per channel with
        `global_=True` (the channel is the consume's own); `prefetch_size` is not supported
        by RabbitMQ and must stay 0.
        """
        method = methods.BasicQos(
            prefetch_size=prefetch_size, prefetch_count=prefetch_count, global_=global_
        )
        return self._on_holder("basic_qos", consume_promise, "side", method, callback)

    def basic_cancel(self, consume_promise: Any, callback: Callback | None = None) -> T:
        """Stop a consume; afterwards its promise yields no more messages."""
        method = methods.BasicCancel(consumer_tag="")
        return self._on_holder("basic_cancel", consume_promise, "cancel", method, callback)

    def basic_recover(
        self, consume_promise: Any, requeue: bool = True, callback: Callback | None = None
    ) -> T:
        """Redeliver (requeue) every unacknowledged message of a consume."""
        method = methods.BasicRecover(requeue=requeue)
        return self._on_holder("basic_recover", consume_promise, "side", method, callback)

    def basic_ack(self, msg_result: Result, multiple: bool = False) -> None:
        """Acknowledge a delivered message (and, with `multiple`, all before it).

        `msg_result` is a message from a consume or `basic_get` (without `no_ack`); anything
        else raises `ValueError`.
        """
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("basic_ack")
        if type(msg_result) is not Result:  # the engine refuses a result that is no message
            _delivery_tag(msg_result, "basic_ack")  # raises the same clear error
        flag: object = multiple  # (typed `bool`; what a caller passed may be anything)
        if flag is not False and flag is not True:
            check_bool(multiple, "multiple", "basic_ack")
        self._engine.ack(msg_result, multiple)
        self._sent()

    def basic_reject(self, msg_result: Result, requeue: bool = True) -> None:
        """Reject a delivered message: requeue it, or drop (dead-letter) it."""
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("basic_reject")
        tag = _delivery_tag(msg_result, "basic_reject")
        method = methods.BasicReject(delivery_tag=tag, requeue=requeue)
        check_method(method, "basic_reject")
        self._engine.settle(msg_result, method)
        self._sent()

    def basic_nack(self, msg_result: Result, multiple: bool = False, requeue: bool = True) -> None:
        """Negatively acknowledge a message (and, with `multiple`, all before it)."""
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("basic_nack")
        tag = _delivery_tag(msg_result, "basic_nack")
        method = methods.BasicNack(delivery_tag=tag, multiple=multiple, requeue=requeue)
        check_method(method, "basic_nack")
        self._engine.settle(msg_result, method)
        self._sent()

    # --- transactions ---------------------------------------------------------------------

    def tx_select(self, callback: Callback | None = None) -> T:
        """Start a transaction: a channel of its own in transaction mode.

        The promise yields `tx.select_ok` when ready. Publish in it with
        `basic_publish(..., channel_of=tx)`; `tx_commit(tx)` makes those publishes happen,
        `tx_rollback(tx)` discards them; `tx_close(tx)` ends the transaction (rolling back
        what was not committed).
        """
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("tx_select")
        check_callback(callback, "callback", "tx_select")
        return self._wrap(self._engine.transaction(callback))

    def tx_commit(self, tx: Any, callback: Callback | None = None) -> T:
        """Commit the transaction's publishes."""
        return self._on_holder("tx_commit", tx, "side", methods.TxCommit(), callback)

    def tx_rollback(self, tx: Any, callback: Callback | None = None) -> T:
        """Discard the transaction's uncommitted publishes."""
        return self._on_holder("tx_rollback", tx, "side", methods.TxRollback(), callback)

    def tx_close(self, tx: Any, callback: Callback | None = None) -> T:
        """End the transaction and close its channel."""
        method = methods.ChannelClose(200, "OK", 0, 0)
        return self._on_holder("tx_close", tx, "close", method, callback)

    def _on_holder(
        self,
        call: str,
        promise: Any,
        action: str,
        method: methods.Method,
        callback: Callback | None,
    ) -> T:
        """`method` on the channel of the consume or transaction `promise`, checked first."""
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread(call)
        name = "tx" if call.startswith("tx_") else "consume_promise"
        number = self._promise_number(promise, name, call)
        if call in ("basic_qos", "basic_recover"):  # the others' fields are Puka's own
            check_method(method, call)
        check_callback(callback, "callback", call)
        return self._wrap(self._engine.on_holder(number, action, method, callback))

    # --- connection -----------------------------------------------------------------------

    def update_secret(
        self, new_secret: bytes | str, reason: str = "", callback: Callback | None = None
    ) -> T:
        """Give the broker a new secret (a refreshed OAuth 2 token) for this connection."""
        if self._owner is not None and self._owner != self._ident():
            self._wrong_thread("update_secret")
        if isinstance(new_secret, str):
            new_secret = new_secret.encode()
        method = methods.ConnectionUpdateSecret(new_secret=new_secret, reason=reason)
        check_method(method, "update_secret")
        check_callback(callback, "callback", "update_secret")
        return self._wrap(self._engine.update_secret(new_secret, reason, callback))

    def _promise_number(self, promise: Any, name: str = "promise", call: str = "") -> int:
        """The number of a promise of this client that a call takes as argument `name`."""
        return promise_number(promise, name, call, self._engine.promises.issued)


_CONSUME_KEYS = frozenset({"queue", "no_local", "exclusive", "arguments", "consumer_tag"})
"""The keys of a dict in `basic_consume_multi`'s `queues`."""


def _consume_spec(item: object, where: str, call: str) -> dict[str, Any]:
    """One item of `basic_consume_multi`'s `queues` as a dict with the key `queue`."""
    if isinstance(item, str):
        return {"queue": item}
    if not isinstance(item, Mapping):
        refuse_type(item, where, call, "a queue name (str) or a dict")
    spec = dict(item)
    unknown = ", ".join(sorted(repr(key) for key in spec if key not in _CONSUME_KEYS))
    if unknown or "queue" not in spec:
        allowed = ", ".join(sorted(_CONSUME_KEYS - {"queue"}))
        raise ValueError(
            f"{call}: {where} must have the key 'queue' and maybe {allowed}"
            + (f", not {unknown}" if unknown else "")
        )
    return spec


def _publish_arguments(
    exchange: object, routing_key: object, mandatory: object, body: object
) -> bytes:
    """`basic_publish`'s exchange, routing key and flag checked in full; its body as bytes."""
    check_shortstr(exchange, "exchange", "basic_publish")
    check_shortstr(routing_key, "routing_key", "basic_publish")
    check_bool(mandatory, "mandatory", "basic_publish")
    return message_body(body)


def _delivery_tag(msg_result: Result, call: str) -> int:
    """The tag to send: the one on the wire (a consume shifts the visible tag after a recovery)."""
    if not isinstance(msg_result, Result) or "delivery_tag" not in msg_result:
        raise ValueError(
            f"{call}: msg_result must be a message result from basic_get or a consume, "
            f"not {msg_result!r:.60}"
        )
    if msg_result._ack is not None:
        return msg_result._ack[1]
    return int(msg_result["delivery_tag"])
