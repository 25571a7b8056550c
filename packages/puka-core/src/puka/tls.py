"""TLS for the drivers: the context an `amqps://` URL describes, and its verification error."""

from __future__ import annotations

import ssl

from puka.errors import ConnectFailed
from puka.urls import ConnectionParameters

__all__ = ["TLSCertificateError", "tls_context"]


class TLSCertificateError(ConnectFailed, ssl.SSLCertVerificationError):
    """The broker's TLS certificate did not verify (wrong CA, host name mismatch, expired)."""


def tls_context(params: ConnectionParameters) -> ssl.SSLContext:
    """The TLS context an `amqps://` URL describes: verifying by default."""
    context = ssl.create_default_context(cafile=params.cacertfile)
    if params.certfile:
        context.load_cert_chain(params.certfile, params.keyfile)
    if not params.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
