"""Errors: one exception per reply code, soft errors leave the client usable, hard ones end it."""

from __future__ import annotations

import contextlib
import pickle
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Literal

import puka
import pytest
from puka.tls import connect_error

from tests.broker_node import RabbitmqCtl, UniqueName
from tests.integration.helpers import (
    SOON,
    Resources,
    callback_result,
    close_connection_later,
    drain,
    url_password,
    url_with_password,
    url_with_port,
    url_with_query,
    url_with_vhost,
    wait_ok,
)

ALL_EXCEPTIONS = [
    "PreconditionFailed",
    "NotFound",
    "AccessRefused",
    "ResourceLocked",
    "NoRoute",
    "ConnectionForced",
    "NotAllowed",
    "CommandInvalid",
    "ChannelError",
    "AMQPError",
    "SoftError",
    "HardError",
    "PublishNacked",
    "ConnectionLost",
    "ClientClosed",
    "ConnectFailed",
    "HeartbeatTimeout",
    "PukaError",
]


@pytest.mark.parametrize("name", ALL_EXCEPTIONS)
def test_every_exception_is_importable_from_puka(name: str) -> None:
    exc = getattr(puka, name)
    assert isinstance(exc, type)
    assert issubclass(exc, Exception)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("PreconditionFailed", "SoftError"),
        ("NotFound", "SoftError"),
        ("AccessRefused", "SoftError"),
        ("ResourceLocked", "SoftError"),
        ("ConnectionForced", "HardError"),
        ("NotAllowed", "HardError"),
        ("CommandInvalid", "HardError"),
        ("ChannelError", "HardError"),
        ("NoRoute", "AMQPError"),
        ("SoftError", "AMQPError"),
        ("HardError", "AMQPError"),
        ("PublishNacked", "PukaError"),
        ("ConnectionLost", "PukaError"),
        ("ClientClosed", "PukaError"),
        ("ConnectFailed", "PukaError"),
        ("HeartbeatTimeout", "PukaError"),
    ],
)
def test_exception_hierarchy(name: str, base: str) -> None:
    assert issubclass(getattr(puka, name), getattr(puka, base))


def test_one_root_for_every_exception() -> None:
    """`PukaError` is the root of all (issue 19: it was the client errors' base only)."""
    assert not issubclass(puka.PukaError, puka.AMQPError)
    for name in [*ALL_EXCEPTIONS, "InvalidURL", "EncodingError", "TLSCertificateError"]:
        assert issubclass(getattr(puka, name), puka.PukaError), name
    for name in puka.__all__:
        obj = getattr(puka, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, puka.PukaError), name


@pytest.mark.parametrize(
    ("name", "builtin"),
    [
        ("ConnectFailed", ConnectionError),
        ("ConnectTimeout", ConnectionError),
        ("TLSCertificateError", ConnectionError),
        ("ConnectionLost", ConnectionError),
        ("HeartbeatTimeout", ConnectionError),
        ("BlockedTimeout", ConnectionError),
        ("InvalidURL", ValueError),
        ("EncodingError", ValueError),
    ],
)
def test_errors_keep_their_builtin_bases(name: str, builtin: type[Exception]) -> None:
    """What `except socket.error` (OSError) or `except ValueError` caught still catches them."""
    assert issubclass(getattr(puka, name), builtin)


@pytest.mark.parametrize("name", ["ConnectTimeout", "HeartbeatTimeout", "BlockedTimeout"])
def test_puka_timeouts_are_not_timeout_errors(name: str) -> None:
    """An `except TimeoutError` around `asyncio.wait_for` must not take them for its own."""
    assert not issubclass(getattr(puka, name), TimeoutError)


@pytest.mark.parametrize(
    "error",
    [
        puka.ConnectFailed("cannot connect to 127.0.0.1:1: Connection refused"),
        puka.ConnectTimeout("TCP connection to 10.0.0.1:5672 took over 1 s"),
        puka.ConnectionLost("connection to 127.0.0.1:5672 lost"),
        puka.HeartbeatTimeout("127.0.0.1:5672 took nothing we sent for 2 s"),
        puka.TLSCertificateError(1, "TLS certificate of x:5671 did not verify"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_connection_errors_print_and_pickle_as_before(error: OSError) -> None:
    """OSError's constructor quirks stay away: the message prints alone and survives pickle."""
    text = str(error)
    assert not text.startswith("[Errno")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == text
    assert again.args == error.args


def test_amqp_soft_and_hard_error_are_puka_008_aliases() -> None:
    assert puka.AMQPSoftError is puka.SoftError
    assert puka.AMQPHardError is puka.HardError


# --- soft errors: the operation fails, the client carries on --------------------------------


def test_passive_declare_of_missing_queue_is_not_found(client: Any, resources: Resources) -> None:
    missing = resources.queue("missing")
    with pytest.raises(puka.NotFound) as caught:
        client.wait(client.queue_declare(queue=missing, passive=True))
    assert isinstance(caught.value, puka.SoftError)
    assert "NOT_FOUND" in str(caught.value)
    # the SAME client still works
    queue = resources.queue()
    assert wait_ok(client, client.queue_declare(queue=queue))["queue"] == queue
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"still here"))
    message = wait_ok(client, client.basic_get(queue=queue, no_ack=True))
    assert message["body"] == b"still here"


def test_error_delivered_to_callback_as_error_result(client: Any, resources: Resources) -> None:
    seen: list[tuple[int, Any]] = []
    missing = resources.queue("missing")
    promise = client.queue_declare(
        queue=missing, passive=True, callback=lambda p, r: seen.append((p, r))
    )
    # an unrelated wait drives the callback
    other = resources.queue()
    wait_ok(client, client.queue_declare(queue=other))
    deadline = time.monotonic() + SOON
    while not seen and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    assert len(seen) == 1
    number, result = seen[0]
    assert number == promise
    assert result.is_error is True
    assert isinstance(result.exception, puka.NotFound)
    assert result["reply_code"] == 404


def test_announcement_redeclare_durable_queue(client: Any, resources: Resources) -> None:
    queue = resources.queue("test")
    wait_ok(client, client.queue_declare(queue=queue, durable=True))
    promise = client.queue_declare(queue=queue)
    with pytest.raises(puka.PreconditionFailed) as caught:
        client.wait(promise)
    text = str(caught.value)
    assert "PRECONDITION_FAILED" in text
    assert "406" in text
    # the announcement's recovery: catch it and carry on with the same client
    try:
        promise = client.queue_declare(queue=queue)
        client.wait(promise)
    except puka.PreconditionFailed:
        promise = client.queue_declare(queue=queue, durable=True)
        result = client.wait(promise)
    else:
        pytest.fail("the non-durable redeclare of a durable queue succeeded")
    assert result["queue"] == queue


def test_exchange_declare_amq_prefix_is_access_refused(
    client: Any, unique_name: UniqueName, resources: Resources
) -> None:
    with pytest.raises(puka.AccessRefused) as caught:
        client.wait(client.exchange_declare(exchange="amq." + unique_name("reserved")))
    assert isinstance(caught.value, puka.SoftError)
    assert "ACCESS_REFUSED" in str(caught.value)
    wait_ok(client, client.exchange_declare(exchange=resources.exchange()))


def test_exclusive_queue_of_another_connection_is_resource_locked(
    client: Any, make_client: Callable[..., Any], resources: Resources
) -> None:
    queue = resources.queue()
    owner = make_client()
    wait_ok(owner, owner.queue_declare(queue=queue, exclusive=True))
    with pytest.raises(puka.ResourceLocked) as caught:
        client.wait(client.queue_declare(queue=queue, exclusive=True))
    assert isinstance(caught.value, puka.SoftError)
    with pytest.raises(puka.ResourceLocked):
        client.wait(client.basic_consume(queue=queue), timeout=SOON)
    # both clients still work
    assert wait_ok(owner, owner.queue_declare(queue=queue, exclusive=True))["queue"] == queue
    wait_ok(client, client.queue_declare(queue=resources.queue()))


def test_mandatory_publish_unroutable_is_no_route(client: Any, resources: Resources) -> None:
    exchange = resources.exchange()
    wait_ok(client, client.exchange_declare(exchange=exchange))
    headers = {"content_type": "text/plain", "x-custom": "value"}
    with pytest.raises(puka.NoRoute):
        client.wait(
            client.basic_publish(
                exchange=exchange,
                routing_key="nobody-home",
                mandatory=True,
                headers=headers,
                body=b"returned",
            )
        )
    # the error result (given to a callback) carries the returned message
    result = callback_result(
        client,
        lambda callback: client.basic_publish(
            exchange=exchange,
            routing_key="nobody-home",
            mandatory=True,
            headers=headers,
            body=b"returned",
            callback=callback,
        ),
    )
    assert result.is_error is True
    assert isinstance(result.exception, puka.NoRoute)
    assert result["reply_code"] == 312
    assert result["body"] == b"returned"
    assert result["exchange"] == exchange
    assert result["routing_key"] == "nobody-home"
    assert result["headers"]["content_type"] == "text/plain"
    assert result["headers"]["x-custom"] == "value"
    # without mandatory the same publish is simply dropped, and confirmed
    assert wait_ok(client, client.basic_publish(exchange=exchange, routing_key="nobody")) == {}


def test_mandatory_publish_to_default_exchange_missing_queue(
    client: Any, resources: Resources
) -> None:
    with pytest.raises(puka.NoRoute):
        client.wait(
            client.basic_publish(
                exchange="", routing_key=resources.queue("missing"), mandatory=True, body=b"x"
            )
        )
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    assert (
        wait_ok(
            client, client.basic_publish(exchange="", routing_key=queue, mandatory=True, body=b"x")
        )
        == {}
    )


def test_publish_to_missing_exchange_fails_only_that_publish(
    client: Any, resources: Resources
) -> None:
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"before"))
    bad = client.basic_publish(exchange=resources.exchange("missing"), body=b"lost")
    good_after = client.basic_publish(exchange="", routing_key=queue, body=b"after")
    with pytest.raises(puka.NotFound):
        client.wait(bad)
    # the publish issued after the bad one is not failed with the bad one's error
    assert wait_ok(client, good_after) == {}
    assert (
        wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"later")) == {}
    )
    assert [m["body"] for m in drain(client, queue)] == [b"before", b"after", b"later"]


def test_publish_error_does_not_fail_publishes_in_flight_before_it(
    client: Any, resources: Resources
) -> None:
    """Unconfirmed publishes sent BEFORE the bad one are not failed with its error.

    They were routed by the broker before it reached the bad publish; the contract says a
    channel error fails only the operation that caused it. (A client may republish them, so
    duplicates are tolerated here; losing or failing them is not.)
    """
    queue = resources.queue()
    wait_ok(client, client.queue_declare(queue=queue))
    before = [
        client.basic_publish(exchange="", routing_key=queue, body=b"before-%d" % i)
        for i in range(5)
    ]
    bad = client.basic_publish(exchange=resources.exchange("missing"), body=b"lost")
    with pytest.raises(puka.NotFound):
        client.wait(bad)
    for promise in before:
        assert wait_ok(client, promise) == {}
    bodies = [m["body"] for m in drain(client, queue)]
    assert list(dict.fromkeys(bodies)) == [b"before-%d" % i for i in range(5)]


def test_soft_errors_in_parallel_do_not_disturb_other_operations(
    client: Any, resources: Resources
) -> None:
    good = [resources.queue() for _ in range(10)]
    bad = [resources.queue("missing") for _ in range(10)]
    promises = []
    for g, b in zip(good, bad, strict=True):
        promises.append((client.queue_declare(queue=g), g))
        promises.append((client.queue_declare(queue=b, passive=True), None))
    for promise, name in promises:
        if name is None:
            with pytest.raises(puka.NotFound):
                client.wait(promise)
        else:
            assert wait_ok(client, promise)["queue"] == name


def test_wait_for_all_raises_the_first_error(client: Any, resources: Resources) -> None:
    ok = client.queue_declare(queue=resources.queue())
    bad = client.queue_declare(queue=resources.queue("missing"), passive=True)
    with pytest.raises(puka.NotFound):
        client.wait_for_all([ok, bad])
    wait_ok(client, client.queue_declare(queue=resources.queue()))


# --- connection errors ------------------------------------------------------------------


def test_missing_vhost_is_not_allowed(amqp_url: str, unique_name: UniqueName) -> None:
    client = puka.Client(url_with_vhost(amqp_url, "/nope-" + unique_name("vhost")))
    with pytest.raises(puka.NotAllowed) as caught:
        client.wait(client.connect(), timeout=SOON)
    assert isinstance(caught.value, puka.HardError)
    # a hard error ends the client
    with pytest.raises(puka.ClientClosed):
        client.wait(client.queue_declare(exclusive=True), timeout=SOON)


def test_wrong_password_is_access_refused(amqp_url: str) -> None:
    password = "wrong-" + "7f3a9c1e5b" + url_password(amqp_url)
    client = puka.Client(url_with_password(amqp_url, password))
    with pytest.raises(puka.AccessRefused) as caught:
        client.wait(client.connect(), timeout=SOON)
    assert password not in str(caught.value)
    assert password not in repr(caught.value)
    assert "7f3a9c1e5b" not in str(caught.value)
    assert "7f3a9c1e5b" not in repr(client)
    with pytest.raises(puka.ClientClosed):
        client.wait(client.queue_declare(exclusive=True), timeout=SOON)


def _refused_port() -> int:
    """A port of 127.0.0.1 where nothing listens (just released by us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_refused_port_is_connect_failed_quickly() -> None:
    client = puka.Client(f"amqp://guest:guest@127.0.0.1:{_refused_port()}/")
    started = time.monotonic()
    with pytest.raises(puka.ConnectFailed) as caught:
        client.wait(client.connect(), timeout=SOON)
    assert time.monotonic() - started < 3.0
    assert isinstance(caught.value, puka.PukaError)


def test_refused_port_via_url_helper(amqp_url: str) -> None:
    client = puka.Client(url_with_port(amqp_url, _refused_port()))
    with pytest.raises(puka.ConnectFailed):
        client.wait(client.connect(), timeout=SOON)


def test_unknown_host_is_connect_failed() -> None:
    client = puka.Client("amqp://guest:guest@no-such-host.invalid:5672/")
    with pytest.raises(puka.ConnectFailed):
        client.wait(client.connect(), timeout=SOON * 2)


_NODE = puka.parse_url("amqp://h:5600/?connection_timeout=2500")
_CERT = ssl.SSLCertVerificationError(1, "certificate verify failed")
_CERT.verify_message = "self-signed certificate"
_SSL = ssl.SSLError(1, "wrong version number")


@pytest.mark.parametrize(
    ("exc", "stage", "kind", "message"),
    [
        (socket.gaierror(-2, "Name or service not known"), "tcp", puka.ConnectFailed,
         "cannot resolve 'h': Name or service not known"),
        (ConnectionRefusedError(111, "Connection refused"), "tcp", puka.ConnectFailed,
         "cannot connect to h:5600: Connection refused"),
        (TimeoutError(), "tcp", puka.ConnectTimeout, "TCP connection to h:5600 took over 2.5 s"),
        (TimeoutError(), "tls", puka.ConnectTimeout, "TLS handshake with h:5600 timed out"),
        (_CERT, "tcp", puka.TLSCertificateError,
         "TLS certificate of h:5600 did not verify: self-signed certificate"),
        (_CERT, "tls", puka.TLSCertificateError,
         "TLS certificate of h:5600 did not verify: self-signed certificate"),
        (_SSL, "tcp", puka.ConnectFailed, f"TLS handshake with h:5600 failed: {_SSL}"),
        (ConnectionResetError(104, "reset"), "tls", puka.ConnectFailed,
         "TLS handshake with h:5600 failed: [Errno 104] reset"),
    ],
)  # fmt: skip
def test_one_mapping_of_a_transport_that_could_not_be_opened(
    exc: BaseException, stage: Literal["tcp", "tls"], kind: type[Exception], message: str
) -> None:
    """Both drivers map what opening a transport raised with `puka.tls.connect_error`."""
    error = connect_error(exc, _NODE, stage)
    assert type(error) is kind and str(error) == message


@pytest.mark.parametrize("naming", ["client_properties", "url_query"])
def test_connection_forced_by_rabbitmqctl(
    amqp_url: str,
    rabbitmqctl: RabbitmqCtl,
    unique_name: UniqueName,
    resources: Resources,
    naming: str,
) -> None:
    marker = unique_name("conn")
    if naming == "client_properties":
        client = puka.Client(amqp_url, client_properties={"connection_name": marker})
    else:
        client = puka.Client(url_with_query(amqp_url, f"connection_name={marker}"))
    try:
        wait_ok(client, client.connect())
        queue = resources.queue()
        wait_ok(client, client.queue_declare(queue=queue))
        consume = client.basic_consume(queue=queue)
        thread, errors = close_connection_later(rabbitmqctl, marker, delay=0.5)
        started = time.monotonic()
        with pytest.raises((puka.ConnectionForced, puka.ConnectionLost)) as caught:
            client.wait(consume, timeout=30)
        thread.join(SOON)
        assert not errors, errors
        assert time.monotonic() - started < 20
        if isinstance(caught.value, puka.ConnectionForced):
            assert isinstance(caught.value, puka.HardError)
            assert "CONNECTION_FORCED" in str(caught.value)
        # later calls raise ClientClosed (at the call or at the wait)
        with pytest.raises(puka.ClientClosed):
            client.wait(client.queue_declare(queue=queue, passive=True), timeout=SOON)
        with pytest.raises(puka.ClientClosed):
            client.wait(client.basic_publish(exchange="", routing_key=queue), timeout=SOON)
    finally:
        with contextlib.suppress(puka.PukaError, puka.AMQPError):
            client.wait(client.close(), timeout=SOON)


def test_calls_on_a_closed_client_raise_client_closed(make_client: Callable[..., Any]) -> None:
    client = make_client()
    result = wait_ok(client, client.close())
    assert result.is_error is False
    with pytest.raises(puka.ClientClosed):
        client.wait(client.queue_declare(exclusive=True), timeout=SOON)


def test_unknown_exchange_type_is_command_invalid(
    make_client: Callable[..., Any], resources: Resources
) -> None:
    """503 from a correct client: RabbitMQ answers an unknown exchange type with a hard error."""
    client = make_client()
    with pytest.raises(puka.CommandInvalid) as caught:
        client.wait(
            client.exchange_declare(exchange=resources.exchange(), type="x-puka-no-such-type"),
            timeout=SOON,
        )
    assert isinstance(caught.value, puka.HardError)
    assert "COMMAND_INVALID" in str(caught.value)
    # a hard error ends the connection
    with pytest.raises(puka.ClientClosed):
        client.wait(client.queue_declare(exclusive=True), timeout=SOON)


def test_broker_nack_is_publish_nacked(client: Any, resources: Resources) -> None:
    """A full queue with x-overflow=reject-publish makes the broker nack the publish."""
    queue = resources.queue()
    wait_ok(
        client,
        client.queue_declare(
            queue=queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        ),
    )
    assert wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"1")) == {}
    with pytest.raises(puka.PublishNacked) as caught:
        client.wait(client.basic_publish(exchange="", routing_key=queue, body=b"2"))
    assert isinstance(caught.value, puka.PukaError)
    # through a callback: an error result
    seen: list[Any] = []
    client.basic_publish(
        exchange="", routing_key=queue, body=b"3", callback=lambda _p, r: seen.append(r)
    )
    deadline = time.monotonic() + SOON
    while not seen and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    assert len(seen) == 1
    assert seen[0].is_error is True
    assert isinstance(seen[0].exception, puka.PublishNacked)
    # a nack is no channel error: the client publishes on
    wait_ok(client, client.queue_purge(queue=queue))
    assert wait_ok(client, client.basic_publish(exchange="", routing_key=queue, body=b"4")) == {}
    assert [m["body"] for m in drain(client, queue)] == [b"4"]
