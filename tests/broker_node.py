"""Broker helpers for the Puka test suite: probes and private RabbitMQ nodes.

* :func:`amqp_url` -- the URL of the shared broker (``AMQP_URL`` or the local default).
* :func:`broker_reachable` -- does an AMQP 0-9-1 broker answer at a URL? Never hangs.
* :class:`PrivateBrokerNode` -- a throw-away RabbitMQ node on its own port and data directory,
  for tests that hurt the broker (memory alarms, stopping it, closing all its connections) and
  therefore must never run against the shared broker.
* :func:`rabbitmqctl` -- run ``rabbitmqctl`` with a timeout and a clear error on failure.

This module has no pytest dependency; the fixtures built on it are in ``conftest.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"

#: What a client sends first: "AMQP", 0, then protocol version 0-9-1.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
#: The first 11 bytes of the broker's answer, connection.start: a method frame (type 1) on
#: channel 0, a 4-byte payload size (skipped), then class 10 (connection), method 10 (start).
_FRAME_METHOD = 0x01
_CONNECTION_START = (10, 10)
_START_PREFIX_SIZE = 11

#: The Erlang distribution port of a private node is its AMQP port plus this offset.
DIST_PORT_OFFSET = 20000
#: Private node AMQP ports are drawn from here (so distribution ports are 41000-49999).
PRIVATE_PORT_RANGE = range(21000, 30000)

_RABBITMQ_USER = "rabbitmq"
_RABBITMQ_HOME = "/var/lib/rabbitmq"
_SYSTEM_BIN_DIR = Path("/usr/lib/rabbitmq/bin")
_LOG_TAIL_LINES = 30
_MAX_ERROR_CHARS = 3000


class RabbitmqCtl(Protocol):
    """The type of the ``rabbitmqctl`` fixture and of :meth:`PrivateBrokerNode.ctl`."""

    def __call__(self, *args: str, timeout: float = 30.0) -> str: ...


class UniqueName(Protocol):
    """The type of the ``unique_name`` fixture."""

    def __call__(self, prefix: str = "t") -> str: ...


# ---------------------------------------------------------------------------
# Probing a broker


def amqp_url() -> str:
    """The shared broker's URL: ``$AMQP_URL``, or a broker on 127.0.0.1:5672."""
    return os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)


def broker_reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether an AMQP 0-9-1 broker answers at ``url``, within ``timeout`` seconds in all.

    Connects over TCP (TLS for ``amqps://``, without verifying the certificate), sends the
    protocol header and reads the beginning of the broker's answer: it must be a
    connection.start method frame. Then it hangs up, without logging in. A refused connection,
    a peer that never answers, a wrong answer or a closed connection all give ``False``.
    (Host name resolution is not covered by the timeout; tests use IP addresses or localhost.)
    """
    parts = urlsplit(url)
    tls = parts.scheme.lower() == "amqps"
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if tls else 5672)
    deadline = time.monotonic() + timeout
    try:
        sock = _connect(host, port, deadline)
    except OSError:
        return False
    try:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock.settimeout(_remaining(deadline))
            sock = context.wrap_socket(sock, server_hostname=host)
        sock.settimeout(_remaining(deadline))
        sock.sendall(PROTOCOL_HEADER)
        answer = b""
        while len(answer) < _START_PREFIX_SIZE:
            sock.settimeout(_remaining(deadline))
            chunk = sock.recv(_START_PREFIX_SIZE - len(answer))
            if not chunk:
                return False
            answer += chunk
    except OSError:  # including TimeoutError, from the socket or _remaining()
        return False
    finally:
        sock.close()
    method = (int.from_bytes(answer[7:9], "big"), int.from_bytes(answer[9:11], "big"))
    return answer[0] == _FRAME_METHOD and answer[1:3] == b"\x00\x00" and method == _CONNECTION_START


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection to the first address of ``host`` that accepts one before ``deadline``."""
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
        else:
            return sock
    raise error


def port_free(port: int) -> bool:
    """Whether nothing holds TCP ``port`` on 127.0.0.1 (checked by binding it for a moment)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (or the process just ended): trust kill()
    return stat.rpartition(")")[2].split()[0] != "Z"


# ---------------------------------------------------------------------------
# Running RabbitMQ's scripts


def rabbitmq_bin_dir() -> Path | None:
    """The directory of RabbitMQ's real scripts (not the Debian su wrapper), if installed."""
    candidates = [_SYSTEM_BIN_DIR]
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
    found = shutil.which("rabbitmq-server", path=path)
    if found:
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "rabbitmq-server").is_file() and (directory / "rabbitmqctl").is_file():
            return directory
    return None


def rabbitmq_installed() -> bool:
    """Whether rabbitmq-server (and rabbitmqctl) are installed on this machine."""
    return rabbitmq_bin_dir() is not None


def _require_bin_dir() -> Path:
    bin_dir = rabbitmq_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "rabbitmq-server is not installed on this machine (looked in "
            f"{_SYSTEM_BIN_DIR} and on PATH): install RabbitMQ, or point AMQP_URL at a broker"
        )
    return bin_dir


def _script_command(
    script: str, *args: str, env: Sequence[str] = (), open_files: int | None = None
) -> list[str]:
    """The command running one of RabbitMQ's scripts with ``env`` (``NAME=value`` strings).

    As root the script runs as the ``rabbitmq`` user with its home directory (and so its
    Erlang cookie), as the Debian wrapper would -- but unlike the wrapper, keeping ``env``.
    Any other user runs it as themselves, with their own home directory and cookie.
    ``open_files`` raises the script's soft limit of open files (``ulimit -n``) first: a
    node's socket limit is about 80% of it, and ``runuser`` resets it to the login default.
    """
    command = ["env", *env, str(_require_bin_dir() / script), *args]
    if os.geteuid() == 0:
        command[1:1] = [f"HOME={_RABBITMQ_HOME}"]
    if open_files is not None:
        command = ["sh", "-c", f'ulimit -n {int(open_files)} && exec "$@"', "sh", *command]
    if os.geteuid() == 0:
        return ["runuser", "-u", _RABBITMQ_USER, "--", *command]
    return command


def _script_cwd() -> str | None:
    """Run as root in the rabbitmq user's home: it may not be allowed into the current one."""
    return _RABBITMQ_HOME if os.geteuid() == 0 and os.path.isdir(_RABBITMQ_HOME) else None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_ERROR_CHARS else "..." + text[-_MAX_ERROR_CHARS:]


def _erl_call() -> Path | None:
    """Erlang's ``erl_call``, if installed."""
    found = shutil.which("erl_call") or shutil.which("erl_call", path="/usr/lib/erlang/bin")
    return Path(found) if found else None


def _squeeze(text: str) -> str:
    """An Erlang term as printed, without whitespace (erl_call and rabbitmqctl space it apart)."""
    return "".join(text.split())


def run_command(command: Sequence[str], *, timeout: float = 30.0, cwd: str | None = None) -> str:
    """Run ``command`` and return its stdout; a clear :class:`RuntimeError` if it fails.

    The command runs in its own process group, all killed if it outlives ``timeout`` seconds.
    """
    shown = shlex.join(command)
    try:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        raise RuntimeError(f"cannot run {shown}: {exc}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)
        raise RuntimeError(f"{shown} did not finish within {timeout:g} s (killed)") from None
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shown} failed with exit status {proc.returncode}:\n"
            + _shorten(stderr if stderr.strip() else stdout)
        )
    return stdout


def rabbitmqctl(*args: str, node: str | None = None, timeout: float = 30.0) -> str:
    """Run ``rabbitmqctl [-n node] args...`` on this machine; return its stdout.

    Without ``node``, it talks to the machine's default node (the shared broker).
    Raises :class:`RuntimeError` with rabbitmqctl's message if it fails or times out.
    """
    node_args = ("-n", node) if node else ()
    return run_command(
        _script_command("rabbitmqctl", *node_args, *args), timeout=timeout, cwd=_script_cwd()
    )


# ---------------------------------------------------------------------------
# Private nodes


def _pick_free_port() -> int:
    """A random port of :data:`PRIVATE_PORT_RANGE`, free together with its distribution port."""
    for _ in range(200):
        port = random.choice(PRIVATE_PORT_RANGE)
        if port_free(port) and port_free(port + DIST_PORT_OFFSET):
            return port
    raise RuntimeError(f"no free port pair in {PRIVATE_PORT_RANGE} for a private RabbitMQ node")


class PrivateBrokerNode:
    """A private RabbitMQ node on 127.0.0.1 with its own port, node name and data directory.

    For tests that hurt a broker: raise alarms, stop it, close all its connections. ::

        with PrivateBrokerNode() as node:
            node.ctl("set_vm_memory_high_watermark", "0")
            ...  # connect to node.url

    The node listens on ``port`` (AMQP) and ``port + 20000`` (Erlang distribution, used by
    rabbitmqctl), is named ``puka-test-<port>@localhost``, and keeps its configuration,
    database and logs in a fresh directory under /tmp. :meth:`stop` always cleans up: it
    stops the node -- or kills it -- and removes the directory. It is also registered with
    :mod:`atexit` while the node runs, in case the test run ends without stopping it.
    The usual ``guest``/``guest`` user works, from loopback only.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_config: str = "",
        plugins: Sequence[str] = (),
        open_files: int | None = None,
    ) -> None:
        """Choose the node's port (a random free one if ``port`` is None); start nothing.

        ``extra_config`` is appended to the node's ``rabbitmq.conf`` (say, a TLS listener);
        ``plugins`` are enabled at boot (say, ``rabbitmq_auth_mechanism_ssl``);
        ``open_files`` is the node's limit of open files (the login default, 1024 here,
        allows 832 sockets).
        """
        if port is not None and not 0 < port <= 65535 - DIST_PORT_OFFSET:
            raise ValueError(
                f"port {port} is impossible for a private node: it must be in 1-"
                f"{65535 - DIST_PORT_OFFSET}, the distribution port being port + {DIST_PORT_OFFSET}"
            )
        self._auto_port = port is None
        self._extra_config = extra_config
        self._plugins = tuple(plugins)
        self._open_files = open_files
        self._port = _pick_free_port() if port is None else port
        self._dir: Path | None = None
        self._pid: int | None = None
        self._launched = False
        #: How long the last :meth:`start` and :meth:`stop` took, in seconds.
        self.start_seconds: float | None = None
        self.stop_seconds: float | None = None

    # -- identity ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The node's AMQP port."""
        return self._port

    @property
    def dist_port(self) -> int:
        """The node's Erlang distribution port."""
        return self._port + DIST_PORT_OFFSET

    @property
    def nodename(self) -> str:
        """The Erlang node name, for ``rabbitmqctl -n``."""
        return f"puka-test-{self._port}@localhost"

    @property
    def url(self) -> str:
        """The AMQP URL of the node, as the guest user."""
        return f"amqp://guest:guest@127.0.0.1:{self._port}/"

    @property
    def data_dir(self) -> Path | None:
        """The node's directory (configuration, database, logs) while it exists."""
        return self._dir

    @property
    def pid(self) -> int | None:
        """The OS process id of the node's Erlang VM, once known."""
        return self._pid

    @property
    def running(self) -> bool:
        """Whether :meth:`start` was called and :meth:`stop` not yet."""
        return self._dir is not None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PrivateBrokerNode {self.nodename} port={self._port} {state}>"

    # -- control -----------------------------------------------------------------------

    def ctl(self, *args: str, timeout: float = 30.0) -> str:
        """Run ``rabbitmqctl -n <nodename> args...``; return stdout, RuntimeError on failure."""
        return rabbitmqctl(*args, node=self.nodename, timeout=timeout)

    def eval(self, expression: str, timeout: float = 30.0) -> str:
        """Evaluate an Erlang expression (ending with ``.``) on the node; its value as text.

        Uses ``erl_call`` when Erlang ships it (milliseconds), else ``rabbitmqctl eval`` (about
        a second: it boots a VM each time). Whitespace is removed from the value, so that both
        print the same text: ``[]``, ``{ok,0.4}``, ``true``. RuntimeError if it fails.
        """
        erl_call = _erl_call()
        if erl_call is None:
            return _squeeze(self.ctl("eval", expression, timeout=timeout))
        command = [str(erl_call), "-sname", self.nodename, "-e"]
        if os.geteuid() == 0:  # as the node's user: erl_call reads its Erlang cookie
            command = ["runuser", "-u", _RABBITMQ_USER, "--", "env", f"HOME={_RABBITMQ_HOME}"]
            command += [str(erl_call), "-sname", self.nodename, "-e"]
        try:
            proc = subprocess.run(
                command,
                input=expression + "\n",
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=_script_cwd(),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"erl_call on {self.nodename} failed: {exc}") from exc
        value = _squeeze(proc.stdout)
        if proc.returncode != 0 or not value.startswith("{ok,"):
            raise RuntimeError(
                f"erl_call on {self.nodename} failed ({proc.returncode}) for {expression!r}: "
                + _shorten(proc.stderr or proc.stdout)
            )
        return value.removeprefix("{ok,").removesuffix("}")

    def start(self, timeout: float = 60.0) -> None:
        """Start the node; return once it has booted and its AMQP port answers.

        Raises :class:`RuntimeError` (after cleaning up) if RabbitMQ is not installed, the
        port is taken, or the node does not come up within ``timeout`` seconds.
        """
        if self._dir is not None:
            raise RuntimeError(f"{self!r} is already started")
        bin_dir = _require_bin_dir()
        if not (port_free(self._port) and port_free(self.dist_port)):
            if not self._auto_port:
                raise RuntimeError(
                    f"cannot start a private RabbitMQ node on port {self._port}: "
                    f"port {self._port} or {self.dist_port} is in use"
                )
            self._port = _pick_free_port()
        began = time.monotonic()
        deadline = began + timeout
        self._dir = Path(tempfile.mkdtemp(prefix=f"puka-test-{self._port}-", dir="/tmp"))
        atexit.register(self.stop)
        try:
            self._prepare_dir()
            self._launch(bin_dir, deadline)
            self._wait_until_booted(deadline)
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node and remove its directory; does nothing if it is not running.

        Asks the node to stop (``rabbitmqctl stop``, waiting up to ``timeout`` seconds) and
        waits for its Erlang VM to exit; if that fails, kills the VM found by the pid file
        (SIGTERM, then SIGKILL). The directory is removed in every case. Raises
        :class:`RuntimeError` only if the VM survives SIGKILL.
        """
        if self._dir is None:
            return
        began = time.monotonic()
        survivor: int | None = None
        try:
            pid = self._read_pid()
            if pid is None and self._launched:
                pid = self._wait_for_pid_file(time.monotonic() + 5)
            asked = False
            if self._launched and (pid is None or process_alive(pid)):
                with contextlib.suppress(RuntimeError):
                    self.ctl("stop", timeout=timeout)
                    asked = True
            if pid is not None and process_alive(pid):
                exited = asked and self._wait_for_exit(pid, time.monotonic() + 10)
                if not exited and not self._kill(pid):
                    survivor = pid
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._pid = None
            self._launched = False
            atexit.unregister(self.stop)
            self.stop_seconds = time.monotonic() - began
        if survivor is not None:
            raise RuntimeError(f"RabbitMQ node {self.nodename} (pid {survivor}) survived SIGKILL")

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM, as a crash would: no goodbye to its clients or peers.

        Its directory (database, queues' data, logs) is kept: :meth:`restart` boots it again.
        """
        pid = self._read_pid()
        if self._dir is None or pid is None:
            raise RuntimeError(f"{self!r} is not running: nothing to kill")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_for_exit(pid, time.monotonic() + 10):
            raise RuntimeError(f"RabbitMQ node {self.nodename} (pid {pid}) survived SIGKILL")
        self._pid = None
        with contextlib.suppress(OSError):
            self._path("pid").unlink()

    def restart(self, timeout: float = 90.0) -> None:
        """Boot a killed node again on its own directory; return once its AMQP port answers."""
        if self._dir is None:
            raise RuntimeError(f"{self!r} was stopped (its directory is gone): start() it")
        pid = self._read_pid()
        if pid is not None and process_alive(pid):
            raise RuntimeError(f"{self!r} is running (pid {pid}): kill() it first")
        began = time.monotonic()
        deadline = began + timeout
        self._launch(_require_bin_dir(), deadline)
        self._wait_until_booted(deadline)
        self.start_seconds = time.monotonic() - began

    def __enter__(self) -> PrivateBrokerNode:
        """Start the node unless it runs already."""
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the node."""
        self.stop()

    # -- internals ---------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        assert self._dir is not None
        return self._dir / name

    def _prepare_dir(self) -> None:
        """Write the node's own configuration, replacing the machine's (/etc/rabbitmq)."""
        self._path("enabled_plugins").write_text(f"[{','.join(self._plugins)}].\n")
        self._path("rabbitmq.conf").write_text(
            # The machine's rabbitmq.conf may pin listeners to 5672: never read it.
            f"listeners.tcp.local = 127.0.0.1:{self._port}\n"
            + (self._extra_config.rstrip("\n") + "\n" if self._extra_config else "")
        )
        if os.geteuid() == 0:
            assert self._dir is not None
            for path in [self._dir, *self._dir.iterdir()]:
                shutil.chown(path, _RABBITMQ_USER, _RABBITMQ_USER)

    def _launch(self, bin_dir: Path, deadline: float) -> None:
        """Run ``rabbitmq-server -detached``, which returns once the VM is spawned."""
        env = [
            f"RABBITMQ_NODENAME={self.nodename}",
            f"RABBITMQ_NODE_PORT={self._port}",
            f"RABBITMQ_DIST_PORT={self.dist_port}",
            f"RABBITMQ_CONFIG_FILE={self._path('rabbitmq.conf')}",
            f"RABBITMQ_ADVANCED_CONFIG_FILE={self._path('advanced.config')}",
            f"RABBITMQ_MNESIA_BASE={self._path('mnesia')}",
            f"RABBITMQ_LOG_BASE={self._path('log')}",
            f"RABBITMQ_ENABLED_PLUGINS_FILE={self._path('enabled_plugins')}",
            f"RABBITMQ_PID_FILE={self._path('pid')}",
        ]
        command = _script_command(
            "rabbitmq-server", "-detached", env=env, open_files=self._open_files
        )
        # Output to a file, not a pipe: the detached VM must not hold a pipe of ours open.
        with self._path("launcher.log").open("wb") as output:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=_script_cwd(),
                start_new_session=True,
            )
        self._launched = True
        try:
            status = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            raise RuntimeError(self._failure("rabbitmq-server -detached did not return")) from None
        if status != 0:
            raise RuntimeError(self._failure(f"rabbitmq-server exited with status {status}"))

    def _wait_until_booted(self, deadline: float) -> None:
        """Wait for the AMQP port to answer, then for ``rabbitmqctl await_startup``."""
        while not broker_reachable(self.url, timeout=min(1.0, max(deadline - time.monotonic(), 0))):
            pid = self._read_pid()
            if pid is not None and not process_alive(pid):
                raise RuntimeError(self._failure("the node stopped while booting"))
            if time.monotonic() >= deadline:
                raise RuntimeError(self._failure("the node's AMQP port did not answer in time"))
            time.sleep(0.1)
        remaining = max(deadline - time.monotonic(), 1.0)
        self.ctl("await_startup", "--timeout", str(int(remaining) + 1), timeout=remaining + 5)
        if self._read_pid() is None:
            raise RuntimeError(self._failure("the node booted but wrote no pid file"))

    def _read_pid(self) -> int | None:
        if self._pid is None and self._dir is not None:
            with contextlib.suppress(OSError, ValueError):
                self._pid = int(self._path("pid").read_text().strip())
        return self._pid

    def _wait_for_pid_file(self, deadline: float) -> int | None:
        while (pid := self._read_pid()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return pid

    @staticmethod
    def _wait_for_exit(pid: int, deadline: float) -> bool:
        while process_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _kill(self, pid: int) -> bool:
        """SIGTERM (graceful for an Erlang VM), then SIGKILL; whether the process is gone."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                os.kill(pid, signal.SIGCONT)  # a stopped process handles SIGTERM only when resumed
            if self._wait_for_exit(pid, time.monotonic() + grace):
                return True
        return False

    def _failure(self, what: str) -> str:
        """``what``, with the end of the node's logs, for an exception message."""
        lines = [f"private RabbitMQ node {self.nodename} failed to start: {what}"]
        logs = [self._path("launcher.log"), self._path("log") / f"{self.nodename}.log"]
        for log in logs:
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
                if tail:
                    lines += [f"--- last lines of {log.name}:", *tail]
        return "\n".join(lines)
