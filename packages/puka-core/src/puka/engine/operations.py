"""Operations: what runs on a channel between a call and its promise's result.

Each operation owns one promise. Most take a channel of their own from the pool (`Rpc`, `Get`,
`Consume`); a few ride on the channel of a consume (`SideRpc`: qos, recover, cancel). Replies to
synchronous methods arrive on a channel in the order the requests were sent, so an operation
that shares its channel keeps a queue of who expects the next reply.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

from puka_spec import BasicProperties, methods
from puka_spec.exceptions import AMQPError, UnexpectedFrame

from puka import hooks
from puka.connection_parameters import ConnectionParameters
from puka.engine.link import Link
from puka.errors import ChannelClosed, ConsumerCancelled
from puka.hooks import INSTALLED
from puka.messages import properties_to_headers
from puka.results import Result

if TYPE_CHECKING:
    from puka.engine.channels import Channel, ChannelPool
    from puka.engine.topology import Topology
    from puka.promises import Promise, Promises

__all__ = [
    "ChannelHolder",
    "Consume",
    "Get",
    "Operation",
    "OperationLink",
    "Rpc",
    "SideRpc",
    "Transaction",
    "method_result",
    "unique_consumer_tags",
]

_new_result = dict.__new__  # a `Result` with no `__init__` run: a delivery sets its slots itself


class OperationLink(Link, Protocol):
    """What operations need of their connection (`Engine`)."""

    promises: Promises
    channels: ChannelPool
    topology: Topology  # what declares record, for recovery
    consumes: set[Consume]  # the consumes running, for recovery
    unpaired_returns: int
    duplicate_consume_oks: int
    params: ConnectionParameters  # which broker: for hooks (`puka.hooks`)


def method_result(method: methods.Method) -> Result:
    """A reply method as a result: its fields, named after it (`queue.declare_ok`)."""
    return Result(
        method.NAME.replace("-", "_"), {name: getattr(method, name) for name, _ in method.FIELDS}
    )


def unique_consumer_tags(consumes: list[methods.BasicConsume]) -> dict[str, str] | None:
    """Make the consumer tags of one consume unique on its channel: wire tag → the user's tag.

    A channel may not reuse a consumer tag (RabbitMQ closes the connection, 530 NOT_ALLOWED), but
    a user may well give one tag to several queues of a `basic_consume_multi`. When the given
    tags repeat, each given tag goes on the wire as `tag.N` (N: the queue's place in the list; no
    two such names can be equal, as the part after the last dot differs; the methods are changed
    in place) and the map returned
    turns it back into the user's tag for deliveries and cancels. `None` when nothing repeats:
    the tags go out as given. Empty tags are left to the broker, which names them uniquely.
    """
    given = [consume.consumer_tag for consume in consumes if consume.consumer_tag]
    if len(given) == len(set(given)):
        return None
    shown: dict[str, str] = {}
    for index, consume in enumerate(consumes):
        if consume.consumer_tag:
            wire = f"{consume.consumer_tag}.{index}"
            shown[wire] = consume.consumer_tag
            consume.consumer_tag = wire
    return shown


def message_result(
    name: str, method: methods.Method, props: BasicProperties | None, body: bytes
) -> Result:
    """A delivered, fetched or returned message as a result."""
    result = Result(name)
    for field, _type in method.FIELDS:
        result[field] = getattr(method, field)
    result["body"] = body
    result["headers"] = properties_to_headers(props) if props is not None else {}
    result._props = props  # for `Result.properties` and `application_headers`
    return result


class Operation:
    """An operation in flight. Subclasses send in `start` and answer in `on_method`."""

    short = False
    """Whether it is done with its channel once the broker answers (see `SHORT_CHANNELS`)."""

    def __init__(self, engine: OperationLink, promise: Promise) -> None:
        self.engine = engine
        self.promise = promise
        self.channel: Channel | None = None
        promise.op = self

    def start(self, channel: Channel) -> None:
        """The channel is ours (open, or opening with our method pipelined behind)."""
        raise NotImplementedError

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """A method (with content) arrived on our channel."""
        raise UnexpectedFrame(f"{method.NAME} on channel {channel.number} was not expected")

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """The broker closed our channel: the operation failed with `error`."""
        self.channel = None
        self.fail(error)

    def finish(self, result: Result) -> None:
        """Resolve the promise and give the channel back."""
        self.engine.promises.resolve(self.promise, result)
        channel, self.channel = self.channel, None
        if channel is not None:
            self.engine.channels.release(channel)

    def fail(self, error: BaseException) -> None:
        """Resolve the promise with an error result."""
        self.engine.promises.resolve(self.promise, Result.error(error))


class Rpc(Operation):
    """Send one synchronous method, resolve with its reply (declare, bind, delete, …)."""

    short = True

    def __init__(self, engine: OperationLink, promise: Promise, method: methods.Method) -> None:
        super().__init__(engine, promise)
        self.method = method

    def start(self, channel: Channel) -> None:
        """Send the method."""
        self.engine.send_method(channel.number, self.method)

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """The reply."""
        if method.KEY not in self.method.RESPONSES:
            super().on_method(channel, method, props, body)
        self.engine.topology.record(self.method, method)
        self.finish(method_result(method))


class Get(Operation):
    """basic.get: one message or `{"empty": True}`."""

    short = True

    def __init__(self, engine: OperationLink, promise: Promise, queue: str, no_ack: bool) -> None:
        super().__init__(engine, promise)
        self.method = methods.BasicGet(queue=queue, no_ack=no_ack)

    def start(self, channel: Channel) -> None:
        """Send basic.get."""
        self.engine.send_method(channel.number, self.method)

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """get-ok with its message, or get-empty."""
        if isinstance(method, methods.BasicGetOk):
            result = message_result("basic.get_ok", method, props, body)
            if not self.method.no_ack:
                channel.unacked.add(method.delivery_tag)
                channel.last_tag = method.delivery_tag
                result._ack = (channel, method.delivery_tag)
            if INSTALLED:
                hooks.delivered(self.engine.params, result, self.method.queue, self.method.no_ack)
            self.finish(result)
        elif isinstance(method, methods.BasicGetEmpty):
            self.finish(Result("basic.get_empty", {"empty": True}))
        else:
            super().on_method(channel, method, props, body)


class SideRpc(Operation):
    """A synchronous method sent on a consume's channel (qos, recover, cancel)."""

    def __init__(
        self, engine: OperationLink, promise: Promise, consume: Consume, method: methods.Method
    ) -> None:
        super().__init__(engine, promise)
        self.consume = consume
        self.method = method

    def start_on(self, channel: Channel) -> None:
        """Send the method on the consume's channel."""
        self.channel = channel
        self.engine.send_method(channel.number, self.method)

    def answered(self, method: methods.Method) -> None:
        """Our reply arrived (routed here by the consume)."""
        if isinstance(method, methods.BasicRecoverOk) and self.channel is not None:
            self.channel.unacked.clear()  # redelivered under new tags: the old ones are stale
            self.channel.settled_to = self.channel.last_tag
        self.engine.promises.resolve(self.promise, method_result(method))
        self.channel = None


class ChannelHolder(Operation):
    """An operation that keeps its channel while side operations run on it.

    `expecting` lists who waits for which reply: a side operation (qos, recover, commit, …) or
    the holder itself (`None`), with the keys of the methods that answer. A reply goes to the
    first that waits for its kind: RabbitMQ sends consume-ok from the queue, so a qos-ok sent
    after it can overtake it; replies of one kind do keep their order.
    """

    def __init__(self, engine: OperationLink, promise: Promise) -> None:
        super().__init__(engine, promise)
        self.expecting: deque[tuple[SideRpc | None, tuple[int, ...]]] = deque()
        self.closing: list[SideRpc] = []  # cancels (or a close) waiting for the end

    @property
    def running(self) -> bool:
        """Whether the holder still has its channel."""
        return self.channel is not None and not self.promise.done

    def side(self, op: SideRpc) -> None:
        """Run a synchronous method on our channel (or fail it if we are over)."""
        if self.channel is None or self.promise.done:
            op.fail(ChannelClosed("the consume or transaction holding this channel is over"))
            return
        self.expecting.append((op, op.method.RESPONSES))
        op.start_on(self.channel)

    def send_own(self, method: methods.Method) -> None:
        """Send one of our own synchronous methods."""
        if self.channel is not None:
            self.engine.send_method(self.channel.number, method)
            self.expecting.append((None, method.RESPONSES))

    def reply(self, channel: Channel, method: methods.Method) -> None:
        """Route a synchronous reply to whoever asked first."""
        if isinstance(method, methods.BasicReturn):  # a mandatory publish via channel_of=
            self.engine.unpaired_returns += 1  # unconfirmed publishes have no promise left
            return
        key = method.KEY
        index = next((i for i, (_, keys) in enumerate(self.expecting) if key in keys), -1)
        if index < 0:
            super().on_method(channel, method, None, b"")
            return
        waiter = self.expecting[index][0]
        del self.expecting[index]
        if waiter is not None:
            waiter.answered(method)
        else:
            self.own_reply(method)

    def own_reply(self, method: methods.Method) -> None:
        """A reply to one of our own methods."""

    def end(self, *, close_channel: bool = False) -> None:
        """No more results: the promise is finished and the channel given back (or closed)."""
        self.engine.consumes.discard(self)
        self.engine.promises.finish(self.promise)
        channel, self.channel = self.channel, None
        if channel is None:
            return
        if close_channel:
            channel.close()
        else:
            self.engine.channels.release(channel)

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """Our channel died: we and every side operation fail with `error`."""
        self.engine.consumes.discard(self)
        self.detach(error)
        self.fail(error)

    def detach(self, error: BaseException) -> None:
        """Lose the channel (it died, or the connection did): side operations fail."""
        self.channel = None
        for waiter, _ in self.expecting:
            if waiter is not None:
                waiter.fail(error)
        self.expecting.clear()
        closing, self.closing = self.closing, []
        for op in closing:
            op.fail(error)


class Consume(ChannelHolder):
    """basic.consume on one or more queues: a promise with a result per delivered message."""

    def __init__(
        self,
        engine: OperationLink,
        promise: Promise,
        consumes: list[methods.BasicConsume],
        prefetch_count: int,
    ) -> None:
        super().__init__(engine, promise)
        self.consumes = consumes
        self.prefetch_count = prefetch_count
        self.no_ack = all(c.no_ack for c in consumes)
        # the consumers the broker confirmed (consume-ok), by wire tag, in that order: a dict,
        # so that each consume-ok, cancel-ok or cancel finds its tag in one lookup (a list's
        # scan made the consume-oks of 10,000 queues cost seconds)
        self.tags: dict[str, None] = {}
        self.queues: dict[str, str] = {}  # wire tag → queue, from each consume-ok
        # wire tag → the tag the user gave, when those repeat (kept across recoveries: the
        # methods keep their wire tags)
        self.shown_tags = unique_consumer_tags(consumes)
        self.tag_offset = 0  # added to wire delivery tags so they stay monotonic across recoveries
        self.last_tag = 0

    def start(self, channel: Channel) -> None:
        """Pipeline qos and the consumes."""
        self.engine.consumes.add(self)
        if self.prefetch_count:
            self.send_own(methods.BasicQos(0, self.prefetch_count, False))
        for consume in self.consumes:
            self.send_own(consume)

    def cancel(self, op: SideRpc) -> None:
        """basic.cancel every consumer of this consume."""
        if not self.running:
            op.answered(methods.BasicCancelOk(consumer_tag=""))
            return
        self.closing.append(op)
        op.channel = self.channel
        if len(self.closing) > 1:  # a cancel is in flight already: its cancel-ok answers both
            return
        for tag in self.tags:
            self.send_own(methods.BasicCancel(consumer_tag=tag))

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """Deliveries, consume-ok, cancels, and replies for side operations."""
        if isinstance(method, methods.BasicDeliver):
            tag = method.delivery_tag
            self.last_tag = tag + self.tag_offset
            # filled in place (no dict built to be copied), its slots set here: no __init__
            result = _new_result(Result)
            result.name = "basic.deliver"
            result.is_error = False
            result.exception = None
            shown = self.shown_tags
            result["consumer_tag"] = (
                method.consumer_tag
                if shown is None
                else shown.get(method.consumer_tag, method.consumer_tag)
            )
            result["delivery_tag"] = self.last_tag
            result["redelivered"] = method.redelivered
            result["exchange"] = method.exchange
            result["routing_key"] = method.routing_key
            result["body"] = body
            # (a message without properties, the usual case, costs no call)
            result["headers"] = properties_to_headers(props) if props and props.__dict__ else {}
            result._props = props  # for `Result.properties` and `application_headers`
            if self.no_ack:
                result._ack = None
            else:
                channel.unacked.add(tag)
                channel.last_tag = tag
                result._ack = (channel, tag)
            if INSTALLED:
                hooks.delivered(
                    self.engine.params, result, self.queue_of(method.consumer_tag), self.no_ack
                )
            self.engine.promises.resolve(self.promise, result, final=False)
            return
        if isinstance(method, methods.BasicCancel):  # the broker cancelled a consumer
            self._server_cancel(method.consumer_tag)
            return
        if isinstance(method, methods.BasicConsumeOk) and method.consumer_tag in self.tags:
            # RabbitMQ 3.10 can answer one basic.consume on a quorum queue twice while the
            # queue elects a new leader: the consumer is registered once, so drop the repeat
            self.engine.duplicate_consume_oks += 1
            return
        self.reply(channel, method)

    def queue_of(self, consumer_tag: str) -> str:
        """The queue of the consumer with wire tag `consumer_tag`."""
        return self.queues.get(consumer_tag, self.consumes[0].queue)

    def own_reply(self, method: methods.Method) -> None:
        """consume-ok and cancel-ok (qos-ok needs nothing)."""
        if isinstance(method, methods.BasicConsumeOk):
            # consume-oks come in the order the consumes went out (on one channel)
            self.queues[method.consumer_tag] = self.consumes[
                min(len(self.queues), len(self.consumes) - 1)
            ].queue
            self.tags[method.consumer_tag] = None
            if self.closing:  # cancelled before the broker said consume-ok
                self.send_own(methods.BasicCancel(consumer_tag=method.consumer_tag))
        elif isinstance(method, methods.BasicCancelOk):
            self.tags.pop(method.consumer_tag, None)
            if not self.tags and self.closing:
                closing, self.closing = self.closing, []
                answer = methods.BasicCancelOk(consumer_tag=self._shown(method.consumer_tag))
                for op in closing:
                    op.answered(answer)
                self.end()

    def recover(self, renamed: dict[str, str]) -> None:
        """Prepare to consume again on a new connection (queues may have new names)."""
        self.tags = {}
        self.queues = {}
        self.tag_offset = self.last_tag
        for consume in self.consumes:
            consume.queue = renamed.get(consume.queue, consume.queue)

    def _shown(self, tag: str) -> str:
        """The consumer tag as the user gave it (see `unique_consumer_tags`)."""
        return tag if self.shown_tags is None else self.shown_tags.get(tag, tag)

    def _server_cancel(self, tag: str) -> None:
        self.tags.pop(tag, None)
        shown = self._shown(tag)
        error = ConsumerCancelled(f"the broker cancelled consumer {shown!r}")
        result = Result.error(error, {"consumer_tag": shown})
        result.name = "basic.cancel"
        final = not self.tags
        self.engine.promises.resolve(self.promise, result, final=final)
        if final and not self.closing:  # else our cancel's cancel-ok is still to come: it ends
            self.end()


class Transaction(ChannelHolder):
    """A channel in transaction mode: publishes on it (`channel_of=`) commit or roll back.

    Its promise yields `tx.select_ok` once the channel is transactional; commit and rollback
    are side operations. Closing it closes the channel (a transactional channel cannot go back
    to the pool): anything not committed is rolled back.
    """

    def start(self, channel: Channel) -> None:
        """Send tx.select."""
        self.send_own(methods.TxSelect())

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """Replies to select, commit and rollback."""
        self.reply(channel, method)

    def own_reply(self, method: methods.Method) -> None:
        """tx.select-ok: the transaction is ready."""
        self.engine.promises.resolve(self.promise, method_result(method), final=False)

    def close(self, op: SideRpc) -> None:
        """End the transaction: close its channel."""
        if not self.running:
            op.answered(methods.ChannelCloseOk())
            return
        op.answered(methods.ChannelCloseOk())
        self.end(close_channel=True)
