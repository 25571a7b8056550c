"""Publishing: which way each publish goes, the channel publishes go out on, and what
happened to each of them.

A publish goes one of three ways (`Routes`): straight to the publish channel when the
connection is open and nothing waits before it (the hot path: `Engine.publish` takes it
itself, with no call in between); in its turn, once the connection is open or the publish
channel is there (the first publish opens it); or again, on a new channel, when another publish
killed the channel it went out on (`republish`). A publish on the channel of a transaction
(`channel_of`) goes out on that channel, unconfirmed.

With publisher confirms (the default when the broker offers them) the channel is in confirm
mode: each publish gets the next delivery tag, and the broker's `basic.ack`/`basic.nack`
(single or `multiple`) settle the promises by tag. A mandatory message the broker cannot route
comes back as `basic.return` just before its ack; returns are paired with their publish by
wire order (the oldest unsettled mandatory publish to the same exchange and routing key), so no
header is ever injected into user messages. Without confirms a publish is done once its frames
are handed to the transport.

If the broker closes the publish channel (publishing to a missing exchange), only the publishes
in flight on it fail; the next publish opens a new channel.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from itertools import repeat
from typing import TYPE_CHECKING, Any, Protocol

from puka_spec import (
    BasicProperties,
    encode_content,
    encode_content_after,
    encode_content_buffers,
    encode_method_frame_open,
    methods,
)
from puka_spec.exceptions import AMQPError, UnexpectedFrame

from puka.engine.connection_states import ConnectionState
from puka.engine.link import Link
from puka.engine.operations import message_result
from puka.errors import ChannelClosed, PublishNacked, Returned
from puka.promises import Callback, Promise, Promises
from puka.results import Result

if TYPE_CHECKING:
    from puka.engine.channels import Channel, ChannelPool
    from puka.engine.queueing import Queue
    from puka.engine.retrying import Retrier

__all__ = ["Publisher", "PublisherLink", "RouteLink", "Routes"]

log = logging.getLogger("puka")

_METHOD_CACHE_SIZE = 512
_OK = Result("basic.ack")

_InFlight = tuple[Promise | int, tuple[str, str, bool], bytes, bytes]
"""An unconfirmed publish: (promise, (exchange, routing_key, mandatory), properties, body)."""
_COMPACT = 4096
"""Settled entries at the head of the in-flight lists past which they are dropped (when they
are half the lists, too: each publish is moved at most once on average)."""
_OPEN = ConnectionState.OPEN  # read as globals: an Enum class attribute is slow on Python 3.11


class PublisherLink(Link, Protocol):
    """What the publisher needs of its connection (`Engine`)."""

    promises: Promises
    frame_max: int
    written: list[Promise | int]  # publishes without confirms, done once written
    outgoing_bytes: int
    _out: list[bytes | memoryview]  # the frames queued for the transport (`send_raw`, inlined)
    unpaired_returns: int


class RouteLink(PublisherLink, Protocol):
    """What publish routing needs of its connection (`Engine`)."""

    state: ConnectionState
    publisher: Publisher | None
    channels: ChannelPool
    server_properties: dict[str, Any]
    pubacks: bool | None
    replaced_publish_channels: int
    _retrier: Retrier | None


class Routes:
    """The ways a publish goes out other than the hot path (see the module docstring)."""

    def __init__(self, link: RouteLink, queue: Queue) -> None:
        self.link = link
        self.queue = queue

    def later(
        self,
        props: bytes,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        body: bytes,
        callback: Callback | None,
        channel_of: int | None,
        watcher: Callable[[Result], None] | None = None,
    ) -> Promise:
        """A publish off the hot path: a first channel, a connection not open yet, a channel.

        `watcher` (a hook's, see `puka.hooks`) is told the outcome, even one settled at once.
        """
        queue = self.queue
        queue.check_usable()
        promise = self.link.promises.new(callback)
        if watcher is not None:
            self.link.promises.watch(promise, watcher)
        key = (exchange, routing_key, mandatory)
        if queue.recovering():
            queue.fail_recovering(promise)
        elif self.link.state is not _OPEN or queue.waiting:
            queue.defer(promise, lambda: self.send(promise, key, props, body, channel_of))
        else:
            self.send(promise, key, props, body, channel_of)
        return promise

    def send(
        self,
        promise: Promise,
        key: tuple[str, str, bool],
        props: bytes,
        body: bytes,
        channel_of: int | None = None,
    ) -> None:
        """Send a publish (to `key`: exchange, routing key, mandatory) whose turn it is: on
        the publish channel (opened first, if need be) or on the channel of `channel_of`."""
        link = self.link
        exchange, routing_key, mandatory = key
        if channel_of is not None:
            try:
                holder = self.queue.holder_of(channel_of)
            except ValueError as exc:
                link.promises.resolve(promise, Result.error(ChannelClosed(str(exc))))
                return
            if holder.channel is None:
                link.promises.resolve(
                    promise, Result.error(ChannelClosed("that channel is closed"))
                )
                return
            method = methods.BasicPublish(
                exchange=exchange, routing_key=routing_key, mandatory=mandatory
            )
            link.send_raw(
                encode_content(holder.channel.number, method, props, body, link.frame_max)
            )
            link.written.append(promise)
            return
        publisher = link.publisher
        if publisher is None:
            publisher = self._new_publisher()
            if publisher is None:  # no channel free: wait for one
                self.queue.defer(promise, lambda: self.send(promise, key, props, body))
                return
        publisher.publish(promise, exchange, routing_key, mandatory, props, body)

    def republish(
        self, promise: Promise, key: tuple[str, str, bool], props: bytes, body: bytes
    ) -> None:
        """Send again a publish whose channel another publish killed (see
        `Publisher.on_channel_closed`)."""
        if self.link.state is _OPEN:
            self.send(promise, key, props, body)

    def resend(
        self, promise: Promise | int, key: tuple[str, str, bool], props: bytes, body: bytes
    ) -> bool:
        """Send an at-least-once publish (again), with its own promise: on the publish channel,
        or in its turn; `False` while recovering (the retrier holds it until the end)."""
        link, queue = self.link, self.queue
        if queue.recovering():
            return False
        ready = link.state is _OPEN and not queue.waiting
        if ready and link.publisher is not None:
            exchange, routing_key, mandatory = key
            link.publisher.publish(promise, exchange, routing_key, mandatory, props, body)
            return True
        held = promise if isinstance(promise, Promise) else link.promises.promote(promise)
        if ready:
            self.send(held, key, props, body)
        else:
            queue.defer(held, lambda: self.send(held, key, props, body))
        return True

    def nacked(self, publisher: Publisher) -> None:
        """The broker nacked publishes on `publisher`'s channel: if it nacked one being retried,
        later publishes (the retry first) go out on a new channel, and this one is closed once
        its publishes in flight are settled (see `puka.engine.retrying`)."""
        link = self.link
        retrier = link._retrier
        if retrier is None or not retrier.take_nacked() or link.publisher is not publisher:
            return
        link.publisher = None
        replaced = link.replaced_publish_channels = link.replaced_publish_channels + 1
        # a failover may replace dozens in a second: the 1st, 2nd, 4th, 8th... are warnings
        log.log(
            logging.WARNING if replaced & (replaced - 1) == 0 else logging.DEBUG,
            "the broker nacked a message being retried on publish channel %d: publishing on "
            "a new channel (%d replaced so far)",
            publisher.channel.number,
            replaced,
        )
        publisher.retire()

    def gone(self, publisher: Publisher) -> None:
        """The publish channel was closed by the broker; the next publish opens another."""
        if self.link.publisher is publisher:
            self.link.publisher = None

    def _new_publisher(self) -> Publisher | None:
        link = self.link
        placeholder = _PublisherSlot()
        channel = link.channels.acquire(placeholder)
        if channel is None:
            return None
        capabilities = link.server_properties.get("capabilities") or {}
        confirm = (
            bool(capabilities.get("publisher_confirms")) if link.pubacks is None else link.pubacks
        )
        publisher = Publisher(link, self, channel, confirm)
        channel.owner = publisher
        link.publisher = publisher
        return publisher


class _PublisherSlot:
    """Owns a channel for the instant between acquiring it and the publisher taking it."""

    def on_method(self, channel: Channel, method: methods.Method, props: Any, body: bytes) -> None:
        """Nothing can arrive before the publisher exists."""

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """Likewise."""


class Publisher:
    """Owner of the publish channel."""

    def __init__(
        self, engine: PublisherLink, routes: Routes, channel: Channel, confirm: bool
    ) -> None:
        self.engine = engine
        self.routes = routes
        self.channel = channel
        self.confirm = confirm
        self.next_tag = 1
        # Each publish in flight, by tag: its promise (an object, or a bare number; `None` once
        # settled) and body, at index `tag - _base` of two lists, and what it was sent with
        # (key and properties) in runs of tags that share them (equal properties are one run:
        # those with headers are new bytes each time): kept to send it again if another
        # publish kills the channel. A dict of 4-tuples by tag cost 145 bytes per
        # publish in flight (an int, a tuple, an entry); this costs 16 and a run per change
        # of key or properties.
        self._promises: list[Promise | int | None] = []
        self._bodies: list[bytes | None] = []
        self._base = 1  # the tag at index 0
        self._run_starts: list[int] = []  # the first tag of each run, ascending
        self._runs: list[tuple[tuple[str, str, bool], bytes]] = []  # (key, properties) of each
        self._run_key: tuple[str, str, bool] | None = None  # those of the last run
        self._run_props: bytes | None = None
        self._settled = 0  # entries of the lists that are `None`
        # Tags are given out 1, 2, 3...: every tag from `oldest` to next_tag - 1 was published,
        # and every one below `oldest` is settled. A `multiple` confirm settles from `oldest`.
        self.oldest = 1
        self.mandatory: deque[tuple[int, str, str]] = deque()
        self.returned: dict[int, Result] = {}
        # basic.publish method frames (without their frame-end octet) by (exchange, routing_key,
        # mandatory): encoded once, as most publishers send a few over and over. The key kept
        # is what each publish in flight refers to: the tuple a publish builds to look its
        # frame up is freed at once and reused, so keeping a publish allocates one tuple (the
        # collector runs once per so many tuples kept: a tenth of a publish's CPU with two)
        self._method_frames: dict[tuple[str, str, bool], tuple[tuple[str, str, bool], bytes]] = {}
        self._channel_number = channel.number
        self._max_body = engine.frame_max - 8  # a body up to this long goes in one frame
        self.unknown_confirms = 0
        """Acks and nacks for tags not in flight (unpublished, already settled): counted, ignored.

        A `multiple` one that reaches past the last published tag still settles those in flight.
        """
        self.retired = False  # a new publisher took over: close the channel once settled
        if confirm:
            engine.send_method(channel.number, methods.ConfirmSelect(nowait=False))

    def publish(
        self,
        promise: Promise | int,
        exchange: str,
        routing_key: str,
        mandatory: bool,
        properties: bytes,
        body: bytes,
    ) -> None:
        """Send one message; its promise (an object or a bare number, see `puka.promises`)
        settles on confirm (or once written)."""
        cached = self._method_frames.get((exchange, routing_key, mandatory))
        if cached is None:
            cached = self._method_frame((exchange, routing_key, mandatory))
        key, method_frame = cached
        engine = self.engine
        if 0 < len(body) <= self._max_body:  # one body frame: the frames in one buffer
            content = encode_content_after(method_frame, self._channel_number, properties, body)
            engine._out.append(content)  # engine.send_raw(content), without its call
            engine.outgoing_bytes += len(content)
        else:  # no body, or several body frames: views of the body, not a copy of it
            self._send_buffers(method_frame, properties, body)
        if not self.confirm:
            engine.written.append(promise)
            return
        tag = self.next_tag
        self.next_tag = tag + 1
        self._promises.append(promise)
        self._bodies.append(body)
        # (properties with headers are new bytes each time, mostly equal to the last ones)
        if key is not self._run_key or properties != self._run_props:
            self._new_run(tag, key, properties)
        if mandatory:
            self.mandatory.append((tag, exchange, routing_key))

    @property
    def in_flight(self) -> int:
        """Publishes sent and not yet confirmed."""
        return len(self._promises) - self._settled

    def _new_run(self, tag: int, key: tuple[str, str, bool], properties: bytes) -> None:
        """From `tag` on, publishes go with `key` and `properties` (until the next run)."""
        self._run_starts.append(tag)
        self._runs.append((key, properties))
        self._run_key, self._run_props = key, properties

    def _sent_with(self, tag: int) -> tuple[tuple[str, str, bool], bytes]:
        """The key and properties publish `tag` (one in flight) was sent with."""
        return self._runs[bisect_right(self._run_starts, tag) - 1]

    def _pending(self, tag: int) -> bool:
        """Whether publish `tag` is in flight."""
        index = tag - self._base
        return 0 <= index < len(self._promises) and self._promises[index] is not None

    def unconfirmed(self) -> dict[int, _InFlight]:
        """Each publish in flight by tag: (promise, key, properties, body), in tag order."""
        base, bodies = self._base, self._bodies
        return {
            base + index: (promise, *self._sent_with(base + index), bodies[index])  # type: ignore[misc]
            for index, promise in enumerate(self._promises)
            if promise is not None
        }

    def _drop_settled(self) -> None:
        """Forget the settled entries below `oldest`, once they are many (amortized O(1))."""
        head = self.oldest - self._base
        if 2 * head < len(self._promises):
            return
        del self._promises[:head]
        del self._bodies[:head]
        self._settled -= head  # (every one below `oldest` is settled)
        self._base = base = self.oldest
        runs = bisect_right(self._run_starts, base) - 1  # the runs wholly below `base`
        if runs > 0:
            del self._run_starts[:runs]
            del self._runs[:runs]

    def _method_frame(self, key: tuple[str, str, bool]) -> tuple[tuple[str, str, bool], bytes]:
        exchange, routing_key, mandatory = key
        method = methods.BasicPublish(
            exchange=exchange, routing_key=routing_key, mandatory=mandatory
        )
        if len(self._method_frames) >= _METHOD_CACHE_SIZE:
            self._method_frames.clear()
        frame = encode_method_frame_open(self._channel_number, method.encode())
        cached = self._method_frames[key] = (key, frame)
        return cached

    def _send_buffers(self, method_frame: bytes, properties: bytes, body: bytes) -> None:
        engine, payload = self.engine, method_frame[7:]  # the method, after the frame header
        frames = encode_content_buffers(
            self._channel_number, payload, properties, body, engine.frame_max
        )
        engine.send_buffers(frames)

    # --- what the broker says -------------------------------------------------------------

    def on_method(
        self, channel: Channel, method: methods.Method, props: BasicProperties | None, body: bytes
    ) -> None:
        """Confirms and returns."""
        kind = type(method)
        if kind is methods.BasicAck:
            self._settle(method.delivery_tag, method.multiple, None)  # type: ignore[attr-defined]
        elif kind is methods.BasicNack:
            error = PublishNacked("the broker nacked the message: it was not enqueued")
            self._settle(method.delivery_tag, method.multiple, error)  # type: ignore[attr-defined]
            self.routes.nacked(self)
        elif kind is methods.BasicReturn:
            self._returned(method, props, body)  # type: ignore[arg-type]
        elif kind is methods.ConfirmSelectOk:
            pass
        else:
            raise UnexpectedFrame(f"{method.NAME} on the publish channel was not expected")

    def _settle(self, tag: int, multiple: bool, error: PublishNacked | None) -> None:
        in_flight, bodies, base = self._promises, self._bodies, self._base
        promises = self.engine.promises
        if multiple:
            start, last = self.oldest, min(tag, self.next_tag - 1)
            low, high = start - base, last - base + 1
            window = in_flight[low:high] if low < high else []
            settled = [promise for promise in window if promise is not None]
            if window:
                in_flight[low:high] = repeat(None, high - low)
                bodies[low:high] = repeat(None, high - low)
            self._settled += len(settled)
            if error is None and not self.returned:  # each ends the same way: all at once
                promises.resolve_all(settled, _OK)
            else:
                for index, promise in enumerate(window):
                    if promise is not None:
                        outcome = self._outcome(start + index, error)
                        promises.resolve_all((promise,), outcome)
            self.oldest = max(start, last + 1)  # the tags up to `last` are settled
            if not settled or tag >= self.next_tag:  # settled nothing, or unpublished tags
                self.unknown_confirms += 1
        else:
            index = tag - base
            promise = in_flight[index] if 0 <= index < len(in_flight) else None
            if promise is None:
                self.unknown_confirms += 1
                return
            in_flight[index] = bodies[index] = None
            self._settled += 1
            promises.resolve_all((promise,), self._outcome(tag, error))
        oldest, end = self.oldest, self.next_tag  # past tags settled one by one, either way
        while oldest < end and in_flight[oldest - base] is None:
            oldest += 1
        self.oldest = oldest
        mandatory = self.mandatory
        while mandatory and not self._pending(mandatory[0][0]):
            mandatory.popleft()
        if oldest - base >= _COMPACT:
            self._drop_settled()
        if self.retired:
            self._close_if_settled()

    def retire(self) -> None:
        """Another publisher took over: close the channel once nothing is in flight on it."""
        self.retired = True
        self._close_if_settled()

    def _close_if_settled(self) -> None:
        if self.in_flight == 0 and self.channel.owner is self:
            self.channel.close()

    def _outcome(self, tag: int, error: PublishNacked | None) -> Result:
        if self.returned:
            returned = self.returned.pop(tag, None)
            if returned is not None:
                return returned
        return _OK if error is None else Result.error(error)

    def _returned(
        self, method: methods.BasicReturn, props: BasicProperties | None, body: bytes
    ) -> None:
        tag = next(
            (
                entry[0]
                for entry in self.mandatory
                if entry[1] == method.exchange
                and entry[2] == method.routing_key
                and self._pending(entry[0])  # not one acked already (acks come in any order)
            ),
            0,
        )
        if not tag:
            self.engine.unpaired_returns += 1
            return
        while self.mandatory[0][0] != tag:  # earlier mandatory publishes were routed
            self.mandatory.popleft()
        self.mandatory.popleft()
        result = message_result("basic.return", method, props, body)
        error = Returned(
            result,
            method.reply_text,
            methods.BasicPublish.CLASS_ID,
            methods.BasicPublish.METHOD_ID,
        )
        error_result = Result.error(error, dict(result))
        error_result.name = "basic.return"
        error_result._props = props  # the returned message's properties and headers apart
        self.returned[tag] = error_result

    def on_channel_closed(self, channel: Channel, error: AMQPError) -> None:
        """The broker closed the publish channel because of one publish.

        When the error names the exchange (404 no exchange, 403 access refused), only the
        publishes to that exchange fail; the others in flight are sent again on a new channel
        (those before the culprit may have been enqueued already: at-least-once, never lost).
        Otherwise every publish in flight fails with the error.
        """
        culprit = _exchange_named(error)
        self.routes.gone(self)
        if culprit is None:
            self.fail_all(error)
            return
        pending = self._take_all()  # in tag order
        self.mandatory.clear()
        self.returned.clear()
        promises = self.engine.promises
        failed = Result.error(error)
        for promise, key, properties, body in pending.values():
            if key[0] == culprit:
                promises.resolve_all((promise,), failed)
            else:  # it may have to wait for the new channel: as an object
                again = promise if isinstance(promise, Promise) else promises.promote(promise)
                self.routes.republish(again, key, properties, body)

    def fail_all(self, error: BaseException) -> None:
        """Fail every publish in flight with `error`."""
        pending = [promise for promise in self._promises if promise is not None]
        self._forget_all()
        self.mandatory.clear()
        self.returned.clear()
        failed = Result.error(error)
        self.engine.promises.resolve_all(pending, failed)

    def _take_all(self) -> dict[int, _InFlight]:
        """Every publish in flight (see `unconfirmed`), forgotten here."""
        pending = self.unconfirmed()
        self._forget_all()
        return pending

    def _forget_all(self) -> None:
        self._promises, self._bodies = [], []
        self._run_starts, self._runs = [], []
        self._run_key = self._run_props = None
        self._base = self.oldest = self.next_tag
        self._settled = 0


_NAMED_EXCHANGE = re.compile(r"exchange '((?:[^'\\]|\\.)*)' in vhost")


def _exchange_named(error: AMQPError) -> str | None:
    """The exchange a publish error is about, if the broker named it."""
    if (error.class_id, error.method_id) != (60, 40) or error.reply_code not in (403, 404):
        return None
    match = _NAMED_EXCHANGE.search(error.reply_text)
    return match.group(1) if match else None
