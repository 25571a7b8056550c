"""Puka: an opinionated AMQP 0-9-1 (RabbitMQ) client.

Every operation returns a promise; `client.wait(promise)` makes it synchronous, a callback makes
it asynchronous. Channels are pooled and hidden; errors are one exception class per reply code
and leave the client usable; publishes are confirmed by default.

    import puka
    client = puka.Client("amqp://guest:guest@localhost/")
    client.wait(client.connect())
    client.wait(client.queue_declare(queue="test"))
    client.wait(client.basic_publish(exchange="", routing_key="test", body=b"Hello"))
"""

import logging

from puka.__about__ import __version__
from puka.client import Client
from puka.drive import loop
from puka.engine import Engine
from puka.errors import *  # noqa: F403 - every exception is part of the API
from puka.errors import __all__ as _errors
from puka.recovery import Recovery
from puka.results import Result
from puka.tls import TLSCertificateError
from puka.urls import ConnectionParameters, InvalidURL, parse_url, parse_urls

__all__ = [  # noqa: PLE0604 - extended from puka.errors
    "Client",
    "ConnectionParameters",
    "Engine",
    "InvalidURL",
    "Recovery",
    "Result",
    "TLSCertificateError",
    "__version__",
    "loop",
    "parse_url",
    "parse_urls",
    *_errors,
]

# A library logs, the application decides where it goes: no "No handlers" last-resort output.
logging.getLogger("puka").addHandler(logging.NullHandler())
