"""Connection parameters: where and how to connect, checked, shown without the password.

`ConnectionParameters` is what `puka.urls.parse_url` turns a connection URL into, and what
the engine and the drivers read. Its public home is `puka.urls`, which re-exports it and
documents the URL format. This module holds the value itself: its fields and their defaults,
the checks made when one is created, and `redacted_url`, the URL that gives the parameters
back with the password hidden. The URL parser is `puka.urls`'s; this module does no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "ConnectionParameters"]

#: The largest message body accepted from the broker unless told otherwise: 64 MiB.
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024

# Shared with the URL parser in puka.urls, which checks a URL's scheme and auth_mechanism
# against them and hides passwords the same way.
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
SUPPORTED_MECHANISMS = ("PLAIN", "EXTERNAL")
REDACTED = "***"

_DEFAULT_CONNECTION_TIMEOUT = 10.0
_FRAME_MIN_SIZE = 4096  # AMQP 0-9-1 frame-min-size
_MAX_SHORT = 0xFFFF
_MAX_LONG = 0xFFFFFFFF


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def _check_optional_str(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class ConnectionParameters:
    """Where and how to connect to a broker: the parsed form of a connection URL.

    Build one with :func:`parse_url`, or directly; every field has a default,
    so ``ConnectionParameters()`` is the same as ``parse_url("amqp:///")``.
    The values are checked when the object is created, raising
    :class:`ValueError` or :class:`TypeError`. Objects are immutable: use
    :meth:`replace` to derive a changed copy.

    The password never appears in ``repr()``; ``str()`` gives
    :meth:`redacted_url`.

    Attributes:
        scheme: ``"amqp"`` or ``"amqps"`` (TLS).
        host: Host name or IP address (IPv6 without brackets).
        port: TCP port, 1 to 65535. When constructing directly, ``0`` (the
            default) means the scheme's default port: 5672 or 5671 (TLS).
        virtual_host: RabbitMQ virtual host; ``"/"`` by default.
        username: User name for ``PLAIN`` authentication; ``"guest"``.
        password: Password for ``PLAIN`` authentication; ``"guest"``.
        heartbeat: Heartbeat interval to propose in seconds (0 disables
            heartbeats), or ``None`` to accept the broker's proposal.
        connection_timeout: Seconds to wait for the connection to be
            established; 10.0 by default. (The URL's ``connection_timeout``
            query parameter is in milliseconds.)
        channel_max: Highest channel number to allow, or 0 for the broker's.
        frame_max: Largest frame size in bytes to allow, or 0 for the broker's.
        max_message_size: Largest message body in bytes to accept from the
            broker (:data:`DEFAULT_MAX_MESSAGE_SIZE`, 64 MiB, by default).
        auth_mechanism: ``"PLAIN"`` (default) or ``"EXTERNAL"``.
        cacertfile: PEM file of the certificate authorities to trust, or
            ``None`` for the system's.
        certfile: PEM file of the client certificate, or ``None``.
        keyfile: PEM file of the client's private key, or ``None`` (then
            it must be in ``certfile``, if there is one).
        verify: Whether to check the broker's certificate and host name.
        server_name_indication: Host name for TLS SNI and certificate
            checking, or ``None`` for :attr:`host`.
        connection_name: Name shown for the connection in RabbitMQ's
            management UI, or ``None``.
    """

    scheme: str = "amqp"
    host: str = "localhost"
    port: int = 0
    virtual_host: str = "/"
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    heartbeat: int | None = None
    connection_timeout: float = _DEFAULT_CONNECTION_TIMEOUT
    channel_max: int = 0
    frame_max: int = 0
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    auth_mechanism: str = "PLAIN"
    cacertfile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    verify: bool = True
    server_name_indication: str | None = None
    connection_name: str | None = None

    def __post_init__(self) -> None:
        """Check and normalise the fields."""
        scheme = _check_str("scheme", self.scheme).lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"unsupported scheme {self.scheme!r}; expected 'amqp' or 'amqps'")
        object.__setattr__(self, "scheme", scheme)

        host = _check_str("host", self.host)
        if not host:
            raise ValueError("host must not be empty")
        if any(ch.isspace() or not ch.isprintable() for ch in host):
            raise ValueError("host must not contain whitespace or control characters")

        port = _check_int("port", self.port)
        if port == 0:
            object.__setattr__(self, "port", DEFAULT_PORTS[scheme])
        elif not 1 <= port <= 0xFFFF:
            raise ValueError("port must be between 1 and 65535")

        if not _check_str("virtual_host", self.virtual_host):
            raise ValueError("virtual_host must not be empty")
        for name in ("username", "password"):
            if "\0" in _check_str(name, getattr(self, name)):
                raise ValueError(f"{name} must not contain a NUL character")

        heartbeat = self.heartbeat
        if heartbeat is not None and not 0 <= _check_int("heartbeat", heartbeat) <= _MAX_SHORT:
            raise ValueError("heartbeat must be between 0 and 65535 seconds")

        timeout = self.connection_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(
                f"connection_timeout must be a number of seconds, not {type(timeout).__name__}"
            )
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError("connection_timeout must be a positive, finite number of seconds")
        object.__setattr__(self, "connection_timeout", float(timeout))

        if not 0 <= _check_int("channel_max", self.channel_max) <= _MAX_SHORT:
            raise ValueError("channel_max must be between 0 and 65535")
        frame_max = _check_int("frame_max", self.frame_max)
        if frame_max != 0 and not _FRAME_MIN_SIZE <= frame_max <= _MAX_LONG:
            raise ValueError("frame_max must be 0 (the broker's) or between 4096 and 4294967295")
        if _check_int("max_message_size", self.max_message_size) < 1:
            raise ValueError("max_message_size must be at least 1 byte")

        mechanism = _check_str("auth_mechanism", self.auth_mechanism).upper()
        if mechanism not in SUPPORTED_MECHANISMS:
            raise ValueError(
                f"unsupported auth_mechanism {self.auth_mechanism!r}; "
                f"supported: {', '.join(SUPPORTED_MECHANISMS)}"
            )
        object.__setattr__(self, "auth_mechanism", mechanism)

        if not isinstance(self.verify, bool):
            raise TypeError(f"verify must be a bool, not {type(self.verify).__name__}")
        tls_options = [
            name
            for name in ("cacertfile", "certfile", "keyfile", "server_name_indication")
            if _check_optional_str(name, getattr(self, name)) is not None
        ]
        if not self.verify:
            tls_options.append("verify")
        if tls_options and scheme != "amqps":
            raise ValueError(
                f"TLS option(s) {', '.join(tls_options)} need the 'amqps' scheme, not 'amqp'"
            )
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile was given without certfile")
        _check_optional_str("connection_name", self.connection_name)

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS (the scheme is ``amqps``)."""
        return self.scheme == "amqps"

    def replace(self, **changes: Any) -> ConnectionParameters:
        """Return a copy with the given fields changed, checked like a new object.

        >>> parse_url("amqp:///").replace(heartbeat=10).heartbeat
        10
        """
        return dataclasses.replace(self, **changes)

    def redacted_url(self) -> str:
        """Return a URL for these parameters with the password replaced by ``***``.

        The URL always spells out the user name, host, port and virtual host,
        and lists the query parameters that differ from their defaults. An
        empty password is left out rather than replaced.

        >>> parse_url("amqp://bob:s3cret@rabbit/%2F?connection_timeout=2500").redacted_url()
        'amqp://bob:***@rabbit:5672/%2F?connection_timeout=2500'
        """
        return self._url(REDACTED)

    def __str__(self) -> str:
        """Return :meth:`redacted_url`."""
        return self.redacted_url()

    def _url(self, password: str) -> str:
        """Build the URL with ``password`` (already encoded) in place of the password."""
        userinfo = quote(self.username, safe="")
        if self.password:
            userinfo += ":" + password
        if ":" in self.host:
            host = "[" + self.host.replace("%", "%25") + "]"
        else:
            host = quote(self.host, safe="")
        url = f"{self.scheme}://{userinfo}@{host}:{self.port}/{quote(self.virtual_host, safe='')}"
        query = [(name, quote(value, safe="/:")) for name, value in self._query_items()]
        if query:
            url += "?" + "&".join(f"{name}={value}" for name, value in query)
        return url

    def _query_items(self) -> Iterable[tuple[str, str]]:
        if self.heartbeat is not None:
            yield "heartbeat", str(self.heartbeat)
        if self.connection_timeout != _DEFAULT_CONNECTION_TIMEOUT:
            milliseconds = self.connection_timeout * 1000
            text = repr(milliseconds)
            yield "connection_timeout", text[:-2] if text.endswith(".0") else text
        if self.channel_max:
            yield "channel_max", str(self.channel_max)
        if self.frame_max:
            yield "frame_max", str(self.frame_max)
        if self.max_message_size != DEFAULT_MAX_MESSAGE_SIZE:
            yield "max_message_size", str(self.max_message_size)
        if self.auth_mechanism != "PLAIN":
            yield "auth_mechanism", self.auth_mechanism.lower()
        for name in ("cacertfile", "certfile", "keyfile"):
            value = getattr(self, name)
            if value is not None:
                yield name, value
        if not self.verify:
            yield "verify", "verify_none"
        if self.server_name_indication is not None:
            yield "server_name_indication", self.server_name_indication
        if self.connection_name is not None:
            yield "connection_name", self.connection_name
