"""Connection URLs: turn ``amqp://`` and ``amqps://`` URLs into connection parameters.

Puka describes where and how to connect with a URL that follows the
`RabbitMQ AMQP URI specification <https://www.rabbitmq.com/docs/uri-spec>`_
and the `query parameters <https://www.rabbitmq.com/docs/uri-query-parameters>`_
that RabbitMQ's own clients understand::

    amqp[s]://[username[:password]@]host[:port][/vhost][?key=value&key=value...]

>>> from puka.urls import parse_url
>>> params = parse_url("amqps://app:s3cret@rabbit.example.com/orders?heartbeat=30")
>>> params.host, params.port, params.virtual_host, params.heartbeat
('rabbit.example.com', 5671, 'orders', 30)
>>> print(params)  # the password is never shown
amqps://app:***@rabbit.example.com:5671/orders?heartbeat=30

The parts of the URL
====================

``scheme``
    ``amqp`` (plain TCP) or ``amqps`` (TLS). Case-insensitive.
``username`` and ``password``
    Default to ``guest`` and ``guest``. If a user name is given without a
    password (``amqp://bob@host``), the password is still ``guest``, as the
    specification says. ``amqp://:@host`` gives an empty user name and an empty
    password.
``host``
    Defaults to ``localhost``. An IPv6 address must be written in brackets:
    ``amqp://[::1]/``; a zone is written ``[fe80::1%25eth0]``.
``port``
    Defaults to 5672 for ``amqp`` and to 5671 for ``amqps``; 1 to 65535.
``vhost``
    The virtual host is the single path segment after the host. No path and a
    path of just ``/`` both mean the virtual host ``/`` (the strict
    specification reads ``amqp://host/`` as the empty virtual host, but no
    such virtual host can exist and other RabbitMQ clients agree with Puka
    here). Any other ``/`` in a virtual host name must be written ``%2F``:
    ``amqp://host/%2F`` is ``/``, ``amqp://host/a%2Fb`` is ``a/b`` and
    ``amqp://host/a/b`` is an error.

The user name, password, host, virtual host and every query parameter name
and value are percent-decoded as UTF-8, so any character can be written as
``%XX`` escapes (``urllib.parse.quote(value, safe="")`` does it). These
characters must always be escaped: ``@`` (``%40``), ``/`` (``%2F``), ``?``
(``%3F``), ``#`` (``%23``), ``%`` (``%25``), spaces (``%20``) and commas
(``%2C``). A comma never appears unescaped in a URL that Puka accepts, which is
what lets :func:`parse_urls` take several URLs in one comma-separated string.
A ``+`` in the query string is a plain plus sign, not a space.

Query parameters
================

Every parameter is optional. An unknown parameter is an error (this includes
parameters of other RabbitMQ clients that Puka does not implement, such as
``fail_if_no_peer_cert``, ``depth`` and ``password``), and so is a parameter
given twice (except ``auth_mechanism``).

``heartbeat``
    Heartbeat interval to propose, in **seconds** (0 to 65535); ``0`` turns
    heartbeats off. Default: accept the interval the broker proposes.
``connection_timeout``
    How long to wait for the connection to be established, in
    **milliseconds** (as in RabbitMQ's clients); stored in
    :attr:`ConnectionParameters.connection_timeout` in seconds.
    Default: 10000 (10 seconds).
``channel_max``
    Highest channel number to allow (1 to 65535). Default: 0, meaning
    whatever the broker proposes.
``frame_max``
    Largest frame size to allow, in bytes (4096 to 4294967295). Default: 0,
    meaning whatever the broker proposes.
``max_message_size``
    Largest message body to accept from the broker, in bytes (at least 1).
    A delivery whose content header announces a larger body closes the
    connection with 501 FRAME_ERROR before anything is allocated for it.
    Default: 67108864 (64 MiB, as RabbitMQ's Java and .NET clients).
``auth_mechanism``
    SASL mechanism: ``plain`` (the default, user name and password) or
    ``external`` (for example a TLS client certificate). Case-insensitive. It
    may be given several times, in order of preference: the first one that
    Puka supports is used, and if Puka supports none of them that is an error.
``cacertfile``, ``certfile``, ``keyfile``
    Paths to the PEM files of the certificate authorities to trust, of the
    client's certificate and of its private key (which may instead be inside
    ``certfile``). Default: no client certificate, and the system's trusted
    authorities. ``amqps`` only.
``verify``
    ``verify_peer`` (the default) checks the broker's certificate and host
    name; ``verify_none`` checks nothing, which is unsafe outside tests.
    ``amqps`` only.
``server_name_indication``
    Host name to send in TLS SNI and to check the broker's certificate
    against. Default: the URL's host. ``amqps`` only.
``connection_name``
    A name for the connection, shown in RabbitMQ's management UI.
    Default: none.

The TLS parameters are refused with ``amqp://`` URLs, so that a missing ``s``
cannot silently turn a TLS connection into a plain one.

Keyword overrides
=================

:func:`parse_url` and :func:`parse_urls` take keyword arguments named after the
fields of :class:`ConnectionParameters`; they win over the URL. Their values
are in the units of those fields (``connection_timeout`` in seconds, ``verify``
a bool)::

    parse_url("amqp://rabbit/", heartbeat=5, password=secret_from_vault)

Errors
======

Every problem with a URL raises :class:`InvalidURL`, a :class:`ValueError`
whose message says what is wrong and quotes the URL with its password replaced
by ``***``. Passwords never appear in messages, in ``repr()`` or in ``str()``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from puka_spec.exceptions import PukaError

from puka.connection_parameters import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PORTS,
    REDACTED,
    SUPPORTED_MECHANISMS,
    ConnectionParameters,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_URL",
    "ConnectionParameters",
    "InvalidURL",
    "client_addresses",
    "parse_url",
    "parse_urls",
]

#: The URL of a local RabbitMQ with its out-of-the-box settings.
DEFAULT_URL = "amqp:///"

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_DIGITS_RE = re.compile(r"[0-9]+")
_MILLISECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUERY_START_RE = re.compile(r"[?#]")
_SENSITIVE_KEY_RE = re.compile(r"pass|secret|token", re.IGNORECASE)
# Characters that cannot be part of a host name once it is percent-decoded.
_BAD_HOST_CHARS = frozenset(" /?#@[]:%,\\")


class InvalidURL(PukaError, ValueError):
    """Raised when a connection URL, or a value overriding part of it, is invalid.

    A `PukaError` (the root of Puka's exceptions) and a `ValueError`.

    The message says what is wrong and quotes the URL with its password
    replaced by ``***``; it never contains the password itself.

    Attributes:
        reason: What is wrong, without the URL.
        url: The offending URL with its password redacted, or ``None``.
    """

    def __init__(self, reason: str, url: str | None = None) -> None:
        """Create the error from a reason and an already-redacted URL."""
        self.reason = reason
        self.url = url
        message = reason if url is None else f"invalid AMQP URL {url!r}: {reason}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[InvalidURL], tuple[str, str | None]]:
        """Pickle with the reason and the redacted URL."""
        return (type(self), (self.reason, self.url))


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ConnectionParameters))
_QUERY_PARAMETERS = (
    "heartbeat",
    "connection_timeout",
    "channel_max",
    "frame_max",
    "max_message_size",
    "auth_mechanism",
    "cacertfile",
    "certfile",
    "keyfile",
    "verify",
    "server_name_indication",
    "connection_name",
)


def _mask_query(tail: str) -> str:
    """Hide the values of password-like query parameters in ``tail``."""
    head, mark, query = tail.partition("?")
    if not mark:
        return tail
    items = []
    for item in query.split("&"):
        key, equals, _ = item.partition("=")
        hide = equals and _SENSITIVE_KEY_RE.search(unquote(key))
        items.append(key + "=" + REDACTED if hide else item)
    return head + "?" + "&".join(items)


def _redact(text: str) -> str:
    """Return ``text`` with anything that may be a password replaced by ``***``.

    This works on URLs that do not parse, so it errs on the side of hiding.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        # No recognisable authority: hide everything up to the last '@', or
        # else everything after the first ':'.
        at = text.rfind("@")
        if at >= 0:
            return REDACTED + text[at:]
        head, colon, _ = text.partition(":")
        return head + ":" + REDACTED if colon else text
    prefix = scheme + "://"
    end = _QUERY_START_RE.search(rest)
    cut = end.start() if end else len(rest)
    head, tail = rest[:cut], rest[cut:]
    if "@" in head:
        # Split at the last '@' before the query, not the first '/': a
        # password may contain an unencoded '/' (such URLs are refused anyway).
        userinfo, _, after = head.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        return prefix + user + (":" + REDACTED if colon else "") + "@" + after + _mask_query(tail)
    authority, slash, path = head.partition("/")
    if "@" in tail and ":" in authority:
        # Most likely a password containing an unencoded '?' or '#':
        # hide from the first ':' up to the last '@'.
        user = authority.partition(":")[0]
        return prefix + user + ":" + REDACTED + tail[tail.rfind("@") :]
    # Something after a ':' that is not a port may be a password whose '@host'
    # is missing: hide it.
    start = authority.find("]") + 1 if authority.startswith("[") else 0
    host, colon, port = authority[start:].partition(":")
    if colon and not _DIGITS_RE.fullmatch(port or "0"):
        authority = authority[:start] + host + ":" + REDACTED
    return prefix + authority + slash + path + _mask_query(tail)


def _decode(text: str, what: str) -> str:
    """Percent-decode ``text`` (UTF-8); ``what`` names it in error messages."""
    if _BAD_ESCAPE_RE.search(text):
        raise ValueError(f"invalid percent-encoding in the {what}: '%' must start a %XX escape")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"the {what} is not valid UTF-8 once percent-decoded") from None


class _Parser:
    """Parse one URL; every error is raised as :class:`InvalidURL`."""

    def __init__(self, url: str) -> None:
        self.text = url.strip()
        self.redacted = _redact(self.text)

    def error(self, reason: str) -> InvalidURL:
        return InvalidURL(reason, self.redacted)

    def parse(self, overrides: dict[str, Any]) -> ConnectionParameters:
        for name in overrides:
            if name not in _FIELD_NAMES:
                raise TypeError(f"unexpected keyword argument {name!r}")
        try:
            values = self.parse_url()
        except ValueError as exc:
            raise self.error(str(exc)) from None
        values.update(overrides)
        try:
            return ConnectionParameters(**values)
        except ValueError as exc:
            raise self.error(str(exc)) from None

    def parse_url(self) -> dict[str, Any]:
        text = self.text
        if not text:
            raise ValueError("the URL is empty")
        if any(ch.isspace() or not ch.isprintable() for ch in text):
            raise ValueError("whitespace and control characters must be percent-encoded")
        if "," in text:
            raise ValueError(
                "unencoded ',' (commas separate URLs; write a comma inside a URL as %2C)"
            )
        if "#" in text:
            raise ValueError("fragments are not allowed (write a '#' inside a URL as %23)")

        match = _SCHEME_RE.match(text)
        if match is None:
            raise ValueError("missing scheme; expected 'amqp://' or 'amqps://'")
        scheme = match.group(1).lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"unsupported scheme {match.group(1)!r}; expected 'amqp' or 'amqps'")
        rest = text[match.end() :]
        if not rest.startswith("//"):
            raise ValueError(f"expected '//' after '{scheme}:'")
        rest = rest[2:]

        rest, _, query = rest.partition("?")
        authority, slash, path = rest.partition("/")
        values: dict[str, Any] = {"scheme": scheme}
        try:
            values.update(self.parse_authority(authority))
        except ValueError as exc:
            if "@" in path + query and "@" not in authority:
                raise ValueError(
                    f"{exc} (if the URL has a password, write any '/' or '?' in it as %2F or %3F)"
                ) from None
            raise
        values["virtual_host"] = self.parse_vhost(slash + path)
        values.update(self.parse_query(query))
        return values

    def parse_authority(self, authority: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        userinfo, at, hostport = authority.rpartition("@")
        if at:
            if "@" in userinfo:
                raise ValueError("unencoded '@' in the user name or password (write it as %40)")
            username, colon, password = userinfo.partition(":")
            values["username"] = _decode(username, "user name")
            if colon:
                values["password"] = _decode(password, "password")

        if hostport.startswith("["):
            inside, bracket, after = hostport[1:].partition("]")
            if not bracket:
                raise ValueError("missing ']' after the IPv6 address")
            values["host"] = self.parse_ipv6(inside)
            if after and not after.startswith(":"):
                raise ValueError("unexpected characters after the IPv6 address")
            port = after[1:]
        else:
            host, _, port = hostport.partition(":")
            if ":" in port:
                raise ValueError(
                    "an IPv6 address must be enclosed in brackets, as in amqp://[::1]/"
                )
            if "[" in host or "]" in host:
                raise ValueError("unexpected '[' or ']' in the host")
            host = _decode(host, "host")
            if any(ch in _BAD_HOST_CHARS for ch in host):
                raise ValueError("the host contains a character that cannot be in a host name")
            if host:
                values["host"] = host

        if port:
            if not _DIGITS_RE.fullmatch(port):
                raise ValueError("the port must be a number between 1 and 65535")
            values["port"] = int(port)
            if values["port"] == 0:  # 0 would mean "the default" to ConnectionParameters
                raise ValueError("port must be between 1 and 65535")
        return values

    @staticmethod
    def parse_ipv6(inside: str) -> str:
        address, percent, zone = inside.partition("%25")
        if "%" in address:
            raise ValueError("invalid IPv6 address in brackets (write a zone as %25zone)")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise ValueError("invalid IPv6 address in brackets") from None
        if not percent:
            return address
        zone = _decode(zone, "IPv6 zone")
        if not zone or any(ch in _BAD_HOST_CHARS for ch in zone):
            raise ValueError("invalid IPv6 zone")
        return address + "%" + zone

    @staticmethod
    def parse_vhost(path: str) -> str:
        if path in ("", "/"):
            return "/"
        segment = path[1:]
        if "/" in segment:
            raise ValueError(
                "the virtual host must be a single path segment (write a '/' in it as %2F)"
            )
        if "@" in segment:
            raise ValueError(
                "unencoded '@' after the host (write '@' as %40, and any '/' or '?' "
                "in the password as %2F or %3F)"
            )
        return _decode(segment, "virtual host")

    @staticmethod
    def parse_query(query: str) -> dict[str, Any]:
        raw: dict[str, list[str]] = {}
        for item in query.split("&"):
            if not item:
                continue
            key, equals, value = item.partition("=")
            if "@" in key:
                # Most likely the end of a password with an unencoded '?': don't quote it.
                raise ValueError(
                    "unencoded '@' in a query parameter name (write '@' as %40, "
                    "and any '/' or '?' in the password as %2F or %3F)"
                )
            key = _decode(key, "query parameter name")
            if not equals:
                raise ValueError(f"query parameter {key!r} has no value (expected {key}=...)")
            if key not in _QUERY_PARAMETERS:
                raise ValueError(
                    f"unknown query parameter {key!r}; supported: {', '.join(_QUERY_PARAMETERS)}"
                )
            if key in raw and key != "auth_mechanism":
                raise ValueError(f"query parameter {key!r} is given more than once")
            raw.setdefault(key, []).append(_decode(value, f"value of {key}"))

        values: dict[str, Any] = {}
        for key, given in raw.items():
            value = given[0]
            if key in ("heartbeat", "channel_max", "frame_max", "max_message_size"):
                if not _DIGITS_RE.fullmatch(value):
                    raise ValueError(f"{key} must be a non-negative integer, not {value!r}")
                values[key] = int(value)
            elif key == "connection_timeout":
                if not _MILLISECONDS_RE.fullmatch(value):
                    raise ValueError(
                        f"connection_timeout must be a positive number of milliseconds, "
                        f"not {value!r}"
                    )
                values[key] = float(value) / 1000
            elif key == "auth_mechanism":
                supported = [m.upper() for m in given if m.upper() in SUPPORTED_MECHANISMS]
                if not supported:
                    raise ValueError(
                        f"no supported auth_mechanism among {given!r}; "
                        f"supported: {', '.join(m.lower() for m in SUPPORTED_MECHANISMS)}"
                    )
                values[key] = supported[0]
            elif key == "verify":
                verify = value.lower()
                if verify not in ("verify_peer", "verify_none"):
                    raise ValueError(
                        f"verify must be 'verify_peer' or 'verify_none', not {value!r}"
                    )
                values[key] = verify == "verify_peer"
            else:
                if not value:
                    raise ValueError(f"query parameter {key!r} must not be empty")
                values[key] = value
        return values


def parse_url(url: str, **overrides: Any) -> ConnectionParameters:
    """Parse an ``amqp://`` or ``amqps://`` URL into :class:`ConnectionParameters`.

    See the module documentation for the URL's parts, their defaults and the
    supported query parameters.

    Args:
        url: The URL. Surrounding whitespace is ignored.
        **overrides: Values for fields of :class:`ConnectionParameters`,
            which win over the URL (in the fields' own units:
            ``connection_timeout`` in seconds, ``verify`` a bool).

    Returns:
        The checked connection parameters.

    Raises:
        InvalidURL: The URL, or an override's value, is invalid. The message
            never contains the password.
        TypeError: ``url`` is not a string, an override is not a field name,
            or an override has the wrong type.

    >>> parse_url("amqp://rabbit:5673/%2F?heartbeat=10", heartbeat=5).heartbeat
    5
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    return _Parser(url).parse(overrides)


def parse_urls(urls: str | Sequence[str], **overrides: Any) -> list[ConnectionParameters]:
    """Parse several URLs, for example the nodes of a cluster to fail over between.

    Args:
        urls: A sequence of URLs, or one string of URLs separated by commas
            (with optional whitespace around them). Commas can be used this way
            because a URL that Puka accepts never contains an unencoded comma:
            write a comma inside a password, virtual host or query value as
            ``%2C``.
        **overrides: Applied to every URL, as in :func:`parse_url`.

    Returns:
        The parameters of each URL, in the order given.

    Raises:
        InvalidURL: No URL was given, or one of them is invalid (the message
            says which one).
        TypeError: As for :func:`parse_url`.

    >>> [p.host for p in parse_urls("amqp://rabbit1, amqp://rabbit2")]
    ['rabbit1', 'rabbit2']
    """
    if isinstance(urls, str):
        items = [item.strip() for item in urls.split(",")]
        if not urls.strip():
            raise InvalidURL("no URL given")
        if len(items) > 1 and not all(_SCHEME_RE.match(item) and "://" in item for item in items):
            raise InvalidURL(
                "each comma-separated item must be a whole amqp:// or amqps:// URL "
                "(write a comma inside a URL as %2C)",
                _redact(urls.strip()),
            )
    else:
        items = list(urls)
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"urls must contain only str, not {type(item).__name__}")
        if not items:
            raise InvalidURL("no URL given")
    result = []
    for index, item in enumerate(items, 1):
        try:
            result.append(parse_url(item, **overrides))
        except InvalidURL as exc:
            if len(items) == 1:
                raise
            raise InvalidURL(f"URL {index} of {len(items)}: {exc.reason}", exc.url) from None
    return result


def client_addresses(
    urls: str | Sequence[str], *, shuffle: bool = False, **overrides: Any
) -> list[ConnectionParameters]:
    """The nodes a client connects to, from its `amqp_url` and keyword arguments.

    :func:`parse_urls` with the overrides that are not ``None`` (a ``None`` leaves the URL's
    own value, or the default); ``shuffle=True`` puts the nodes in a random order, which
    spreads many clients over a cluster.

    >>> [p.heartbeat for p in client_addresses("amqp://a?heartbeat=5", heartbeat=None)]
    [5]
    """
    addresses = parse_urls(urls, **{k: v for k, v in overrides.items() if v is not None})
    if shuffle:
        random.shuffle(addresses)
    return addresses
