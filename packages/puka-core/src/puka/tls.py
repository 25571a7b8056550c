"""TLS for the drivers: the context an `amqps://` URL describes, and its verification error."""

from __future__ import annotations

import ssl

from puka.arguments import refuse_type
from puka.errors import ConnectFailed
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
