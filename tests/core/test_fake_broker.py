"""The fake broker, driven by hand-encoded client frames and checked by decoding its replies."""

from __future__ import annotations

from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from puka_spec import (
    HEARTBEAT_FRAME,
    BasicProperties,
    BodyFrame,
    FieldTable,
    FrameReader,
    HeaderFrame,
    HeartbeatFrame,
    Method,
    MethodFrame,
    encode_content,
    encode_header_frame,
    encode_method_frame,
    encode_table,
    methods,
)

from testkit.fake_broker import FakeBroker, Tuning, headers_match, topic_matches

HEADER = b"AMQP\x00\x00\x09\x01"
ALL_CAPS: FieldTable = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
}
BINARY = bytes(range(256)) * 40  # 10240 bytes: several body frames at frame_max 4096


class Reply(NamedTuple):
    """One thing the broker said: a method, with its content when it carries one."""

    channel: int
    method: Method
    properties: BasicProperties | None = None
    body: bytes | None = None


class Client:
    """A hand-driven client: encodes frames into the broker and decodes what it answers."""

    def __init__(self, broker: FakeBroker | None = None, frame_max: int = 4096) -> None:
        self.broker = broker or FakeBroker()
        self.frame_max = frame_max
        self.reader = FrameReader(1 << 20)
        self.heartbeats = 0

    def send(self, channel: int, method: Method) -> list[Reply]:
        self.broker.receive_data(encode_method_frame(channel, method))
        return self.replies()

    def publish(
        self,
        channel: int,
        exchange: str,
        routing_key: str,
        body: bytes = b"hello",
        properties: BasicProperties | None = None,
        *,
        mandatory: bool = False,
    ) -> list[Reply]:
        method = methods.BasicPublish(exchange, routing_key, mandatory=mandatory)
        props = properties or BasicProperties()
        self.broker.receive_data(encode_content(channel, method, props, body, self.frame_max))
        return self.replies()

    def replies(self) -> list[Reply]:
        self.reader.feed(self.broker.data_to_send())
        out: list[Reply] = []
        pending: Reply | None = None
        size = 0
        while (frame := self.reader.read_frame()) is not None:
            if isinstance(frame, HeartbeatFrame):
                self.heartbeats += 1
            elif isinstance(frame, MethodFrame):
                assert pending is None, "a method frame interrupted content"
                if frame.method.HAS_CONTENT:
                    pending = Reply(frame.channel, frame.method)
                else:
                    out.append(Reply(frame.channel, frame.method))
            elif isinstance(frame, HeaderFrame):
                assert pending is not None and pending.properties is None
                assert frame.channel == pending.channel
                size = frame.body_size
                pending = pending._replace(properties=frame.properties, body=b"")
            else:
                assert isinstance(frame, BodyFrame)
                assert pending is not None and pending.body is not None
                assert frame.channel == pending.channel
                assert len(frame.payload) <= self.frame_max - 8
                pending = pending._replace(body=pending.body + frame.payload)
            if pending is not None and pending.body is not None and len(pending.body) == size:
                out.append(pending)
                pending = None
        assert pending is None
        return out

    def methods(self) -> list[Method]:
        return [r.method for r in self.replies()]

    def handshake(
        self,
        *,
        user: str = "guest",
        password: str = "guest",
        vhost: str = "/",
        capabilities: FieldTable | None = None,
    ) -> None:
        self.broker.receive_data(HEADER)
        [start] = self.replies()
        assert isinstance(start.method, methods.ConnectionStart)
        caps = ALL_CAPS if capabilities is None else capabilities
        start_ok = methods.ConnectionStartOk(
            {"product": "test", "capabilities": caps},
            "PLAIN",
            f"\0{user}\0{password}".encode(),
            "en_US",
        )
        [tune] = self.send(0, start_ok)
        assert isinstance(tune.method, methods.ConnectionTune)
        tune_ok = methods.ConnectionTuneOk(tune.method.channel_max, self.frame_max, 0)
        assert self.send(0, tune_ok) == []
        [open_ok] = self.send(0, methods.ConnectionOpen(vhost))
        assert isinstance(open_ok.method, methods.ConnectionOpenOk)

    def open_channel(self, channel: int = 1) -> None:
        [ok] = self.send(channel, methods.ChannelOpen())
        assert ok == Reply(channel, methods.ChannelOpenOk())

    def declare(
        self,
        queue: str,
        channel: int = 1,
        *,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
    ) -> None:
        declare = methods.QueueDeclare(
            queue, durable=durable, exclusive=exclusive, auto_delete=auto_delete
        )
        [ok] = self.send(channel, declare)
        assert isinstance(ok.method, methods.QueueDeclareOk)

    def bind(self, queue: str, exchange: str, routing_key: str, channel: int = 1) -> None:
        [ok] = self.send(channel, methods.QueueBind(queue, exchange, routing_key))
        assert ok.method == methods.QueueBindOk()


@pytest.fixture
def client() -> Client:
    """A client with the connection open and channel 1 open."""
    c = Client()
    c.handshake()
    c.open_channel(1)
    return c


def _channel_close(reply: Reply) -> methods.ChannelClose:
    assert isinstance(reply.method, methods.ChannelClose), reply
    return reply.method


def _deliver(reply: Reply) -> methods.BasicDeliver:
    assert isinstance(reply.method, methods.BasicDeliver), reply
    return reply.method


def _connection_close(reply: Reply) -> methods.ConnectionClose:
    assert isinstance(reply.method, methods.ConnectionClose), reply
    return reply.method


# ---------------------------------------------------------------------------------------------
# Handshake
# ---------------------------------------------------------------------------------------------


def test_handshake_negotiates_and_opens() -> None:
    c = Client(FakeBroker(channel_max=100, heartbeat=30))
    assert c.broker.state == "awaiting_header"
    c.broker.receive_data(HEADER[:3])
    assert c.replies() == []
    c.broker.receive_data(HEADER[3:])
    [start] = c.replies()
    method = start.method
    assert isinstance(method, methods.ConnectionStart)
    assert (start.channel, method.version_major, method.version_minor) == (0, 0, 9)
    assert method.mechanisms == b"PLAIN AMQPLAIN"
    assert method.locales == b"en_US"
    caps = method.server_properties["capabilities"]
    assert isinstance(caps, dict)
    for name in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ]:
        assert caps[name] is True
    assert method.server_properties["product"] == "RabbitMQ"
    assert c.broker.state == "awaiting_start_ok"

    client_properties: FieldTable = {"product": "test", "capabilities": ALL_CAPS}
    start_ok = methods.ConnectionStartOk(client_properties, "PLAIN", b"\0guest\0guest", "en_US")
    assert c.send(0, start_ok) == [Reply(0, methods.ConnectionTune(100, 131072, 30))]
    assert c.broker.client_properties == client_properties
    assert c.broker.state == "awaiting_tune_ok"
    assert c.send(0, methods.ConnectionTuneOk(50, 8192, 10)) == []
    assert c.broker.negotiated == Tuning(50, 8192, 10)
    assert c.broker.state == "awaiting_open"
    assert c.send(0, methods.ConnectionOpen("/")) == [Reply(0, methods.ConnectionOpenOk())]
    assert c.broker.state == "open"
    assert [m.NAME for _, m in c.broker.received_methods] == [
        "connection.start-ok",
        "connection.tune-ok",
        "connection.open",
    ]


def test_handshake_bytes_may_arrive_split_anywhere() -> None:
    whole = Client()
    whole.handshake()
    whole.open_channel()
    stream = HEADER + b"".join(
        encode_method_frame(ch, m)
        for ch, m in [
            (0, methods.ConnectionStartOk({}, "PLAIN", b"\0guest\0guest", "en_US")),
            (0, methods.ConnectionTuneOk(2047, 4096, 0)),
            (0, methods.ConnectionOpen("/")),
            (1, methods.ChannelOpen()),
        ]
    )
    broker = FakeBroker()
    for i in range(len(stream)):
        broker.receive_data(stream[i : i + 1])
    assert broker.state == "open"
    assert broker.open_channels == {1}
    assert Client(broker).methods()[-2:] == [methods.ConnectionOpenOk(), methods.ChannelOpenOk()]


@pytest.mark.parametrize(("user", "password"), [("guest", "wrong"), ("nobody", "guest")])
def test_wrong_credentials_are_refused_with_403(user: str, password: str) -> None:
    c = Client()
    c.broker.receive_data(HEADER)
    c.replies()
    start_ok = methods.ConnectionStartOk({}, "PLAIN", f"\0{user}\0{password}".encode(), "en_US")
    [close] = c.send(0, start_ok)
    assert close.method == methods.ConnectionClose(
        403,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
        "For details see the broker logfile.",
        0,
        0,
    )
    assert c.broker.state == "closing"
    assert c.broker.protocol_errors[0][0] == 403
    assert c.send(0, methods.ConnectionTuneOk(0, 0, 0)) == []  # ignored
    assert c.send(0, methods.ConnectionCloseOk()) == []
    assert c.broker.state == "closed"


def test_amqplain_login() -> None:
    good = encode_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
    bad = encode_table({"LOGIN": "guest", "PASSWORD": "nope"})[4:]
    for response, expected in [(good, methods.ConnectionTune), (bad, methods.ConnectionClose)]:
        c = Client()
        c.broker.receive_data(HEADER)
        c.replies()
        [reply] = c.send(0, methods.ConnectionStartOk({}, "AMQPLAIN", response, "en_US"))
        assert isinstance(reply.method, expected)


def test_unknown_mechanism_is_command_invalid() -> None:
    c = Client()
    c.broker.receive_data(HEADER)
    c.replies()
    [close] = c.send(0, methods.ConnectionStartOk({}, "EXTERNAL", b"", "en_US"))
    assert _connection_close(close).reply_code == 503


def test_wrong_protocol_header_gets_ours_back_and_closes() -> None:
    broker = FakeBroker()
    broker.receive_data(b"AMQP\x01\x01\x00\x0a")
    assert broker.data_to_send() == HEADER
    assert broker.state == "closed"
    broker.receive_data(b"anything")
    assert broker.data_to_send() == b""


def test_unknown_vhost_is_530() -> None:
    c = Client(FakeBroker(vhosts={"/", "prod"}))
    c.broker.receive_data(HEADER)
    c.replies()
    c.send(0, methods.ConnectionStartOk({}, "PLAIN", b"\0guest\0guest", ""))
    c.send(0, methods.ConnectionTuneOk(10, 4096, 0))
    [close] = c.send(0, methods.ConnectionOpen("x"))
    assert close.method == methods.ConnectionClose(530, "NOT_ALLOWED - vhost x not found", 10, 40)
    assert c.broker.protocol_errors == [(530, "NOT_ALLOWED - vhost x not found")]
    assert c.broker.state == "closing"
    c.send(0, methods.ConnectionCloseOk())
    assert c.broker.state == "closed"


def test_tune_ok_frame_max_above_the_server_is_refused() -> None:
    c = Client(FakeBroker(frame_max=8192))
    c.broker.receive_data(HEADER)
    c.replies()
    c.send(0, methods.ConnectionStartOk({}, "PLAIN", b"\0guest\0guest", ""))
    [close] = c.send(0, methods.ConnectionTuneOk(10, 16384, 0))
    method = _connection_close(close)
    assert (method.reply_code, method.class_id, method.method_id) == (530, 10, 30)
    assert "frame_max = 16384 is higher than the maximum allowed value (8192)" in method.reply_text


def test_negotiated_frame_max_limits_the_reader() -> None:
    c = Client(frame_max=4096)
    c.handshake()
    c.open_channel()
    big = encode_method_frame(1, methods.QueueDeclare("q" * 200, arguments={"x": "y" * 5000}))
    c.broker.receive_data(big)
    [close] = c.replies()
    assert _connection_close(close).reply_code == 501


def test_client_close_gets_close_ok() -> None:
    c = Client()
    c.handshake()
    close = methods.ConnectionClose(200, "bye", 0, 0)
    assert c.send(0, close) == [Reply(0, methods.ConnectionCloseOk())]
    assert c.broker.state == "closed"
    assert c.broker.close_reason == close
    assert c.broker.protocol_errors == []


def test_update_secret() -> None:
    c = Client()
    c.handshake()
    [ok] = c.send(0, methods.ConnectionUpdateSecret(b"token", "refresh"))
    assert ok == Reply(0, methods.ConnectionUpdateSecretOk())


def test_heartbeats_both_ways() -> None:
    c = Client()
    c.handshake()
    c.broker.receive_data(HEARTBEAT_FRAME * 3)
    assert c.broker.heartbeats_received == 3
    c.broker.send_heartbeat()
    assert c.replies() == []
    assert c.heartbeats == 1


# ---------------------------------------------------------------------------------------------
# Queues, exchanges, publish, get
# ---------------------------------------------------------------------------------------------


def test_declare_bind_publish_get_round_trip(client: Client) -> None:
    client.declare("q")
    client.bind("q", "amq.direct", "key")
    props = BasicProperties(
        content_type="application/octet-stream",
        headers={"a": 1, "b": b"\x00\xff"},
        delivery_mode=2,
        correlation_id="c1",
        timestamp=1700000000,
    )
    assert client.publish(1, "amq.direct", "key", BINARY, props) == []
    assert client.publish(1, "", "q", b"") == []
    queue = client.broker.queues["q"]
    assert [m.body for m in queue.messages] == [BINARY, b""]
    assert queue.messages[0].properties == props
    assert (queue.messages[0].exchange, queue.messages[0].routing_key) == ("amq.direct", "key")

    [got] = client.send(1, methods.BasicGet("q", no_ack=False))
    assert got.method == methods.BasicGetOk(1, False, "amq.direct", "key", 1)
    assert (got.properties, got.body) == (props, BINARY)
    [got] = client.send(1, methods.BasicGet("q", no_ack=True))
    assert got.method == methods.BasicGetOk(2, False, "", "q", 0)
    assert got.body == b""
    assert client.send(1, methods.BasicGet("q")) == [Reply(1, methods.BasicGetEmpty())]
    assert client.send(1, methods.BasicAck(1)) == []
    assert client.broker.channels[1].unacked == {}
    assert [m.body for m in client.broker.published] == [BINARY, b""]


def test_server_named_queue_and_declare_ok_counts(client: Client) -> None:
    [ok] = client.send(1, methods.QueueDeclare("", exclusive=True))
    assert isinstance(ok.method, methods.QueueDeclareOk)
    name = ok.method.queue
    assert name.startswith("amq.gen-") and len(name) > 10
    client.publish(1, "", name, b"1")
    client.publish(1, "", name, b"2")
    client.send(1, methods.BasicQos(0, 1, False))
    client.send(1, methods.BasicConsume("", "tag", no_ack=False))  # "" = the last declared
    client.declare("other")
    [ok] = client.send(1, methods.QueueDeclare(name, passive=True))
    assert ok.method == methods.QueueDeclareOk(name, 1, 1)  # one delivered, one ready


def test_no_wait_gets_no_reply(client: Client) -> None:
    assert client.send(1, methods.QueueDeclare("q", no_wait=True)) == []
    assert client.send(1, methods.ExchangeDeclare("x", "fanout", no_wait=True)) == []
    assert client.send(1, methods.QueueBind("q", "x", "", no_wait=True)) == []
    assert client.send(1, methods.BasicConsume("q", "c", no_wait=True)) == []
    assert client.send(1, methods.BasicCancel("c", no_wait=True)) == []
    assert client.send(1, methods.QueuePurge("q", no_wait=True)) == []
    assert client.send(1, methods.QueueDelete("q", no_wait=True)) == []
    assert client.send(1, methods.ConfirmSelect(nowait=True)) == []
    assert "q" not in client.broker.queues
    assert client.broker.channels[1].confirm


def test_purge_and_delete(client: Client) -> None:
    client.declare("q")
    for body in [b"a", b"b", b"c"]:
        client.publish(1, "", "q", body)
    [ok] = client.send(1, methods.QueueDelete("q", if_empty=True))
    assert (
        _channel_close(ok).reply_text == "PRECONDITION_FAILED - queue 'q' in vhost '/' is not empty"
    )
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    assert client.send(1, methods.QueuePurge("q")) == [Reply(1, methods.QueuePurgeOk(3))]
    client.send(1, methods.BasicConsume("q", "c"))
    [ok] = client.send(1, methods.QueueDelete("q", if_unused=True))
    assert _channel_close(ok).reply_text == "PRECONDITION_FAILED - queue 'q' in vhost '/' in use"
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    client.publish(1, "", "q", b"x")
    assert client.send(1, methods.QueueDelete("q")) == [Reply(1, methods.QueueDeleteOk(1))]
    assert client.send(1, methods.QueueDelete("q")) == [Reply(1, methods.QueueDeleteOk(0))]


def test_passive_declare_of_missing_queue_closes_the_channel_until_close_ok(
    client: Client,
) -> None:
    [close] = client.send(1, methods.QueueDeclare("nope", passive=True))
    assert close == Reply(
        1, methods.ChannelClose(404, "NOT_FOUND - no queue 'nope' in vhost '/'", 50, 10)
    )
    assert client.broker.open_channels == set()
    assert client.broker.closing_channels == {1}
    # Everything on the channel is ignored, content included, until close-ok.
    assert client.send(1, methods.QueueDeclare("q")) == []
    assert client.publish(1, "", "q", b"ignored") == []
    assert client.send(1, methods.ChannelOpen()) == []
    assert "q" not in client.broker.queues
    assert client.send(1, methods.ChannelCloseOk()) == []
    assert client.broker.channels == {}
    client.open_channel(1)
    client.declare("q")
    assert client.broker.state == "open"


def test_crossing_channel_close(client: Client) -> None:
    client.broker.close_channel(1, 406, "PRECONDITION_FAILED - test")
    [close] = client.replies()
    assert close.method == methods.ChannelClose(406, "PRECONDITION_FAILED - test", 0, 0)
    assert client.send(1, methods.ChannelClose(200, "", 0, 0)) == [
        Reply(1, methods.ChannelCloseOk())
    ]
    assert client.send(1, methods.ChannelCloseOk()) == []
    assert client.broker.channels == {}


def test_client_channel_close(client: Client) -> None:
    client.open_channel(2)
    assert client.send(2, methods.ChannelClose(200, "", 0, 0)) == [
        Reply(2, methods.ChannelCloseOk())
    ]
    assert client.broker.open_channels == {1}


@pytest.mark.parametrize(
    ("first", "second", "text"),
    [
        (
            methods.QueueDeclare("q", durable=True),
            methods.QueueDeclare("q", durable=False),
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': "
            "received 'false' but current is 'true'",
        ),
        (
            methods.QueueDeclare("q", auto_delete=False),
            methods.QueueDeclare("q", auto_delete=True),
            "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue 'q' in vhost '/': "
            "received 'true' but current is 'false'",
        ),
        (
            methods.QueueDeclare("q", arguments={"x-max-length": 10}),
            methods.QueueDeclare("q"),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': "
            "received none but current is the value '10' of type 'signedint'",
        ),
    ],
)
def test_inequivalent_queue_redeclare_is_406(
    client: Client, first: methods.QueueDeclare, second: methods.QueueDeclare, text: str
) -> None:
    client.send(1, first)
    [close] = client.send(1, second)
    assert close.method == methods.ChannelClose(406, text, 50, 10)


def test_equivalent_redeclare_and_unchecked_arguments_are_fine(client: Client) -> None:
    client.send(1, methods.QueueDeclare("q", durable=True, arguments={"x-max-length": 1}))
    [ok] = client.send(
        1, methods.QueueDeclare("q", durable=True, arguments={"x-max-length": 1, "custom": 1})
    )
    assert ok.method == methods.QueueDeclareOk("q", 0, 0)


def test_exclusive_mismatch_is_resource_locked_as_in_rabbitmq(client: Client) -> None:
    client.declare("q")
    [close] = client.send(1, methods.QueueDeclare("q", exclusive=True))
    assert _channel_close(close).reply_code == 405


def test_reserved_queue_name_is_403(client: Client) -> None:
    [close] = client.send(1, methods.QueueDeclare("amq.mine"))
    assert _channel_close(close).reply_text == (
        "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'"
    )


def test_exchange_declare_errors(client: Client) -> None:
    [close] = client.send(1, methods.ExchangeDeclare("amq.mine", "direct"))
    assert _channel_close(close).reply_code == 403
    assert close.method == methods.ChannelClose(
        403, "ACCESS_REFUSED - exchange name 'amq.mine' contains reserved prefix 'amq.*'", 40, 10
    )
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)

    [close] = client.send(1, methods.ExchangeDeclare("x", "direct", passive=True))
    assert _channel_close(close).reply_text == "NOT_FOUND - no exchange 'x' in vhost '/'"
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)

    assert client.methods() == []
    [ok] = client.send(1, methods.ExchangeDeclare("x", "direct", durable=True))
    assert ok.method == methods.ExchangeDeclareOk()
    [close] = client.send(1, methods.ExchangeDeclare("x", "fanout", durable=True))
    assert _channel_close(close).reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': "
        "received 'fanout' but current is 'direct'"
    )
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    [close] = client.send(1, methods.ExchangeDeclare("x", "direct"))
    assert _channel_close(close).reply_code == 406
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    # Redeclaring a predeclared exchange identically is allowed; passive works too.
    assert client.methods() == []
    [ok] = client.send(1, methods.ExchangeDeclare("amq.topic", "topic", durable=True))
    assert ok.method == methods.ExchangeDeclareOk()
    [ok] = client.send(1, methods.ExchangeDeclare("amq.fanout", passive=True))
    assert ok.method == methods.ExchangeDeclareOk()


def test_unknown_exchange_type_closes_the_connection_with_503(client: Client) -> None:
    [close] = client.send(1, methods.ExchangeDeclare("x", "x-nope"))
    assert close == Reply(
        0,
        methods.ConnectionClose(503, "COMMAND_INVALID - unknown exchange type 'x-nope'", 40, 10),
    )
    assert client.broker.state == "closing"
    assert client.broker.open_channels == set()


def test_exchange_delete(client: Client) -> None:
    client.send(1, methods.ExchangeDeclare("x", "fanout"))
    client.declare("q")
    client.bind("q", "x", "")
    [close] = client.send(1, methods.ExchangeDelete("x", if_unused=True))
    assert _channel_close(close).reply_code == 406
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    assert client.methods() == []
    assert client.send(1, methods.ExchangeDelete("x")) == [Reply(1, methods.ExchangeDeleteOk())]
    assert "x" not in client.broker.exchanges
    [close] = client.send(1, methods.ExchangeDelete("amq.direct"))
    assert _channel_close(close).reply_code == 403


def test_bind_to_missing_queue_or_exchange_is_404(client: Client) -> None:
    client.declare("q")
    [close] = client.send(1, methods.QueueBind("q", "nope", "k"))
    assert _channel_close(close).reply_text == "NOT_FOUND - no exchange 'nope' in vhost '/'"
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    [close] = client.send(1, methods.QueueBind("nope", "amq.direct", "k"))
    assert close.method == methods.ChannelClose(
        404, "NOT_FOUND - no queue 'nope' in vhost '/'", 50, 20
    )


def test_unbind(client: Client) -> None:
    client.declare("q")
    client.bind("q", "amq.direct", "k")
    [ok] = client.send(1, methods.QueueUnbind("q", "amq.direct", "k"))
    assert ok.method == methods.QueueUnbindOk()
    client.publish(1, "amq.direct", "k")
    assert len(client.broker.queues["q"].messages) == 0


def test_publish_to_missing_exchange_is_404(client: Client) -> None:
    [close] = client.publish(1, "nope", "k", BINARY)
    assert close == Reply(
        1, methods.ChannelClose(404, "NOT_FOUND - no exchange 'nope' in vhost '/'", 60, 40)
    )


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.*", "a.b.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#", "", True),
        ("#", "anything.at.all", True),
        ("*", "", False),
        ("#.c", "a.b.c", True),
        ("#.c", "c", True),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y.d", False),
        ("*.#.*", "a", False),
        ("*.#.*", "a.b", True),
        ("#.#.#", "a.b", True),
        ("", "", True),
        ("", "a", False),
    ],
)
def test_topic_matches(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_topic_routing_through_the_broker(client: Client) -> None:
    for queue, pattern in [("stars", "*.orange.*"), ("hashes", "lazy.#"), ("exact", "a.b")]:
        client.declare(queue)
        client.bind(queue, "amq.topic", pattern)
    for key in ["quick.orange.rabbit", "lazy.orange.elephant", "lazy", "a.b", "a.b.c"]:
        client.publish(1, "amq.topic", key, key.encode())
    got = {name: [m.body for m in q.messages] for name, q in client.broker.queues.items()}
    assert got == {
        "stars": [b"quick.orange.rabbit", b"lazy.orange.elephant"],
        "hashes": [b"lazy.orange.elephant", b"lazy"],
        "exact": [b"a.b"],
    }


def test_fanout_headers_and_exchange_to_exchange_routing(client: Client) -> None:
    client.send(1, methods.ExchangeDeclare("e1", "fanout"))
    client.send(1, methods.ExchangeDeclare("e2", "direct"))
    client.send(1, methods.ExchangeBind("e2", "e1", ""))
    client.send(1, methods.ExchangeBind("e1", "e2", "loop"))  # a cycle
    client.declare("q1")
    client.declare("q2")
    client.declare("h")
    client.bind("q1", "e1", "")
    client.bind("q2", "e2", "k")
    client.send(1, methods.QueueBind("h", "amq.headers", "", arguments={"x-match": "any", "a": 1}))
    client.send(1, methods.QueueBind("q1", "e2", "k"))  # reached twice: delivered once
    client.publish(1, "e1", "k", b"m1")
    client.publish(1, "e2", "loop", b"m2")
    client.publish(1, "amq.headers", "", b"h1", BasicProperties(headers={"a": 1, "b": 2}))
    client.publish(1, "amq.headers", "", b"h2", BasicProperties(headers={"a": 2}))
    got = {name: [m.body for m in q.messages] for name, q in client.broker.queues.items()}
    assert got == {"q1": [b"m1", b"m2"], "q2": [b"m1"], "h": [b"h1"]}
    assert sorted(client.broker.publish("e1", "k", b"server-side")) == ["q1", "q2"]


def test_headers_match() -> None:
    assert headers_match({"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3})
    assert not headers_match({"a": 1, "b": 2}, {"a": 1})
    assert headers_match({"x-match": "any", "a": 1, "b": 2}, {"b": 2})
    assert not headers_match({"x-match": "any", "a": 1}, {})


# ---------------------------------------------------------------------------------------------
# Consumers and acks
# ---------------------------------------------------------------------------------------------


def _delivery_tags(replies: list[Reply]) -> list[int]:
    return [_deliver(reply).delivery_tag for reply in replies]


def test_consume_with_prefetch_and_acks(client: Client) -> None:
    client.declare("q")
    for i in range(5):
        client.publish(1, "", "q", f"m{i}".encode(), BasicProperties(message_id=str(i)))
    assert client.send(1, methods.BasicQos(0, 2, False)) == [Reply(1, methods.BasicQosOk())]
    replies = client.send(1, methods.BasicConsume("q", "", no_ack=False))
    ok = replies[0].method
    assert isinstance(ok, methods.BasicConsumeOk) and ok.consumer_tag.startswith("amq.ctag-")
    deliveries = replies[1:]
    assert [d.method for d in deliveries] == [
        methods.BasicDeliver(ok.consumer_tag, 1, False, "", "q"),
        methods.BasicDeliver(ok.consumer_tag, 2, False, "", "q"),
    ]
    assert [d.body for d in deliveries] == [b"m0", b"m1"]
    assert deliveries[1].properties == BasicProperties(message_id="1")
    assert client.broker.consumers[ok.consumer_tag].unacked == 2
    [third] = client.send(1, methods.BasicAck(1))
    assert (_deliver(third).delivery_tag, third.body) == (3, b"m2")
    assert _delivery_tags(client.send(1, methods.BasicAck(3, multiple=True))) == [4, 5]
    assert client.send(1, methods.BasicAck(0, multiple=True)) == []
    assert client.broker.channels[1].unacked == {}
    assert len(client.broker.queues["q"].messages) == 0


def test_global_prefetch_limits_the_channel(client: Client) -> None:
    client.declare("q")
    for _ in range(4):
        client.publish(1, "", "q")
    client.send(1, methods.BasicQos(0, 3, True))
    assert _delivery_tags(client.send(1, methods.BasicConsume("q", "a"))[1:]) == [1, 2, 3]
    assert client.send(1, methods.BasicConsume("q", "b")) == [Reply(1, methods.BasicConsumeOk("b"))]
    assert _delivery_tags(client.send(1, methods.BasicAck(1))) == [4]


def test_nack_and_reject_requeue_at_the_head_redelivered(client: Client) -> None:
    client.declare("q")
    for body in [b"a", b"b", b"c"]:
        client.publish(1, "", "q", body)
    client.send(1, methods.BasicQos(0, 2, False))
    replies = client.send(1, methods.BasicConsume("q", "c1"))
    assert [r.body for r in replies[1:]] == [b"a", b"b"]
    redelivered = client.send(1, methods.BasicNack(2, multiple=True, requeue=True))
    assert [(r.body, _deliver(r).redelivered) for r in redelivered] == [
        (b"a", True),
        (b"b", True),
    ]
    assert _delivery_tags(redelivered) == [3, 4]
    [c] = client.send(1, methods.BasicReject(3, requeue=False))  # "a" dropped
    assert c.body == b"c"
    [again] = client.send(1, methods.BasicReject(4, requeue=True))
    assert (again.body, _deliver(again).delivery_tag) == (b"b", 6)


def test_round_robin_between_consumers(client: Client) -> None:
    client.declare("q")
    client.send(1, methods.BasicConsume("q", "c1", no_ack=True))
    client.send(1, methods.BasicConsume("q", "c2", no_ack=True))
    tags = []
    for i in range(4):
        [d] = client.publish(1, "", "q", str(i).encode())
        tags.append(_deliver(d).consumer_tag)
    assert tags == ["c1", "c2", "c1", "c2"]


def test_delivery_tags_are_per_channel_and_shared_with_get(client: Client) -> None:
    client.open_channel(2)
    client.declare("q")
    for _ in range(3):
        client.publish(1, "", "q", b"x")
    [got] = client.send(2, methods.BasicGet("q"))
    assert got.method == methods.BasicGetOk(1, False, "", "q", 2)
    replies = client.send(2, methods.BasicConsume("q", "c"))
    assert _delivery_tags(replies[1:]) == [2, 3]
    [delivery] = client.publish(1, "", "q")  # published on 1, delivered on 2
    assert delivery == Reply(
        2, methods.BasicDeliver("c", 4, False, "", "q"), BasicProperties(), b"hello"
    )
    client.send(2, methods.BasicCancel("c"))
    client.publish(1, "", "q")
    [got] = client.send(1, methods.BasicGet("q"))
    assert got.method == methods.BasicGetOk(1, False, "", "q", 0)


def test_unknown_delivery_tag_is_406(client: Client) -> None:
    [close] = client.send(1, methods.BasicAck(99))
    assert close.method == methods.ChannelClose(
        406, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 80
    )


def test_cancel_and_auto_delete(client: Client) -> None:
    client.declare("q", auto_delete=True)
    client.send(1, methods.BasicConsume("q", "c"))
    assert client.send(1, methods.BasicCancel("c")) == [Reply(1, methods.BasicCancelOk("c"))]
    assert "q" not in client.broker.queues
    assert client.send(1, methods.BasicCancel("unknown")) == [
        Reply(1, methods.BasicCancelOk("unknown"))
    ]


def test_consume_errors(client: Client) -> None:
    [close] = client.send(1, methods.BasicConsume("nope", "c"))
    assert _channel_close(close).reply_code == 404
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    client.declare("q")
    client.send(1, methods.BasicConsume("q", "c", exclusive=True))
    [close] = client.send(1, methods.BasicConsume("q", "d"))
    assert _channel_close(close).reply_text == (
        "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
    )
    client.send(1, methods.ChannelCloseOk())
    client.open_channel(1)
    client.send(1, methods.BasicConsume("q", "c"))
    [close] = client.send(1, methods.BasicConsume("q", "c"))
    assert _connection_close(close).reply_code == 530


def test_channel_close_requeues_unacked_and_removes_consumers(client: Client) -> None:
    client.open_channel(2)
    client.declare("q")
    client.publish(1, "", "q", b"a")
    client.publish(1, "", "q", b"b")
    client.send(2, methods.BasicConsume("q", "c"))
    client.send(2, methods.ChannelClose(200, "", 0, 0))
    assert client.broker.consumers == {}
    queue = client.broker.queues["q"]
    assert [(m.body, m.redelivered) for m in queue.messages] == [(b"a", True), (b"b", True)]


def test_recover_requeues(client: Client) -> None:
    client.declare("q")
    client.publish(1, "", "q", b"a")
    client.send(1, methods.BasicGet("q"))
    assert client.send(1, methods.BasicRecover(requeue=True)) == [
        Reply(1, methods.BasicRecoverOk())
    ]
    assert client.broker.queues["q"].messages[0].redelivered
    [close] = client.send(1, methods.BasicRecover(requeue=False))
    assert _connection_close(close).reply_code == 540


def test_connection_close_requeues_and_deletes_exclusive_queues(client: Client) -> None:
    client.declare("keep")
    client.declare("mine", exclusive=True)
    client.publish(1, "", "keep", b"a")
    client.send(1, methods.BasicGet("keep"))
    client.send(0, methods.ConnectionClose(200, "", 0, 0))
    assert set(client.broker.queues) == {"keep"}
    assert client.broker.queues["keep"].messages[0].redelivered


# ---------------------------------------------------------------------------------------------
# Publisher confirms, mandatory, transactions
# ---------------------------------------------------------------------------------------------


def test_mandatory_return_comes_before_the_ack(client: Client) -> None:
    client.send(1, methods.ConfirmSelect())
    props = BasicProperties(content_type="text/plain")
    replies = client.publish(1, "amq.direct", "nowhere", BINARY, props, mandatory=True)
    assert replies == [
        Reply(1, methods.BasicReturn(312, "NO_ROUTE", "amq.direct", "nowhere"), props, BINARY),
        Reply(1, methods.BasicAck(1, False)),
    ]
    # Not mandatory: silently dropped, still acked.
    assert client.publish(1, "amq.direct", "nowhere") == [Reply(1, methods.BasicAck(2, False))]


def test_confirm_select_ok_and_acks(client: Client) -> None:
    assert client.send(1, methods.ConfirmSelect()) == [Reply(1, methods.ConfirmSelectOk())]
    client.declare("q")
    assert client.publish(1, "", "q") == [Reply(1, methods.BasicAck(1, False))]
    assert client.publish(1, "", "q") == [Reply(1, methods.BasicAck(2, False))]


def test_confirm_batching(client: Client) -> None:
    client.broker.confirm_batch = 3
    client.send(1, methods.ConfirmSelect())
    acks = []
    for _ in range(7):
        acks += client.publish(1, "amq.fanout", "")
    assert acks == [Reply(1, methods.BasicAck(3, True)), Reply(1, methods.BasicAck(6, True))]
    client.broker.flush_confirms()
    assert client.replies() == [Reply(1, methods.BasicAck(7, True))]
    client.broker.flush_confirms()
    assert client.replies() == []


def test_nack_next(client: Client) -> None:
    client.declare("q")
    client.send(1, methods.ConfirmSelect())
    client.broker.nack_next = 2
    replies = [r for _ in range(3) for r in client.publish(1, "", "q")]
    assert replies == [
        Reply(1, methods.BasicNack(1, False, False)),
        Reply(1, methods.BasicNack(2, False, False)),
        Reply(1, methods.BasicAck(3, False)),
    ]
    assert len(client.broker.queues["q"].messages) == 1
    assert client.broker.nack_next == 0


def test_nack_flushes_batched_acks_first(client: Client) -> None:
    client.broker.confirm_batch = 10
    client.send(1, methods.ConfirmSelect())
    client.publish(1, "amq.fanout", "")
    client.broker.nack_next = 1
    assert client.publish(1, "amq.fanout", "") == [
        Reply(1, methods.BasicAck(1, True)),
        Reply(1, methods.BasicNack(2, False, False)),
    ]


def test_tx_commit_and_rollback(client: Client) -> None:
    client.declare("q")
    client.publish(1, "", "q", b"pre")
    client.send(1, methods.BasicGet("q"))
    assert client.send(1, methods.TxSelect()) == [Reply(1, methods.TxSelectOk())]
    client.publish(1, "", "q", b"tx1")
    client.send(1, methods.BasicAck(1))
    queue = client.broker.queues["q"]
    assert len(queue.messages) == 0 and 1 in client.broker.channels[1].unacked
    assert client.send(1, methods.TxCommit()) == [Reply(1, methods.TxCommitOk())]
    assert [m.body for m in queue.messages] == [b"tx1"]
    assert client.broker.channels[1].unacked == {}
    client.publish(1, "", "q", b"tx2")
    assert client.send(1, methods.TxRollback()) == [Reply(1, methods.TxRollbackOk())]
    assert client.send(1, methods.TxCommit()) == [Reply(1, methods.TxCommitOk())]
    assert [m.body for m in queue.messages] == [b"tx1"]
    [close] = client.send(1, methods.ConfirmSelect())
    assert _channel_close(close).reply_code == 406


def test_tx_commit_without_select_is_406(client: Client) -> None:
    [close] = client.send(1, methods.TxCommit())
    assert _channel_close(close).reply_text == "PRECONDITION_FAILED - channel is not transactional"


# ---------------------------------------------------------------------------------------------
# Connection-level errors
# ---------------------------------------------------------------------------------------------


def test_second_channel_open_is_504(client: Client) -> None:
    [close] = client.send(1, methods.ChannelOpen())
    assert close == Reply(
        0, methods.ConnectionClose(504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    )


def test_method_on_a_channel_that_is_not_open_is_504(client: Client) -> None:
    [close] = client.send(5, methods.QueueDeclare("q"))
    assert close.method == methods.ConnectionClose(
        504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10
    )
    assert client.broker.state == "closing"
    assert client.send(5, methods.ChannelOpen()) == []
    assert client.send(0, methods.ConnectionCloseOk()) == []
    assert client.broker.state == "closed"


def test_channel_above_channel_max_is_504() -> None:
    c = Client(FakeBroker(channel_max=10))
    c.handshake()
    [close] = c.send(11, methods.ChannelOpen())
    assert _connection_close(close).reply_code == 504
    assert c.broker.protocol_errors[0][0] == 504


def test_channel_method_on_channel_zero_is_504() -> None:
    c = Client()
    c.handshake()
    [close] = c.send(0, methods.QueueDeclare("q"))
    assert close.method == methods.ConnectionClose(
        504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10
    )


def test_content_without_publish_is_505(client: Client) -> None:
    client.broker.receive_data(encode_header_frame(1, 60, 3, BasicProperties()))
    [close] = client.replies()
    assert _connection_close(close).reply_code == 505
    assert client.broker.protocol_errors == [
        (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")
    ]


def test_method_interrupting_content_is_505(client: Client) -> None:
    client.send(1, methods.BasicPublish("", "q"))
    [close] = client.send(1, methods.QueueDeclare("q"))
    assert _connection_close(close).reply_code == 505


def test_body_larger_than_announced_is_505(client: Client) -> None:
    data = encode_content(1, methods.BasicPublish("", "q"), BasicProperties(), b"abcdef", 4096)
    # Rewrite the header's body size (8 bytes before the property flags) from 6 to 2.
    start = data.index(b"\xce\x02") + 1
    size_at = start + 7 + 4
    data = data[:size_at] + (2).to_bytes(8, "big") + data[size_at + 8 :]
    client.broker.receive_data(data)
    [close] = client.replies()
    assert _connection_close(close).reply_code == 505


def test_bad_frame_end_is_501_and_then_only_close_ok_counts(client: Client) -> None:
    frame = encode_method_frame(1, methods.QueueDeclare("q"))
    client.broker.receive_data(frame[:-1] + b"\x00" + frame)
    [close] = client.replies()
    method = _connection_close(close)
    assert method.reply_code == 501
    assert method.reply_text.startswith("FRAME_ERROR - ")
    assert client.send(1, methods.QueueDeclare("q")) == []
    assert "q" not in client.broker.queues
    client.send(0, methods.ConnectionCloseOk())
    assert client.broker.state == "closed"


def test_unknown_method_is_540(client: Client) -> None:
    client.broker.receive_data(b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce")
    [close] = client.replies()
    assert _connection_close(close).reply_code == 540


def test_server_only_method_from_client_is_503(client: Client) -> None:
    [close] = client.send(1, methods.BasicQosOk())
    assert close.method == methods.ConnectionClose(
        503, "COMMAND_INVALID - unimplemented method", 60, 11
    )


def test_immediate_publish_is_540(client: Client) -> None:
    [close] = client.send(1, methods.BasicPublish("", "q", immediate=True))
    assert _connection_close(close).reply_code == 540


# ---------------------------------------------------------------------------------------------
# Knobs
# ---------------------------------------------------------------------------------------------


def test_close_connection_knob() -> None:
    c = Client()
    c.handshake()
    c.open_channel()
    c.broker.close_connection()
    [close] = c.replies()
    assert close.method == methods.ConnectionClose(
        320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'", 0, 0
    )
    assert c.send(1, methods.QueueDeclare("q")) == []
    # A crossing client close is answered, and ends it too.
    assert c.send(0, methods.ConnectionClose(200, "", 0, 0)) == [
        Reply(0, methods.ConnectionCloseOk())
    ]
    assert c.broker.state == "closed"


def test_server_cancel_only_if_advertised() -> None:
    cases: list[tuple[FieldTable, bool]] = [(ALL_CAPS, True), ({}, False)]
    for caps, told in cases:
        c = Client()
        c.handshake(capabilities=caps)
        c.open_channel()
        c.declare("q")
        c.send(1, methods.BasicConsume("q", "c"))
        assert c.broker.cancel_consumer("c") is told
        expected = [Reply(1, methods.BasicCancel("c", no_wait=True))] if told else []
        assert c.replies() == expected
        assert c.broker.consumers == {}
        assert c.broker.queues["q"].consumers == []


def test_delete_queue_knob_cancels_consumers(client: Client) -> None:
    client.declare("q")
    client.bind("q", "amq.direct", "k")
    client.send(1, methods.BasicConsume("q", "c"))
    client.publish(1, "", "q")
    assert client.broker.delete_queue("q") == 0
    assert client.replies() == [Reply(1, methods.BasicCancel("c", no_wait=True))]
    assert all(not e.bindings for e in client.broker.exchanges.values())


def test_block_and_unblock_only_if_advertised() -> None:
    cases: list[tuple[FieldTable, bool]] = [
        (ALL_CAPS, True),
        ({"connection.blocked": False}, False),
    ]
    for caps, told in cases:
        c = Client()
        c.handshake(capabilities=caps)
        assert c.broker.block() is told
        assert c.broker.unblock() is told
        expected = (
            [
                Reply(0, methods.ConnectionBlocked("low on memory")),
                Reply(0, methods.ConnectionUnblocked()),
            ]
            if told
            else []
        )
        assert c.replies() == expected


def test_inject_and_server_side_publish(client: Client) -> None:
    client.declare("q")
    client.send(1, methods.BasicConsume("q", "c", no_ack=True))
    assert client.broker.publish("", "q", b"from elsewhere") == ["q"]
    [d] = client.replies()
    assert d.body == b"from elsewhere"
    client.broker.inject(b"\x08\x00\x00\x00\x00\x00\x00\xce")
    assert client.replies() == []
    assert client.heartbeats == 1


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_any_split_of_the_client_stream_gives_the_same_replies(sizes: list[int]) -> None:
    stream = HEADER + b"".join(
        [
            encode_method_frame(0, methods.ConnectionStartOk({}, "PLAIN", b"\0guest\0guest", "")),
            encode_method_frame(0, methods.ConnectionTuneOk(2047, 4096, 0)),
            encode_method_frame(0, methods.ConnectionOpen("/")),
            encode_method_frame(1, methods.ChannelOpen()),
            encode_method_frame(1, methods.QueueDeclare("q")),
            encode_method_frame(1, methods.BasicConsume("q", "c", no_ack=True)),
            encode_content(1, methods.BasicPublish("", "q"), BasicProperties(), BINARY, 4096),
        ]
    )
    whole = FakeBroker()
    whole.receive_data(stream)
    pieces = FakeBroker()
    pos = 0
    for size in sizes:
        pieces.receive_data(stream[pos : pos + size])
        pos += size
    pieces.receive_data(stream[pos:])
    assert pieces.data_to_send() == whole.data_to_send()
    assert pieces.state == whole.state == "open"
