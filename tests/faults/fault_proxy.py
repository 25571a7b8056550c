"""A TCP fault proxy on loopback: asyncio inside, in a thread of its own, driven from any thread.

Put it between a client and the broker and break the link on purpose::

    with FaultProxy("127.0.0.1", 5672) as proxy:
        client = puka.Client(f"amqp://guest:guest@127.0.0.1:{proxy.port}/")
        proxy.stall()            # nothing flows either way (the broker looks dead)
        proxy.passthrough()      # everything flows again
        proxy.rst()              # every open link is reset (RST to both ends)

The proxy runs its own event loop in a daemon thread, so blocking tests (``puka.Client``) and
asyncio tests (on their own loop) use it alike; every method is thread-safe and returns once
the change is in force.

Modes (per direction where it matters: ``"c2s"`` client to server, ``"s2c"`` server to client,
``"both"``):

* ``passthrough()`` -- forward everything (and undo stall, latency, slices, bandwidth).
* ``stall(direction)`` -- stop reading and forwarding: the sender's buffers fill up.
* ``latency(seconds, direction)`` -- deliver each chunk ``seconds`` after it was read.
* ``slices(size, direction)`` -- forward in ``size``-byte writes, one per loop iteration.
* ``bandwidth(bytes_per_second, direction)`` -- pace the forwarding.
* ``accept_and_ignore(on)`` -- new connections are accepted and then left alone (never read,
  never forwarded): a broker that hangs after the TCP handshake.
* ``rst()`` / ``fin()`` -- end every open link abruptly (RST) or orderly (FIN) on both sides.
* ``cut_after(k, direction, how)`` -- new links forward exactly ``k`` bytes in ``direction``
  and then end (``how="rst"`` or ``"fin"``).

Counters: ``accepted`` (connections), ``active`` (open links), ``forwarded`` (bytes by
direction).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

__all__ = ["Direction", "FaultProxy", "open_fds", "record_figures"]

Direction = Literal["c2s", "s2c", "both"]
How = Literal["rst", "fin"]
T = TypeVar("T")

_DIRECTIONS = ("c2s", "s2c")
_READ_SIZE = 65536
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def _directions(direction: Direction) -> tuple[str, ...]:
    if direction == "both":
        return _DIRECTIONS
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be c2s, s2c or both, not {direction!r}")
    return (direction,)


@dataclass
class _Shape:
    """How one direction forwards bytes right now."""

    flowing: asyncio.Event
    latency: float = 0.0
    slice_size: int = 0
    bandwidth: float = 0.0
    cut_after: int | None = None
    cut_how: How = "rst"


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's stream pair and the broker's."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: bytes forwarded so far, and the cut limit frozen when the link was accepted
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_DIRECTIONS, 0))
    cut_after: dict[str, int | None] = field(default_factory=dict)
    cut_how: dict[str, How] = field(default_factory=dict)
    #: the transport each direction reads from (paused while that direction stalls)
    sources: dict[str, asyncio.BaseTransport] = field(default_factory=dict)
    ended: bool = False

    def reading(self, direction: str, on: bool) -> None:
        """Pause or resume reading what ``direction`` forwards (the kernel buffers fill up)."""
        source = self.sources.get(direction)
        if source is None or source.is_closing():
            return
        assert isinstance(source, asyncio.ReadTransport)
        if on:
            source.resume_reading()
        else:
            source.pause_reading()


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards each connection to ``target``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.forwarded: dict[str, int] = dict.fromkeys(_DIRECTIONS, 0)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="puka-fault-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._shapes: dict[str, _Shape] = {}
        self._ignore_new = False

    # --- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the loop thread and listen."""
        self._thread.start()
        self._call(self._listen())

    def stop(self) -> None:
        """Reset every link, stop listening, end the thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 5.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _call_soon(self, fn: Callable[[], None]) -> None:
        async def run() -> None:
            fn()

        self._call(run())

    async def _listen(self) -> None:
        self._shapes = {d: _Shape(asyncio.Event()) for d in _DIRECTIONS}
        for shape in self._shapes.values():
            shape.flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=64)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for link in self._links for t in link.tasks]
        for link in list(self._links):
            self._end(link, "rst")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- the modes (thread-safe) ------------------------------------------------------------

    @property
    def active(self) -> int:
        """Open links (client connections the proxy still holds)."""
        return len(self._links)

    def url(self, amqp_url: str) -> str:
        """``amqp_url`` pointed at this proxy (credentials, vhost and query kept)."""
        from urllib.parse import urlsplit

        parts = urlsplit(amqp_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def passthrough(self) -> None:
        """Forward everything as it comes (undo stall, latency, slices, bandwidth and cuts)."""

        def apply() -> None:
            self._ignore_new = False
            for shape in self._shapes.values():
                shape.latency = shape.bandwidth = 0.0
                shape.slice_size = 0
                shape.cut_after = None
                shape.flowing.set()
            for link in self._links:
                for d in _DIRECTIONS:
                    link.reading(d, True)

        self._call_soon(apply)

    resume = passthrough

    def stall(self, direction: Direction = "both") -> None:
        """Stop reading and forwarding in ``direction`` (buffered bytes stay buffered)."""

        def apply() -> None:
            for d in _directions(direction):
                self._shapes[d].flowing.clear()
                for link in self._links:
                    link.reading(d, False)

        self._call_soon(apply)

    def latency(self, seconds: float, direction: Direction = "both") -> None:
        """Deliver every chunk ``seconds`` after it was read."""

        def apply() -> None:
            for d in _directions(direction):
                self._shapes[d].latency = seconds

        self._call_soon(apply)

    def slices(self, size: int, direction: Direction = "both") -> None:
        """Forward in writes of ``size`` bytes, one per loop iteration."""
        if size < 1:
            raise ValueError("slices need a size of at least one byte")

        def apply() -> None:
            for d in _directions(direction):
                self._shapes[d].slice_size = size

        self._call_soon(apply)

    def bandwidth(self, bytes_per_second: float, direction: Direction = "both") -> None:
        """Forward at most ``bytes_per_second`` (0: unlimited)."""

        def apply() -> None:
            for d in _directions(direction):
                self._shapes[d].bandwidth = bytes_per_second

        self._call_soon(apply)

    def accept_and_ignore(self, on: bool = True) -> None:
        """New connections are accepted and never read or forwarded (while ``on``)."""

        def apply() -> None:
            self._ignore_new = on

        self._call_soon(apply)

    def cut_after(self, k: int, direction: Direction = "s2c", how: How = "rst") -> None:
        """New links forward exactly ``k`` bytes in ``direction``, then end with ``how``."""

        def apply() -> None:
            for d in _directions(direction):
                self._shapes[d].cut_after = k
                self._shapes[d].cut_how = how

        self._call_soon(apply)

    def rst(self) -> None:
        """Reset every open link: RST to the client and to the broker."""
        self._call_soon(lambda: self._end_all("rst"))

    def fin(self) -> None:
        """Close every open link in order: FIN to the client and to the broker."""
        self._call_soon(lambda: self._end_all("fin"))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no link is open; whether that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._links:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # --- inside the loop --------------------------------------------------------------------

    def _end_all(self, how: How) -> None:
        for link in list(self._links):
            self._end(link, how)

    def _end(self, link: _Link, how: How) -> None:
        if link.ended:
            return
        link.ended = True
        for writer in (link.client, link.upstream):
            if writer is None:
                continue
            transport = writer.transport
            if how == "rst":
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                transport.abort()
            else:
                transport.close()
        current = asyncio.current_task()
        for task in link.tasks:
            if task is not current:
                task.cancel()
        self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        _nodelay(writer)
        if self._ignore_new:
            return  # held open until rst()/fin()/stop(): never read, never answered
        for d in _DIRECTIONS:
            link.cut_after[d] = self._shapes[d].cut_after
            link.cut_how[d] = self._shapes[d].cut_how
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._end(link, "rst")
            return
        if link.ended:
            up_writer.transport.abort()
            return
        link.upstream = up_writer
        _nodelay(up_writer)
        link.sources = {"c2s": writer.transport, "s2c": up_writer.transport}
        for d in _DIRECTIONS:
            if not self._shapes[d].flowing.is_set():
                link.reading(d, False)
        link.tasks = [
            asyncio.ensure_future(self._pump(link, "c2s", reader, up_writer)),
            asyncio.ensure_future(self._pump(link, "s2c", up_reader, writer)),
        ]

    async def _pump(
        self,
        link: _Link,
        direction: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Read one direction and hand chunks to its sender (which applies latency, pacing)."""
        shape = self._shapes[direction]
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(link, direction, queue, writer))
        link.tasks.append(sender)
        try:
            while True:
                await shape.flowing.wait()
                try:
                    data = await reader.read(_READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    await queue.put((0.0, b""))  # end of stream, after what is queued
                    return
                await queue.put((time.monotonic() + shape.latency, data))
                # do not run ahead of a stalled or slow sender by more than a few chunks
                while queue.qsize() > 64:
                    await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            raise

    async def _send(
        self,
        link: _Link,
        direction: str,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
    ) -> None:
        shape = self._shapes[direction]
        limit = link.cut_after.get(direction)
        while True:
            due, data = await queue.get()
            if not data:  # the source ended: pass the end on (FIN both ways)
                self._end(link, "fin")
                return
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if limit is not None:
                room = limit - link.sent[direction]
                if len(data) >= room:
                    data = data[:room]
                    await self._write(link, direction, writer, data, shape)
                    await writer.drain()
                    await asyncio.sleep(0.01)  # let the bytes reach the peer before the end
                    self._end(link, link.cut_how.get(direction, "rst"))
                    return
            await self._write(link, direction, writer, data, shape)

    async def _write(
        self,
        link: _Link,
        direction: str,
        writer: asyncio.StreamWriter,
        data: bytes,
        shape: _Shape,
    ) -> None:
        view = memoryview(data)
        transport = writer.transport
        while view:
            if not shape.flowing.is_set():
                await shape.flowing.wait()
            step = len(view)
            if shape.slice_size:
                step = min(step, shape.slice_size)
            if shape.bandwidth:
                step = min(step, max(1, int(shape.bandwidth / 50)))
            chunk, view = view[:step], view[step:]
            if transport.is_closing():
                return
            transport.write(bytes(chunk))
            link.sent[direction] += len(chunk)
            self.forwarded[direction] += len(chunk)
            if transport.get_write_buffer_size() > _READ_SIZE:
                try:
                    await writer.drain()
                except OSError:
                    self._end(link, "rst")
                    return
            if shape.bandwidth:
                await asyncio.sleep(len(chunk) / shape.bandwidth)
            elif shape.slice_size and view:
                await asyncio.sleep(0)  # one slice per loop iteration: the peer reads it alone


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- what the connection-fault rows share ---------------------------------------------------

REPORT_DIR = Path(__file__).parent / ".report"
REPORT_FILE = REPORT_DIR / "connection.jsonl"


def record_figures(row: str, driver: str, **figures: Any) -> dict[str, Any]:
    """Print one row's figures and append them as a JSON line to ``.report/connection.jsonl``."""
    line = {
        "row": row,
        "driver": driver,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(line, default=str)
    print(text)
    REPORT_DIR.mkdir(exist_ok=True)
    with REPORT_FILE.open("a") as report:
        report.write(text + "\n")
    return line


def open_fds() -> int:
    """File descriptors this process holds (Linux ``/proc``; -1 where unknown)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1
