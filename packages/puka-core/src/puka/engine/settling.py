"""Settling deliveries: basic.ack, basic.nack and basic.reject, on the channel they came on.

Each channel keeps the delivery tags it has to settle (`Channel.unacked`). A settle of a tag
that is already settled, or whose channel is gone (the broker requeued the message when the
channel closed, or the connection was recovered), is not sent: RabbitMQ would close the
channel with 406. It is counted in `engine.stale_acks` and dropped.

Acks coalesce: acks queued one after the other, on one channel, in rising order, go out as
one `multiple` ack of the last tag, when every tag up to it is settled (`Channel.settled_to`).
It acks exactly what the acks it replaces acked.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Protocol

from puka_spec import methods

from puka.engine.channel_states import ChannelState
from puka.engine.connection_states import ConnectionState
from puka.engine.link import Link
from puka.engine.queueing import refuse_if_closed

if TYPE_CHECKING:
    from puka.engine.channels import Channel, ChannelPool
    from puka.results import Result

__all__ = ["SettleLink", "Settler"]

_ACK_FRAME = struct.Struct(">BHIHHQBB")  # a whole basic.ack frame
_OPEN = ConnectionState.OPEN  # read as globals: an Enum class attribute is slow on Python 3.11
_CHANNEL_OPEN = ChannelState.OPEN


class SettleLink(Link, Protocol):
    """What settling needs of its connection (`Engine`)."""

    state: ConnectionState
    error: BaseException | None
    channels: ChannelPool
    outgoing_bytes: int
    stale_acks: int
    coalesced_acks: int
    _out: list[bytes | memoryview]  # the frames queued for the transport (see `ack`)


class Settler:
    """Settles deliveries for one connection, and merges consecutive acks."""

    def __init__(self, link: SettleLink) -> None:
        self.link = link
        self._last_ack: bytes | None = None  # the last ack frame queued (see `ack`)
        self._last_ack_channel: Channel | None = None
        self._last_ack_tag = 0

    def ack(self, message: Result, multiple: bool) -> None:
        """basic.ack of a delivered message (the hot path of a consumer: one pack, no objects).

        When the last frame queued is this channel's ack of an earlier tag and every tag up
        to this one is settled, that frame becomes a `multiple` ack of this tag: it acks
        exactly what the two acked (any tag between them was acked, or rejected by a frame
        queued before).
        """
        settled = self._channel_of(message, multiple)
        if settled is None:
            return
        channel, tag = settled
        link = self.link
        out = link._out
        merge = (
            bool(out)
            and out[-1] is self._last_ack
            and self._last_ack_channel is channel
            and self._last_ack_tag < tag <= channel.settled_to
        )
        data = _ACK_FRAME.pack(1, channel.number, 13, 60, 80, tag, merge or multiple, 206)
        if merge:  # the same 21 bytes, in place of the ack before
            out[-1] = data
            link.coalesced_acks += 1
        else:
            out.append(data)
            link.outgoing_bytes += 21
            self._last_ack_channel = channel
        self._last_ack = data
        self._last_ack_tag = tag

    def settle(self, message: Result, method: methods.Method) -> None:
        """basic.ack / reject / nack of a delivered message: sent on its channel."""
        settled = self._channel_of(message, bool(getattr(method, "multiple", False)))
        if settled is not None:
            channel, tag = settled
            if isinstance(method, methods.BasicNack) and tag != method.delivery_tag:
                # a multiple nack of a settled tag: the highest one below it still outstanding
                method = methods.BasicNack(delivery_tag=tag, multiple=True, requeue=method.requeue)
            self.link.send_method(channel.number, method)

    def _channel_of(self, message: Result, multiple: bool) -> tuple[Channel, int] | None:
        """The channel and the tag to send for a settle of `message`, `None` if it is stale.

        An already settled tag is not sent again (even with `multiple`, that earns a 406); with
        `multiple`, the highest tag below it still outstanding is sent in its place, so that
        every message before it is settled as asked.
        """
        link = self.link
        if link.state is not _OPEN:
            refuse_if_closed(link.state, link.error)
        where = message._ack
        if where is None:
            raise ValueError(
                "msg_result is not a message to acknowledge (or it was fetched with no_ack)"
            )
        channel, tag = where
        unacked = channel.unacked
        if channel.state is not _CHANNEL_OPEN or channel.pool is not link.channels:
            link.stale_acks += 1
            return None
        if tag not in unacked:
            if multiple:
                tag = max((t for t in unacked if t <= tag), default=0)
            if not multiple or not tag:
                link.stale_acks += 1
                return None
        if multiple:
            unacked -= {t for t in unacked if t <= tag}  # tag at least
        else:
            unacked.remove(tag)
        settled_to = channel.settled_to
        if tag == settled_to + 1 or (multiple and tag > settled_to):
            # the settled prefix grows, over the tags settled out of order before it (acked in
            # order, the next tag is unacked: one lookup)
            settled_to, last = tag, channel.last_tag
            while settled_to < last and settled_to + 1 not in unacked:
                settled_to += 1
            channel.settled_to = settled_to
        if not unacked and channel.owner is None:
            link.channels.release(channel)  # parked until its acks were done
        return channel, tag
