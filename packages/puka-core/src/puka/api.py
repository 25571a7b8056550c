"""Puka's calls, written once for every driver.

`Calls` holds every operation of Puka's API with its arguments and defaults; a driver subclasses
it and says, in `_wrap`, what a call returns: the blocking `puka.Client` returns the promise
number, the asyncio client an awaitable. Every call that returns a promise takes
`callback=fn(promise, result)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from puka_spec import FieldTable, methods

from puka.engine import Engine
from puka.promises import Callback, Promise
from puka.results import Result
from puka.urls import ConnectionParameters

__all__ = ["Calls"]

T = TypeVar("T")


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

    def _sent(self) -> None:
        """A call queued bytes without a promise (an ack): the driver may want to flush."""

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
        """What the broker said about itself in connection.start."""
        return self._engine.server_properties

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
        self._engine.on_blocked = fn

    @property
    def on_unblocked(self) -> Any:
        """`fn()`, called when the broker unblocks the connection."""
        return self._engine.on_unblocked

    @on_unblocked.setter
    def on_unblocked(self, fn: Any) -> None:
        self._engine.on_unblocked = fn

    @property
    def on_connection_lost(self) -> Any:
        """`fn(error)`, called when the connection is lost and recovery starts."""
        return self._engine.on_connection_lost

    @on_connection_lost.setter
    def on_connection_lost(self, fn: Any) -> None:
        self._engine.on_connection_lost = fn

    @property
    def on_recovered(self) -> Any:
        """`fn()`, called once a recovery has reconnected, redeclared and reconsumed."""
        return self._engine.on_recovered

    @on_recovered.setter
    def on_recovered(self, fn: Any) -> None:
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
        fails with `PreconditionFailed`.
        """
        method = methods.QueueDeclare(
            queue=queue,
            passive=passive,
            durable=durable,
            exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=arguments,
        )
        return self._wrap(self._engine.rpc(method, callback))

    def queue_delete(
        self,
        queue: str,
        if_unused: bool = False,
        if_empty: bool = False,
        callback: Callback | None = None,
    ) -> T:
        """Delete a queue. Result: `{"message_count": n}` (messages deleted with it)."""
        method = methods.QueueDelete(queue=queue, if_unused=if_unused, if_empty=if_empty)
        return self._wrap(self._engine.rpc(method, callback))

    def queue_purge(self, queue: str, callback: Callback | None = None) -> T:
        """Remove every ready message of a queue. Result: `{"message_count": n}`."""
        return self._wrap(self._engine.rpc(methods.QueuePurge(queue=queue), callback))

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
        return self._wrap(self._engine.rpc(method, callback))

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
        return self._wrap(self._engine.rpc(method, callback))

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
        return self._wrap(self._engine.rpc(method, callback))

    def exchange_delete(
        self, exchange: str, if_unused: bool = False, callback: Callback | None = None
    ) -> T:
        """Delete an exchange."""
        method = methods.ExchangeDelete(exchange=exchange, if_unused=if_unused)
        return self._wrap(self._engine.rpc(method, callback))

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
        return self._wrap(self._engine.rpc(method, callback))

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
    ) -> T:
        """Publish a message. The promise settles when the broker confirms it.

        `headers` holds the basic properties (`content_type`, `delivery_mode`,
        `correlation_id`, `reply_to`, `expiration`, `message_id`, `timestamp`, `type`,
        `user_id`, `app_id`, `priority`, `content_encoding`) and the application headers (any
        other key) in one dict. A `str` body is encoded as UTF-8. An unroutable `mandatory`
        message fails with `NoRoute` (the error result carries the returned message); a
        message the broker refuses fails with `PublishNacked`. With `pubacks=False` the
        promise settles once the message is written to the socket.

        `channel_of=consume_promise` publishes on that consume's channel (not confirmed), as
        direct reply-to (`reply_to="amq.rabbitmq.reply-to"`) requires; `channel_of=tx`
        publishes inside a transaction (see `tx_select`).
        """
        if isinstance(body, str):
            body = body.encode()
        if channel_of is None and callback is None and self._bare_publishes:
            engine = self._engine
            number = engine.publish(exchange, routing_key, mandatory, headers, body, bare=True)
            return self._wrap_number(number)
        channel_number = None if channel_of is None else self._promise_number(channel_of)
        return self._wrap(
            self._engine.publish(
                exchange, routing_key, mandatory, headers, body, callback, channel_number
            )
        )

    def basic_get(self, queue: str, no_ack: bool = False, callback: Callback | None = None) -> T:
        """Fetch one message: the message, or `{"empty": True}`."""
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

        `prefetch_count` limits unacknowledged messages on this consume (0: no limit).
        """
        method = methods.BasicConsume(
            queue=queue,
            consumer_tag=consumer_tag,
            no_local=no_local,
            no_ack=no_ack,
            exclusive=exclusive,
            arguments=arguments,
        )
        return self._wrap(self._engine.consume([method], prefetch_count, callback))

    def basic_consume_multi(
        self,
        queues: Iterable[str | dict[str, Any]],
        prefetch_count: int = 0,
        no_ack: bool = False,
        callback: Callback | None = None,
    ) -> T:
        """Consume several queues on one channel (shared prefetch); one promise for all.

        Each item is a queue name or a dict with `queue` and optionally `no_local`,
        `exclusive`, `arguments`, `consumer_tag`.
        """
        consumes = []
        for item in queues:
            spec: dict[str, Any] = {"queue": item} if isinstance(item, str) else item
            consumes.append(
                methods.BasicConsume(
                    queue=spec["queue"],
                    consumer_tag=spec.get("consumer_tag", ""),
                    no_local=spec.get("no_local", False),
                    no_ack=no_ack,
                    exclusive=spec.get("exclusive", False),
                    arguments=spec.get("arguments"),
                )
            )
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

        RabbitMQ (3.3+) applies `prefetch_count` per consumer, or per channel with
        `global_=True` (the channel is the consume's own); `prefetch_size` is not supported by
        RabbitMQ and must stay 0.
        """
        method = methods.BasicQos(
            prefetch_size=prefetch_size, prefetch_count=prefetch_count, global_=global_
        )
        number = self._promise_number(consume_promise)
        return self._wrap(self._engine.on_holder(number, "side", method, callback))

    def basic_cancel(self, consume_promise: Any, callback: Callback | None = None) -> T:
        """Stop a consume; afterwards its promise yields no more messages."""
        number = self._promise_number(consume_promise)
        method = methods.BasicCancel(consumer_tag="")
        return self._wrap(self._engine.on_holder(number, "cancel", method, callback))

    def basic_recover(
        self, consume_promise: Any, requeue: bool = True, callback: Callback | None = None
    ) -> T:
        """Redeliver (requeue) every unacknowledged message of a consume."""
        number = self._promise_number(consume_promise)
        method = methods.BasicRecover(requeue=requeue)
        return self._wrap(self._engine.on_holder(number, "side", method, callback))

    def basic_ack(self, msg_result: Result, multiple: bool = False) -> None:
        """Acknowledge a delivered message (and, with `multiple`, all before it)."""
        if type(msg_result) is not Result:  # the engine refuses a result that is no message
            _delivery_tag(msg_result)  # raises the same clear error
        self._engine.ack(msg_result, multiple)
        self._sent()

    def basic_reject(self, msg_result: Result, requeue: bool = True) -> None:
        """Reject a delivered message: requeue it, or drop (dead-letter) it."""
        tag = _delivery_tag(msg_result)
        self._engine.settle(msg_result, methods.BasicReject(delivery_tag=tag, requeue=requeue))
        self._sent()

    def basic_nack(self, msg_result: Result, multiple: bool = False, requeue: bool = True) -> None:
        """Negatively acknowledge a message (and, with `multiple`, all before it)."""
        tag = _delivery_tag(msg_result)
        method = methods.BasicNack(delivery_tag=tag, multiple=multiple, requeue=requeue)
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
        return self._wrap(self._engine.transaction(callback))

    def tx_commit(self, tx: Any, callback: Callback | None = None) -> T:
        """Commit the transaction's publishes."""
        number = self._promise_number(tx)
        return self._wrap(self._engine.on_holder(number, "side", methods.TxCommit(), callback))

    def tx_rollback(self, tx: Any, callback: Callback | None = None) -> T:
        """Discard the transaction's uncommitted publishes."""
        number = self._promise_number(tx)
        return self._wrap(self._engine.on_holder(number, "side", methods.TxRollback(), callback))

    def tx_close(self, tx: Any, callback: Callback | None = None) -> T:
        """End the transaction and close its channel."""
        number = self._promise_number(tx)
        method = methods.ChannelClose(200, "OK", 0, 0)
        return self._wrap(self._engine.on_holder(number, "close", method, callback))

    # --- connection -----------------------------------------------------------------------

    def update_secret(
        self, new_secret: bytes | str, reason: str = "", callback: Callback | None = None
    ) -> T:
        """Give the broker a new secret (a refreshed OAuth 2 token) for this connection."""
        if isinstance(new_secret, str):
            new_secret = new_secret.encode()
        return self._wrap(self._engine.update_secret(new_secret, reason, callback))

    def _promise_number(self, promise: Any) -> int:
        """The promise number behind what a call returned."""
        return int(promise)


def _delivery_tag(msg_result: Result) -> int:
    """The tag to send: the one on the wire (a consume shifts the visible tag after a recovery)."""
    if not isinstance(msg_result, Result) or "delivery_tag" not in msg_result:
        raise ValueError("basic_ack/reject/nack take a message result from basic_get or a consume")
    if msg_result._ack is not None:
        return msg_result._ack[1]
    return int(msg_result["delivery_tag"])
