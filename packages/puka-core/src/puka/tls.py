"""TLS for the drivers: the context an `amqps://` URL describes, its verification error, and
the one mapping of a transport that could not be opened to Puka's errors."""

from __future__ import annotations

import socket
import ssl
from typing import Literal

from puka.arguments import refuse_type
from puka.errors import ConnectFailed, ConnectTimeout
from puka.urls import ConnectionParameters

__all__ = ["TLSCertificateError", "check_ssl_context", "tls_context"]


class TLSCertificateError(ConnectFailed, ssl.SSLCertVerificationError):
    """The broker's TLS certificate did not verify (wrong CA, host name mismatch, expired)."""


def check_ssl_context(value: object, call: str) -> None:
    """A client's `ssl` argument: an `ssl.SSLContext` or `None` (see `puka.arguments`)."""
    if value is not None and not isinstance(value, ssl.SSLContext):
        refuse_type(value, "ssl", call, "an ssl.SSLContext or None")


def tls_context(params: ConnectionParameters) -> ssl.SSLContext:
    """The TLS context an `amqps://` URL describes: verifying by default."""
    context = ssl.create_default_context(cafile=params.cacertfile)
    if params.certfile:
        context.load_cert_chain(params.certfile, params.keyfile)
    if not params.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def transport_tls(
    params: ConnectionParameters, context: ssl.SSLContext | None
) -> tuple[ssl.SSLContext, str] | None:
    """How a driver secures its transport to `params`: the TLS context (`context`, the client's
    `ssl` argument, else the one an `amqps://` URL describes) and the server name to send and
    verify; `None` for plain TCP."""
    if context is None:
        if not params.tls:
            return None
        context = tls_context(params)
    return context, params.server_name_indication or params.host


def connect_error(
    exc: BaseException, params: ConnectionParameters, stage: Literal["tcp", "tls"]
) -> ConnectFailed:
    """Puka's error for `exc`, raised while a driver opened a transport to `params`.

    `stage` is what the driver was doing: `"tcp"` connecting (with the TLS handshake, for a
    driver that cannot tell them apart), `"tls"` the TLS handshake on a connected socket. A
    timeout (`TimeoutError`; a driver whose wait raises another kind passes a `TimeoutError`)
    is a `ConnectTimeout`, a certificate that did not verify a `TLSCertificateError`, any other
    `OSError` (a refused port, a name that does not resolve, a failed TLS handshake) a
    `ConnectFailed`; each names the node. Raise it `from None`: the message says it all.
    """
    where = f"{params.host}:{params.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSCertificateError(
            exc.errno, f"TLS certificate of {where} did not verify: {exc.verify_message}"
        )
    if isinstance(exc, TimeoutError):
        if stage == "tls":
            return ConnectTimeout(f"TLS handshake with {where} timed out")
        took = f"took over {params.connection_timeout:g} s"
        return ConnectTimeout(f"TCP connection to {where} {took}")
    if isinstance(exc, ssl.SSLError) or stage == "tls":
        return ConnectFailed(f"TLS handshake with {where} failed: {exc}")
    if isinstance(exc, socket.gaierror):
        return ConnectFailed(f"cannot resolve {params.host!r}: {exc.strerror}")
    strerror = exc.strerror if isinstance(exc, OSError) else None
    return ConnectFailed(f"cannot connect to {where}: {strerror or exc}")
