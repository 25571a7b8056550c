"""Tests for puka.urls: parsing amqp:// and amqps:// connection URLs."""

from __future__ import annotations

import dataclasses
import doctest
import pickle
import traceback
from typing import Any
from urllib.parse import quote

import puka.connection_parameters
import puka.urls
import pytest
from hypothesis import given
from hypothesis import strategies as st
from puka.urls import (
    DEFAULT_URL,
    ConnectionParameters,
    InvalidURL,
    parse_url,
    parse_urls,
)

SECRET = "s3cret"


def assert_no_secret(exc: BaseException, secret: str = SECRET) -> None:
    """The secret is nowhere in the exception: message, repr, attributes, traceback."""
    assert secret not in str(exc)
    assert secret not in repr(exc)
    for value in vars(exc).values():
        assert secret not in repr(value)
    # "from None" everywhere: no chained exception may carry the secret either.
    assert exc.__cause__ is None
    assert exc.__suppress_context__ or exc.__context__ is None
    formatted = "".join(traceback.format_exception(exc))
    assert secret not in formatted


def invalid(url: str, **overrides: Any) -> InvalidURL:
    with pytest.raises(InvalidURL) as info:
        parse_url(url, **overrides)
    return info.value


# ---------------------------------------------------------------------------
# Defaults


@pytest.mark.parametrize("url", ["amqp:///", "amqp://", "amqp:///%2F", "AMQP:///", " amqp:/// \n"])
def test_defaults(url: str) -> None:
    p = parse_url(url)
    assert p.scheme == "amqp"
    assert p.host == "localhost"
    assert p.port == 5672
    assert p.virtual_host == "/"
    assert p.username == "guest"
    assert p.password == "guest"
    assert p.heartbeat is None
    assert p.connection_timeout == 10.0
    assert p.channel_max == 0
    assert p.frame_max == 0
    assert p.auth_mechanism == "PLAIN"
    assert p.cacertfile is None
    assert p.certfile is None
    assert p.keyfile is None
    assert p.verify is True
    assert p.server_name_indication is None
    assert p.connection_name is None
    assert p.tls is False


def test_default_url_constant_and_default_object() -> None:
    assert parse_url(DEFAULT_URL) == ConnectionParameters()


@pytest.mark.parametrize("url", ["amqps://", "amqps:///", "amqps://host", "AmQpS://host/"])
def test_amqps_default_port(url: str) -> None:
    p = parse_url(url)
    assert p.scheme == "amqps"
    assert p.port == 5671
    assert p.tls is True


def test_direct_construction_default_port_follows_scheme() -> None:
    assert ConnectionParameters(scheme="amqps").port == 5671
    assert ConnectionParameters(scheme="amqp").port == 5672
    assert ConnectionParameters(scheme="AMQPS").scheme == "amqps"


# ---------------------------------------------------------------------------
# Authority: host, port, user info


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("amqp://rabbit", "rabbit", 5672),
        ("amqp://rabbit/", "rabbit", 5672),
        ("amqp://rabbit:5673", "rabbit", 5673),
        ("amqp://rabbit:5673/", "rabbit", 5673),
        ("amqps://rabbit:443/", "rabbit", 443),
        ("amqp://rabbit:1", "rabbit", 1),
        ("amqp://rabbit:65535", "rabbit", 65535),
        ("amqp://rabbit:", "rabbit", 5672),  # empty port: the default (RFC 3986)
        ("amqp://:10000", "localhost", 10000),
        ("amqp://10.0.0.1:5672/", "10.0.0.1", 5672),
        ("amqp://ho%61st", "hoast", 5672),
        ("amqp://b%C3%BCcher.example", "bücher.example", 5672),
        ("amqp://bücher.example", "bücher.example", 5672),
    ],
)
def test_host_and_port(url: str, host: str, port: int) -> None:
    p = parse_url(url)
    assert (p.host, p.port) == (host, port)


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("amqp://[::1]", "::1", 5672),
        ("amqp://[::1]/", "::1", 5672),
        ("amqp://[::1]:5673/", "::1", 5673),
        ("amqps://user:pw@[2001:db8::7]:1234/vh", "2001:db8::7", 1234),
        ("amqp://[::ffff:10.0.0.1]", "::ffff:10.0.0.1", 5672),
        ("amqp://[fe80::1%25eth0]:5672", "fe80::1%eth0", 5672),
    ],
)
def test_ipv6(url: str, host: str, port: int) -> None:
    p = parse_url(url)
    assert (p.host, p.port) == (host, port)


def test_ipv6_redacted_url_keeps_brackets() -> None:
    assert parse_url("amqp://[::1]:5673").redacted_url() == "amqp://guest:***@[::1]:5673/%2F"
    p = parse_url("amqp://[fe80::1%25eth0]")
    assert p.redacted_url() == "amqp://guest:***@[fe80::1%25eth0]:5672/%2F"
    assert parse_url(p.redacted_url().replace("***", "guest")) == p


@pytest.mark.parametrize(
    ("url", "username", "password"),
    [
        ("amqp://user:pass@host", "user", "pass"),
        ("amqp://user@host", "user", "guest"),  # spec: missing password -> default
        ("amqp://user:@host", "user", ""),
        ("amqp://:pass@host", "", "pass"),
        ("amqp://:@host", "", ""),
        ("amqp://@host", "", "guest"),
        ("amqp://user%61:%61pass@host", "usera", "apass"),
        ("amqp://us%40er:p%40ss@host", "us@er", "p@ss"),
        ("amqp://us%3Aer:p%3Ass@host", "us:er", "p:ss"),
        ("amqp://user:pa:ss@host", "user", "pa:ss"),  # first ':' splits
        ("amqp://user:p%2Fs%3Fs%23@host", "user", "p/s?s#"),
        ("amqp://user:p%25ss@host", "user", "p%ss"),
        ("amqp://user:p%2Css@host", "user", "p,ss"),
        ("amqp://j%C3%BCrgen:p%C3%A4ss%E2%82%AC@host", "jürgen", "päss€"),
        ("amqp://jürgen:päss@host", "jürgen", "päss"),  # raw non-ASCII is accepted
        ("amqp://user:p+ss@host", "user", "p+ss"),
        ("amqp://u!$&'()*;=:!$&'()*;=@host", "u!$&'()*;=", "!$&'()*;="),
    ],
)
def test_userinfo(url: str, username: str, password: str) -> None:
    p = parse_url(url)
    assert (p.username, p.password) == (username, password)
    assert p.host == "host"


# ---------------------------------------------------------------------------
# Virtual host


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://host", "/"),
        ("amqp://host/", "/"),
        ("amqp://host/%2f", "/"),
        ("amqp://host/%2F", "/"),
        ("amqp://host/foo", "foo"),
        ("amqp://host/foo?heartbeat=1", "foo"),
        ("amqp://host/a%2Fb", "a/b"),
        ("amqp://host/%2Ffoo", "/foo"),
        ("amqp://host/%2F%2F", "//"),
        ("amqp://host/v%2fhost", "v/host"),
        ("amqp://host/caf%C3%A9", "café"),
        ("amqp://host/café", "café"),
        ("amqp://host/%E6%9D%B1%E4%BA%AC", "東京"),
        ("amqp://host/with%20space", "with space"),
        ("amqp://host/a%40b", "a@b"),
        ("amqp://host/a:b", "a:b"),
        ("amqp:///vhost", "vhost"),
        ("amqp://host?heartbeat=1", "/"),
        ("amqp://host/?heartbeat=1", "/"),
    ],
)
def test_virtual_host(url: str, vhost: str) -> None:
    assert parse_url(url).virtual_host == vhost


def test_rabbitmq_spec_examples() -> None:
    """The examples of the RabbitMQ URI spec, with Puka's documented choices."""
    p = parse_url("amqp://user:pass@host:10000/vhost")
    assert (p.username, p.password, p.host, p.port, p.virtual_host) == (
        "user",
        "pass",
        "host",
        10000,
        "vhost",
    )
    p = parse_url("amqp://user%61:%61pass@ho%61st:10000/v%2fhost")
    assert (p.username, p.password, p.host, p.port, p.virtual_host) == (
        "usera",
        "apass",
        "hoast",
        10000,
        "v/host",
    )
    p = parse_url("amqp://:@/")  # empty host means the default host here
    assert (p.username, p.password, p.host, p.virtual_host) == ("", "", "localhost", "/")
    p = parse_url("amqp://user@")
    assert (p.username, p.password, p.host) == ("user", "guest", "localhost")
    p = parse_url("amqp://user:pass@")
    assert (p.username, p.password, p.host) == ("user", "pass", "localhost")
    assert parse_url("amqp://host").host == "host"
    assert parse_url("amqp://:10000").port == 10000
    assert parse_url("amqp:///vhost").virtual_host == "vhost"
    assert parse_url("amqp://host/").virtual_host == "/"  # strict spec: ""
    assert parse_url("amqp://host/%2f").virtual_host == "/"
    assert parse_url("amqp://[::1]").host == "::1"


# ---------------------------------------------------------------------------
# Query parameters


def test_heartbeat() -> None:
    assert parse_url("amqp://h?heartbeat=30").heartbeat == 30
    assert parse_url("amqp://h?heartbeat=0").heartbeat == 0
    assert parse_url("amqp://h?heartbeat=65535").heartbeat == 65535
    assert parse_url("amqp://h?heartbeat=007").heartbeat == 7


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10000", 10.0), ("2500", 2.5), ("1", 0.001), ("1500.5", 1.5005), ("60000", 60.0)],
)
def test_connection_timeout_is_milliseconds(value: str, seconds: float) -> None:
    p = parse_url(f"amqp://h?connection_timeout={value}")
    assert p.connection_timeout == pytest.approx(seconds)
    assert isinstance(p.connection_timeout, float)


def test_channel_max_and_frame_max() -> None:
    p = parse_url("amqp://h?channel_max=2047&frame_max=131072")
    assert (p.channel_max, p.frame_max) == (2047, 131072)
    p = parse_url("amqp://h?channel_max=0&frame_max=0")
    assert (p.channel_max, p.frame_max) == (0, 0)
    p = parse_url("amqp://h?channel_max=65535&frame_max=4096")
    assert (p.channel_max, p.frame_max) == (65535, 4096)
    assert parse_url("amqp://h?frame_max=4294967295").frame_max == 4294967295


@pytest.mark.parametrize(
    ("query", "mechanism"),
    [
        ("auth_mechanism=plain", "PLAIN"),
        ("auth_mechanism=PLAIN", "PLAIN"),
        ("auth_mechanism=external", "EXTERNAL"),
        ("auth_mechanism=EXTERNAL", "EXTERNAL"),
        ("auth_mechanism=amqplain&auth_mechanism=external", "EXTERNAL"),
        ("auth_mechanism=external&auth_mechanism=plain", "EXTERNAL"),
        ("auth_mechanism=plain&auth_mechanism=external", "PLAIN"),
        ("auth_mechanism=cr-demo&auth_mechanism=amqplain&auth_mechanism=plain", "PLAIN"),
    ],
)
def test_auth_mechanism(query: str, mechanism: str) -> None:
    assert parse_url(f"amqps://h?{query}").auth_mechanism == mechanism


def test_tls_parameters() -> None:
    p = parse_url(
        "amqps://myhost?cacertfile=/path/to/ca_certificate.pem"
        "&certfile=/path/to/client_certificate.pem"
        "&keyfile=/path/to/client_key.pem"
        "&verify=verify_peer"
        "&server_name_indication=myhost"
    )
    assert p.cacertfile == "/path/to/ca_certificate.pem"
    assert p.certfile == "/path/to/client_certificate.pem"
    assert p.keyfile == "/path/to/client_key.pem"
    assert p.verify is True
    assert p.server_name_indication == "myhost"
    assert p.tls


def test_tls_parameters_are_percent_decoded() -> None:
    p = parse_url("amqps://h?cacertfile=C%3A%5Ccerts%5Cca%20file%2C1.pem&certfile=/a+b.pem")
    assert p.cacertfile == "C:\\certs\\ca file,1.pem"
    assert p.certfile == "/a+b.pem"  # '+' is not a space


@pytest.mark.parametrize(
    ("value", "verify"),
    [("verify_peer", True), ("verify_none", False), ("VERIFY_NONE", False)],
)
def test_verify(value: str, verify: bool) -> None:
    assert parse_url(f"amqps://h?verify={value}").verify is verify


def test_connection_name() -> None:
    assert parse_url("amqp://h?connection_name=orders%20worker%20%231").connection_name == (
        "orders worker #1"
    )
    assert parse_url("amqp://h?connection_name=me@box").connection_name == "me@box"


def test_query_separators_are_lenient() -> None:
    p = parse_url("amqp://h/?&heartbeat=5&&channel_max=10&")
    assert (p.heartbeat, p.channel_max) == (5, 10)
    assert parse_url("amqp://h?") == parse_url("amqp://h")
    assert parse_url("amqp://h/v?%68eartbeat=5").heartbeat == 5  # names are decoded too


# ---------------------------------------------------------------------------
# Overrides


def test_overrides_beat_the_query() -> None:
    url = "amqps://u:pw@h/v?heartbeat=30&connection_timeout=5000&channel_max=10&verify=verify_none"
    p = parse_url(url, heartbeat=5, connection_timeout=1.5, channel_max=20, verify=True)
    assert p.heartbeat == 5
    assert p.connection_timeout == 1.5  # overrides are in seconds
    assert p.channel_max == 20
    assert p.verify is True


def test_overrides_of_url_parts() -> None:
    p = parse_url("amqp://u:pw@h:1234/v", host="other", port=99, virtual_host="w", password="x")
    assert (p.host, p.port, p.virtual_host, p.username, p.password) == ("other", 99, "w", "u", "x")
    p = parse_url("amqp://h?heartbeat=30", heartbeat=None)
    assert p.heartbeat is None
    p = parse_url("amqp://h", connection_timeout=3)
    assert p.connection_timeout == 3.0
    assert isinstance(p.connection_timeout, float)


def test_override_scheme_changes_the_default_port_only() -> None:
    assert parse_url("amqp://h", scheme="amqps").port == 5671
    assert parse_url("amqp://h:1234", scheme="amqps").port == 1234


def test_overrides_are_checked() -> None:
    exc = invalid(f"amqp://u:{SECRET}@h", heartbeat=-1)
    assert "heartbeat" in str(exc)
    assert_no_secret(exc)
    exc = invalid(f"amqp://u:{SECRET}@h", cacertfile="/ca.pem")
    assert "amqps" in str(exc)
    assert_no_secret(exc)
    with pytest.raises(TypeError, match="unexpected keyword argument 'heartbeats'"):
        parse_url("amqp://h", heartbeats=5)
    with pytest.raises(TypeError, match="tls"):
        parse_url("amqp://h", tls=True)
    with pytest.raises(TypeError, match="heartbeat"):
        parse_url("amqp://h", heartbeat="5")
    with pytest.raises(TypeError, match="port"):
        parse_url("amqp://h", port=True)
    with pytest.raises(TypeError, match="verify"):
        parse_url("amqps://h", verify="verify_none")


# ---------------------------------------------------------------------------
# Errors: every one is an InvalidURL, and none shows the password

ERROR_URLS = [
    # scheme
    (f"http://u:{SECRET}@h/", "scheme"),
    (f"amqpx://u:{SECRET}@h/", "scheme"),
    (f"u:{SECRET}@h", "scheme"),
    (f"//u:{SECRET}@h", "scheme"),
    (f"amqp:u:{SECRET}@h", "//"),
    (f"amqp:/u:{SECRET}@h", "//"),
    ("", "empty"),
    # characters that must be encoded
    (f"amqp://u:{SECRET}@h/v,w", "%2C"),
    (f"amqp://u:{SECRET},x@h/", "%2C"),
    (f"amqp://u:{SECRET}#x@h/", "%23"),
    (f"amqp://u:{SECRET}@h/v#frag", "%23"),
    (f"amqp://u:{SECRET} x@h/", "percent-encoded"),
    (f"amqp://u:{SECRET}@h/v\x00", "percent-encoded"),
    (f"amqp://u:{SECRET}@h/v w", "percent-encoded"),
    (f"amqp://u:{SECRET}@x@h/", "%40"),
    (f"amqp://u:{SECRET}/x@h/", "%2F"),  # password with an unencoded '/'
    (f"amqp://u:12/{SECRET}@h/", "%2F"),
    (f"amqp://u:{SECRET}?x@h/", "port"),  # password with an unencoded '?'
    (f"amqp://u:12?{SECRET}@h/", "%3F"),
    (f"amqp://u:12?{SECRET}@h=1", "%3F"),
    # percent-encoding
    (f"amqp://u:{SECRET}%zz@h/", "percent-encoding"),
    (f"amqp://u:{SECRET}%4@h/", "percent-encoding"),
    (f"amqp://u:{SECRET}%@h/", "percent-encoding"),
    (f"amqp://u:{SECRET}%ff@h/", "UTF-8"),
    (f"amqp://u%C3:{SECRET}@h/", "UTF-8"),
    (f"amqp://u%g1:{SECRET}@h/", "percent-encoding"),
    (f"amqp://u:{SECRET}@h%zz/", "percent-encoding"),
    (f"amqp://u:{SECRET}@h%ff/", "UTF-8"),
    (f"amqp://u:{SECRET}@h/v%zz", "percent-encoding"),
    (f"amqp://u:{SECRET}@h/v%C3%28", "UTF-8"),
    (f"amqp://u:{SECRET}@h/?connection_name=%zz", "percent-encoding"),
    (f"amqp://u:{SECRET}@h/?connection_name=%ff", "UTF-8"),
    (f"amqp://u:{SECRET}@h/?%zz=1", "percent-encoding"),
    # host
    (f"amqp://u:{SECRET}@h%2Fx/", "host"),
    (f"amqp://u:{SECRET}@h%40x/", "host"),
    (f"amqp://u:{SECRET}@h%3Ax/", "host"),
    (f"amqp://u:{SECRET}@h%20x/", "host"),
    (f"amqp://u:{SECRET}@h%0Ax/", "host"),
    (f"amqp://u:{SECRET}@h]/", "host"),
    (f"amqp://u:{SECRET}@::1/", "brackets"),
    (f"amqp://u:{SECRET}@[::1/", "]"),
    (f"amqp://u:{SECRET}@[::1]x/", "IPv6"),
    (f"amqp://u:{SECRET}@[nonsense]/", "IPv6"),
    (f"amqp://u:{SECRET}@[10.0.0.1]/", "IPv6"),
    (f"amqp://u:{SECRET}@[]/", "IPv6"),
    (f"amqp://u:{SECRET}@[fe80::1%25]/", "zone"),
    (f"amqp://u:{SECRET}@[fe80::1%eth0]/", "IPv6"),
    # port
    (f"amqp://u:{SECRET}@h:0/", "port"),
    (f"amqp://u:{SECRET}@h:65536/", "port"),
    (f"amqp://u:{SECRET}@h:99999999999999999999/", "port"),
    (f"amqp://u:{SECRET}@h:-1/", "port"),
    (f"amqp://u:{SECRET}@h:+1/", "port"),
    (f"amqp://u:{SECRET}@h:abc/", "port"),
    (f"amqp://u:{SECRET}@h:5672:1/", "brackets"),
    (f"amqp://u:{SECRET}@h:٥٦٧٢/", "port"),  # non-ASCII digits
    (f"amqp://u:{SECRET}@[::1]:x/", "port"),
    (f"amqp://u:{SECRET}/x", "port"),  # password with '/' and no '@'
    # vhost
    (f"amqp://u:{SECRET}@h/a/b", "%2F"),
    (f"amqp://u:{SECRET}@h//", "%2F"),
    (f"amqp://u:{SECRET}@h/a/", "%2F"),
    # query
    (f"amqp://u:{SECRET}@h/?bogus=1", "unknown query parameter 'bogus'"),
    (f"amqp://u:{SECRET}@h/?password=hunter2", "unknown query parameter 'password'"),
    (f"amqp://u:{SECRET}@h/?fail_if_no_peer_cert=true", "unknown"),
    (f"amqp://u:{SECRET}@h/?Heartbeat=1", "unknown"),
    (f"amqp://u:{SECRET}@h/?heartbeat", "no value"),
    (f"amqp://u:{SECRET}@h/?heartbeat=1&heartbeat=2", "more than once"),
    (f"amqp://u:{SECRET}@h/?heartbeat=", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?heartbeat=abc", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?heartbeat=-1", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?heartbeat=1.5", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?heartbeat=1_0", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?heartbeat=%201", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?heartbeat=65536", "heartbeat"),
    (f"amqp://u:{SECRET}@h/?connection_timeout=abc", "connection_timeout"),
    (f"amqp://u:{SECRET}@h/?connection_timeout=-5", "connection_timeout"),
    (f"amqp://u:{SECRET}@h/?connection_timeout=0", "connection_timeout"),
    (f"amqp://u:{SECRET}@h/?connection_timeout=1e3", "connection_timeout"),
    (f"amqp://u:{SECRET}@h/?connection_timeout=inf", "connection_timeout"),
    (f"amqp://u:{SECRET}@h/?connection_timeout=" + "9" * 400, "connection_timeout"),
    (f"amqp://u:{SECRET}@h/?channel_max=-1", "channel_max"),
    (f"amqp://u:{SECRET}@h/?channel_max=65536", "channel_max"),
    (f"amqp://u:{SECRET}@h/?channel_max=x", "channel_max"),
    (f"amqp://u:{SECRET}@h/?frame_max=-1", "frame_max"),
    (f"amqp://u:{SECRET}@h/?frame_max=4095", "frame_max"),
    (f"amqp://u:{SECRET}@h/?frame_max=4294967296", "frame_max"),
    (f"amqp://u:{SECRET}@h/?auth_mechanism=amqplain", "auth_mechanism"),
    (f"amqp://u:{SECRET}@h/?auth_mechanism=", "auth_mechanism"),
    (f"amqp://u:{SECRET}@h/?auth_mechanism=x&auth_mechanism=y", "auth_mechanism"),
    (f"amqps://u:{SECRET}@h/?verify=true", "verify"),
    (f"amqps://u:{SECRET}@h/?verify=", "verify"),
    (f"amqps://u:{SECRET}@h/?cacertfile=", "cacertfile"),
    (f"amqps://u:{SECRET}@h/?keyfile=/k.pem", "keyfile"),
    (f"amqp://u:{SECRET}@h/?connection_name=", "connection_name"),
    # TLS options without TLS
    (f"amqp://u:{SECRET}@h/?cacertfile=/ca.pem", "amqps"),
    (f"amqp://u:{SECRET}@h/?certfile=/c.pem", "amqps"),
    (f"amqp://u:{SECRET}@h/?verify=verify_none", "amqps"),
    (f"amqp://u:{SECRET}@h/?server_name_indication=h", "amqps"),
    # NUL characters cannot be sent with PLAIN
    (f"amqp://u%00:{SECRET}@h/", "NUL"),
    (f"amqp://u:{SECRET}%00@h/", "NUL"),
]


@pytest.mark.parametrize(("url", "fragment"), ERROR_URLS)
def test_errors(url: str, fragment: str) -> None:
    exc = invalid(url)
    assert isinstance(exc, ValueError)
    assert fragment in str(exc)
    assert_no_secret(exc)
    assert exc.reason in str(exc)
    if url:
        assert exc.url is not None
        assert repr(exc.url) in str(exc)


def test_error_hides_password_like_query_values() -> None:
    exc = invalid("amqp://h/?password=hunter2")
    assert_no_secret(exc, "hunter2")
    assert exc.url == "amqp://h/?password=***"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (f"amqp://u:{SECRET}@h/?bogus=1", "amqp://u:***@h/?bogus=1"),
        ("amqp://u@h/?bogus=1", "amqp://u@h/?bogus=1"),
        (f"amqp://u:{SECRET}@x@h/", "amqp://u:***@h/"),
        (f"amqp://u:{SECRET}/x@h/", "amqp://u:***@h/"),
        (f"u:{SECRET}@h", "***@h"),
        (f"amqp://u:{SECRET}/x", "amqp://u:***/x"),
        (f"amqp://u:a@b/{SECRET}@h/v?x=1", "amqp://u:***@h/v?x=1"),
        (f"amqp://u:a/b?{SECRET}@h/v", "amqp://u:***@h/v"),
        ("amqp://h:1/v@w?bogus", "amqp://h:***@w?bogus"),
        ("amqp://h/v@w?bogus", "amqp://h/v@w?bogus"),
        (f"amqp:u:{SECRET}", "amqp:***"),
        ("amqp://h:abc/", "amqp://h:***/"),
        ("amqp://[::1]:abc/", "amqp://[::1]:***/"),
        ("amqp://h:5672:1/", "amqp://h:***/"),
        ("amqp://[::1]x/", "amqp://[::1]x/"),
        ("amqp://[::1]:0/", "amqp://[::1]:0/"),
        (f"amqp://h:1/?x=1&client_secret={SECRET}", "amqp://h:1/?x=1&client_secret=***"),
    ],
)
def test_error_url_is_redacted(url: str, redacted: str) -> None:
    assert invalid(url).url == redacted


def test_invalid_url_pickles() -> None:
    exc = invalid(f"amqp://u:{SECRET}@h:0/")
    copy = pickle.loads(pickle.dumps(exc))
    assert isinstance(copy, InvalidURL)
    assert (copy.reason, copy.url, str(copy)) == (exc.reason, exc.url, str(exc))


def test_non_string_url() -> None:
    with pytest.raises(TypeError):
        parse_url(b"amqp:///")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The password never shows


@pytest.mark.parametrize(
    "url",
    [
        f"amqp://u:{SECRET}@h/",
        f"amqps://u:{SECRET}@[::1]:5671/v?heartbeat=5&verify=verify_none",
        f"amqp://{SECRET}:{SECRET}@h/",  # even when the user name is the same
        f"amqp://u:{quote(SECRET + '/@:%', safe='')}@h/",
    ],
)
def test_password_not_in_repr_or_str(url: str) -> None:
    p = parse_url(url)
    assert SECRET in p.password
    assert SECRET not in repr(p).replace(f"username='{SECRET}'", "")
    assert "password" not in repr(p)
    for text in (str(p), p.redacted_url(), f"{p}", f"{p!s}"):
        assert ":***@" in text
        assert SECRET not in text.replace(f"//{SECRET}:", "//")


def test_repr_shows_the_rest() -> None:
    text = repr(parse_url(f"amqp://bob:{SECRET}@rabbit/v?heartbeat=7"))
    assert text.startswith("ConnectionParameters(")
    for part in ("host='rabbit'", "port=5672", "virtual_host='v'", "username='bob'", "heartbeat=7"):
        assert part in text


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("amqp:///", "amqp://guest:***@localhost:5672/%2F"),
        ("amqps://bob:x@rabbit/orders", "amqps://bob:***@rabbit:5671/orders"),
        ("amqp://bob:@rabbit", "amqp://bob@rabbit:5672/%2F"),  # no password: none shown
        ("amqp://:@rabbit", "amqp://@rabbit:5672/%2F"),
        ("amqp://b%40b:x@h/a%2Fb", "amqp://b%40b:***@h:5672/a%2Fb"),
        (
            "amqp://h?connection_timeout=2500&heartbeat=0&channel_max=7&frame_max=8192",
            "amqp://guest:***@h:5672/%2F?heartbeat=0&connection_timeout=2500"
            "&channel_max=7&frame_max=8192",
        ),
        (
            "amqps://h?auth_mechanism=external&cacertfile=/a%20b/ca.pem&certfile=c&keyfile=k"
            "&verify=verify_none&server_name_indication=sni&connection_name=a%2Cb%26c",
            "amqps://guest:***@h:5671/%2F?auth_mechanism=external&cacertfile=/a%20b/ca.pem"
            "&certfile=c&keyfile=k&verify=verify_none&server_name_indication=sni"
            "&connection_name=a%2Cb%26c",
        ),
        ("amqp://h?connection_timeout=1.5", "amqp://guest:***@h:5672/%2F?connection_timeout=1.5"),
    ],
)
def test_redacted_url(url: str, redacted: str) -> None:
    p = parse_url(url)
    assert p.redacted_url() == redacted
    assert str(p) == redacted
    # The redacted URL parses back to the same parameters, given the password.
    if p.password:
        assert parse_url(redacted.replace("***", quote(p.password, safe=""))) == p
    else:  # no password shown, so it parses with the default one
        assert parse_url(redacted) == p.replace(password="guest")


# ---------------------------------------------------------------------------
# ConnectionParameters itself


def test_replace() -> None:
    p = parse_url("amqp://u:pw@h/v")
    q = p.replace(heartbeat=10, host="other")
    assert (q.heartbeat, q.host, q.password) == (10, "other", "pw")
    assert p.heartbeat is None  # unchanged
    with pytest.raises(ValueError, match="heartbeat"):
        p.replace(heartbeat=70000)
    with pytest.raises(TypeError):
        p.replace(nonsense=1)


def test_frozen_and_hashable() -> None:
    p = parse_url("amqp:///")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.host = "x"  # type: ignore[misc]
    assert hash(p) == hash(parse_url("amqp://localhost:5672/%2F"))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"scheme": "http"}, ValueError),
        ({"host": ""}, ValueError),
        ({"host": "a b"}, ValueError),
        ({"port": -1}, ValueError),
        ({"port": 65536}, ValueError),
        ({"port": "5672"}, TypeError),
        ({"virtual_host": ""}, ValueError),
        ({"username": None}, TypeError),
        ({"password": 1234}, TypeError),
        ({"heartbeat": -1}, ValueError),
        ({"heartbeat": 1.5}, TypeError),
        ({"heartbeat": False}, TypeError),
        ({"connection_timeout": 0}, ValueError),
        ({"connection_timeout": -1.0}, ValueError),
        ({"connection_timeout": float("nan")}, ValueError),
        ({"connection_timeout": float("inf")}, ValueError),
        ({"connection_timeout": "10"}, TypeError),
        ({"channel_max": 65536}, ValueError),
        ({"frame_max": 100}, ValueError),
        ({"auth_mechanism": "AMQPLAIN"}, ValueError),
        ({"verify": 0}, TypeError),
        ({"cacertfile": 1}, TypeError),
        ({"connection_name": ""}, ValueError),
        ({"scheme": "amqp", "port": 5672, "certfile": "/c.pem"}, ValueError),
    ],
)
def test_construction_is_checked(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ConnectionParameters(**{"scheme": "amqps", **changes})


def test_auth_mechanism_is_normalised() -> None:
    assert ConnectionParameters(auth_mechanism="external").auth_mechanism == "EXTERNAL"


# ---------------------------------------------------------------------------
# Several URLs


def test_parse_urls_list() -> None:
    ps = parse_urls(["amqp://u:p@a/v", "amqps://b:1234", "amqp://[::1]"])
    assert [(p.host, p.port, p.tls) for p in ps] == [
        ("a", 5672, False),
        ("b", 1234, True),
        ("::1", 5672, False),
    ]
    assert parse_urls(("amqp:///",)) == [ConnectionParameters()]


@pytest.mark.parametrize(
    "text",
    [
        "amqp://a,amqp://b:5673,amqps://c",
        "amqp://a, amqp://b:5673 ,\namqps://c",
        " amqp://a,amqp://b:5673,amqps://c ",
    ],
)
def test_parse_urls_commas(text: str) -> None:
    ps = parse_urls(text)
    assert [(p.host, p.port) for p in ps] == [("a", 5672), ("b", 5673), ("c", 5671)]


def test_parse_urls_single_string() -> None:
    assert parse_urls("amqp://a") == [parse_url("amqp://a")]


def test_parse_urls_encoded_commas_stay_inside() -> None:
    ps = parse_urls("amqp://u:a%2Cb@h1/v%2Cw,amqp://h2?connection_name=x%2Cy")
    assert (ps[0].password, ps[0].virtual_host) == ("a,b", "v,w")
    assert ps[1].connection_name == "x,y"


def test_parse_urls_overrides_apply_to_all() -> None:
    ps = parse_urls("amqp://a?heartbeat=1,amqp://b", heartbeat=9, password="pw")
    assert [(p.heartbeat, p.password) for p in ps] == [(9, "pw"), (9, "pw")]


@pytest.mark.parametrize(
    ("urls", "fragment"),
    [
        ("", "no URL"),
        ("  ", "no URL"),
        ([], "no URL"),
        (f"amqp://u:{SECRET}@a,", "whole"),
        (f",amqp://u:{SECRET}@a", "whole"),
        (f"amqp://u:{SECRET}@a,,amqp://b", "whole"),
        (f"amqp://u:{SECRET},x@a", "whole"),  # an unencoded comma in a password
        (f"amqp://u:x,{SECRET}@a/,amqp://b", "whole"),
        (f"amqp://a,amqp://u:{SECRET}@b:0", "URL 2 of 2"),
        ([f"amqp://u:{SECRET}@a", f"amqp://u:{SECRET}@b?x=1"], "URL 2 of 2"),
        ([f"amqp://u:{SECRET},x@a"], "%2C"),
    ],
)
def test_parse_urls_errors(urls: str | list[str], fragment: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_urls(urls)
    assert fragment in str(info.value)
    assert_no_secret(info.value)


def test_parse_urls_single_error_is_unchanged() -> None:
    with pytest.raises(InvalidURL) as info:
        parse_urls("amqp://h:0")
    assert "URL 1" not in str(info.value)


def test_parse_urls_types() -> None:
    with pytest.raises(TypeError):
        parse_urls([b"amqp://a"])  # type: ignore[list-item]


# ---------------------------------------------------------------------------
# Properties

# Printable text of any kind, weighted towards the characters that matter in URLs.
_special = st.sampled_from([*"/@:%?#&=,+[] ;!$'()*~", "é", "€", "東", "𝄞", "\u00a0"])
_text = st.text(
    st.one_of(_special, st.characters(exclude_categories=("Cs", "Cc"))),
    max_size=20,
)
_hostish = st.text(
    st.one_of(
        st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"),
        st.characters(categories=("Ll", "Lu", "Lo", "Nd")),
    ),
    min_size=1,
    max_size=20,
)


@given(
    username=_text,
    password=_text,
    host=_hostish,
    vhost=_text.filter(bool),
    port=st.integers(1, 65535),
    scheme=st.sampled_from(["amqp", "amqps"]),
)
def test_round_trip_of_encoded_parts(
    username: str, password: str, host: str, vhost: str, port: int, scheme: str
) -> None:
    url = (
        f"{scheme}://{quote(username, safe='')}:{quote(password, safe='')}"
        f"@{quote(host, safe='')}:{port}/{quote(vhost, safe='')}"
    )
    p = parse_url(url)
    assert (p.scheme, p.username, p.password, p.host, p.port, p.virtual_host) == (
        scheme,
        username,
        password,
        host,
        port,
        vhost,
    )
    # The redacted URL never shows the password but otherwise means the same.
    redacted = p.redacted_url()
    if password:
        assert ":***@" in redacted
        assert parse_url(redacted.replace(":***@", ":" + quote(password, safe="") + "@")) == p
    else:
        assert "***" not in redacted
        assert parse_url(redacted) == p.replace(password="guest")
    assert "password" not in repr(p)


@given(
    suffix=_text,
    connection_name=_text.filter(bool),
    cacertfile=_text.filter(bool),
)
def test_round_trip_of_query_values(suffix: str, connection_name: str, cacertfile: str) -> None:
    url = (
        f"amqps://u:{quote(SECRET + suffix, safe='')}@h/"
        f"?connection_name={quote(connection_name, safe='')}"
        f"&cacertfile={quote(cacertfile, safe='')}"
    )
    p = parse_url(url)
    assert (p.password, p.connection_name, p.cacertfile) == (
        SECRET + suffix,
        connection_name,
        cacertfile,
    )
    assert parse_url(p.redacted_url().replace("***", quote(p.password, safe=""))) == p


_broken_tails = st.sampled_from(
    [
        "@h:0/",
        "@h/a/b",
        "@h/?bogus=1",
        "@h/?heartbeat=x",
        "@h/?verify=bogus",
        "",
        "/x",
        ":1/x",
        "@h%zz/",
        "@[::1/",
        "/x@h/",
        "?x@h",
        "#x@h",
        ",x@h",
        "@x@h",
        "%zz@h",
    ]
)


@given(
    prefix=st.sampled_from(["amqp://u:", "amqps://:", "amqp://u%40x:", "u:", "amqp:/u:"]),
    raw_password=_text,
    tail=_broken_tails,
)
def test_errors_never_show_the_password(prefix: str, raw_password: str, tail: str) -> None:
    """Whatever the password, broken URLs report errors without it."""
    password = SECRET + quote(raw_password, safe="")
    with pytest.raises(InvalidURL) as info:
        parse_url(prefix + password + tail)
    assert_no_secret(info.value)


def test_doctests() -> None:
    failures, tried = doctest.testmod(puka.urls)
    assert tried > 0
    assert failures == 0
    # ConnectionParameters is defined there (documented as puka.urls'): its examples use
    # parse_url, as the reader of puka.urls sees them.
    failures, tried = doctest.testmod(
        puka.connection_parameters, extraglobs={"parse_url": parse_url}
    )
    assert tried > 0
    assert failures == 0


@given(
    text=st.one_of(
        _text,
        st.builds(
            "".join,
            st.lists(
                st.sampled_from(
                    [
                        "amqp://",
                        "amqps:",
                        "//",
                        "u",
                        ":",
                        "@",
                        "[",
                        "]",
                        "::1",
                        "%",
                        "%2F",
                        "%zz",
                        "%ff",
                        "/",
                        "?",
                        "&",
                        "=",
                        "#",
                        ",",
                        "h",
                        "5672",
                        "heartbeat",
                        "verify",
                        "verify_none",
                        "auth_mechanism",
                        "plain",
                        "é",
                        " ",
                    ]
                ),
                max_size=12,
            ),
        ),
    )
)
def test_any_string_parses_or_raises_invalid_url(text: str) -> None:
    try:
        p = parse_url(text)
    except InvalidURL:
        return
    redacted = p.redacted_url()
    if p.password:
        assert parse_url(redacted.replace("***", quote(p.password, safe=""), 1)) == p
    else:
        assert parse_url(redacted) == p.replace(password="guest")


def test_client_addresses_leave_out_overrides_not_given() -> None:
    nodes = puka.urls.client_addresses(
        "amqp://a?heartbeat=5, amqp://b", heartbeat=None, connection_timeout=2.5
    )
    assert [(p.host, p.heartbeat, p.connection_timeout) for p in nodes] == [
        ("a", 5, 2.5),  # the URL's own heartbeat stands: None overrides nothing
        ("b", parse_url("amqp://b").heartbeat, 2.5),
    ]


def test_client_addresses_shuffle_the_nodes_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = "amqp://a, amqp://b, amqp://c"
    monkeypatch.setattr(puka.urls.random, "shuffle", lambda items: items.reverse())
    assert [p.host for p in puka.urls.client_addresses(urls)] == ["a", "b", "c"]
    assert [p.host for p in puka.urls.client_addresses(urls, shuffle=True)] == ["c", "b", "a"]
