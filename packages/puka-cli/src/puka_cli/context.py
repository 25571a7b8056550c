"""What a command runs with: its parsed options, its output, connections, Ctrl-C handling."""

from __future__ import annotations

import argparse
import contextlib
import signal
import ssl
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any

import puka
from puka.tls import tls_context

from puka_cli.errors import CliError
from puka_cli.exit_codes import ExitCode
from puka_cli.output import Output, Progress, is_terminal

__all__ = ["Context", "Interrupt", "close", "result_of"]


class Interrupt:
    """Ctrl-C as a flag: the first SIGINT sets `requested`, a second one raises as usual.

    Commands that must settle messages before exiting (consume, shovel, dump, perf) poll
    `requested` between short waits instead of being interrupted in the middle of a step.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


class Context:
    """A running command: `args`, `output`, and helpers to connect and to report."""

    def __init__(
        self, args: argparse.Namespace, output: Output | None = None, stderr: IO[str] | None = None
    ) -> None:
        self.args = args
        self.output = output if output is not None else Output(args.format)
        self.stderr = sys.stderr if stderr is None else stderr
        self.verbose: int = args.verbose
        self._said_waiting = False

    # --- reporting ------------------------------------------------------------------------

    def note(self, text: str) -> None:
        """A line on stderr, shown with `-v`."""
        if self.verbose:
            self.stderr.write(f"puka: {text}\n")
            self.stderr.flush()

    def warn(self, text: str) -> None:
        """A line on stderr, always shown."""
        self.stderr.write(f"puka: {text}\n")
        self.stderr.flush()

    def waiting(self, what: str) -> None:
        """Say once, on stderr, what a long-running command waits on: `puka: waiting on WHAT
        (Ctrl-C to stop)`. Only on a terminal: a script reading stderr gets nothing."""
        if self._said_waiting or not is_terminal(self.stderr):
            return
        self._said_waiting = True
        self.stderr.write(f"puka: waiting on {what} (Ctrl-C to stop)\n")
        self.stderr.flush()

    def progress(self, label: str, total: int | None = None) -> Progress:
        """A progress line on stderr (shown only when stderr is a terminal)."""
        return Progress(label, total, stream=self.stderr)

    # --- connections ----------------------------------------------------------------------

    def _parse(self, url: str | None) -> list[puka.ConnectionParameters]:
        args = self.args
        overrides: dict[str, Any] = {}
        if args.cacert:
            overrides["cacertfile"] = args.cacert
        if args.cert:
            overrides["certfile"] = args.cert
        if args.key:
            overrides["keyfile"] = args.key
        if args.no_verify:
            overrides["verify"] = False
        if args.heartbeat is not None:
            overrides["heartbeat"] = args.heartbeat
        if args.connect_timeout is not None:
            overrides["connection_timeout"] = args.connect_timeout
        return puka.parse_urls(url or args.url, **overrides)

    def client(
        self,
        *,
        url: str | None = None,
        pubacks: bool | None = None,
        role: str | None = None,
        reconnect: bool = False,
    ) -> puka.Client:
        """A new, connected client (`role` is added to the connection name); with `reconnect`,
        it recovers from a lost connection (`puka.Client(..., reconnect=True)`)."""
        args = self.args
        addresses = self._parse(url)
        first = addresses[0]
        context: ssl.SSLContext | None = None
        if first.tls and (first.cacertfile or first.certfile or not first.verify):
            # puka.Client takes the URL and a few overrides, not TLS files: build the context.
            context = tls_context(first)
        name = args.connection_name or f"puka {args.command}"
        if role:
            name = f"{name} ({role})"
        client = puka.Client(
            url or args.url,
            pubacks=pubacks,
            heartbeat=args.heartbeat,
            ssl=context,
            connection_timeout=args.connect_timeout,
            connection_name=name,
            shuffle=args.shuffle,
            reconnect=reconnect,
        )
        if len(addresses) > 1:
            order = "in a random order" if args.shuffle else "in turn"
            self.note(f"connecting to one of {len(addresses)} URLs, {order}, as {name!r}")
        else:
            self.note(f"connecting to {first.redacted_url()} as {name!r}")
        try:
            client.wait(client.connect())
        except (puka.AccessRefused, puka.NotAllowed):
            client.abort()
            raise
        except puka.AMQPError as error:  # something answered, but not as an AMQP broker would
            client.abort()
            raise CliError(
                f"cannot connect to {first.host}:{first.port}: {error}", ExitCode.UNAVAILABLE
            ) from error
        except BaseException:
            client.abort()
            raise
        if len(addresses) > 1:
            answered = client.params.replace(connection_name=None).redacted_url()
            self.note(f"connected to {answered}")
        return client

    @contextlib.contextmanager
    def connected(
        self,
        *,
        url: str | None = None,
        pubacks: bool | None = None,
        role: str | None = None,
        reconnect: bool = False,
    ) -> Iterator[puka.Client]:
        """A connected client, closed (politely if it can be) when the block ends."""
        client = self.client(url=url, pubacks=pubacks, role=role, reconnect=reconnect)
        try:
            yield client
        finally:
            close(client)


def close(client: puka.Client, timeout: float = 5.0) -> None:
    """Close a client once what was sent is answered; never raise."""
    with contextlib.suppress(Exception):
        if not client.engine.closed:
            client.wait(client.close(), timeout=timeout, raise_errors=False)
    client.abort()


def result_of(client: puka.Client, promise: int) -> puka.Result:
    """Wait for a promise's result (raising its error).

    `Client.wait` is typed `Result | None` because it returns `None` on a timeout; without a
    timeout it always has a result.
    """
    result = client.wait(promise)
    if result is None:  # pragma: no cover - only a timeout gives None
        raise RuntimeError(f"promise {promise} gave no result")
    return result
