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
from typing import TYPE_CHECKING, Any

from puka.__about__ import __version__
from puka.engine import Engine
from puka.engine.recovery import Recovery
from puka.engine.retrying import RetryPolicy
from puka.errors import *  # noqa: F403 - every exception is part of the API
from puka.errors import __all__ as _errors
from puka.results import Result
from puka.urls import ConnectionParameters, InvalidURL, parse_url, parse_urls

if TYPE_CHECKING:
    from puka.blocking.client import Client
    from puka.blocking.drive import loop
    from puka.tls import TLSCertificateError

__all__ = [  # noqa: PLE0604 - extended from puka.errors
    "Client",
    "ConnectionParameters",
    "Engine",
    "InvalidURL",
    "Recovery",
    "Result",
    "RetryPolicy",
    "TLSCertificateError",
    "__version__",
    "loop",
    "parse_url",
    "parse_urls",
    *_errors,
]

# A library logs, the application decides where it goes: no "No handlers" last-resort output.
logging.getLogger("puka").addHandler(logging.NullHandler())


# The blocking driver (sockets, poll, ssl) is imported on first use, so that `import puka.engine`
# (and a driver of another event loop) loads no I/O module.
_LAZY = {
    "Client": "puka.blocking.client",
    "loop": "puka.blocking.drive",
    "TLSCertificateError": "puka.tls",
}


_LAZY_MODULES = {"threads"}
"""Submodules that `puka.<name>` imports on first use: `puka.threads.consume_in_pool(...)`
works after a bare `import puka`, which stays as light as it was."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None and name not in _LAZY_MODULES:
        raise AttributeError(f"module 'puka' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only on first use of a lazy name

    if module is None:
        value = importlib.import_module(f"puka.{name}")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_MODULES})
