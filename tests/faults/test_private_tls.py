"""Issue 7 row F18: TLS, on a private node of its own with a TLS listener.

The module's fixture makes a CA, a server certificate for ``localhost`` and a client
certificate (openssl), and starts a private node with a TLS listener on 127.0.0.1 and the
EXTERNAL mechanism (``rabbitmq_auth_mechanism_ssl``, when RabbitMQ ships it). Then, for each
client: the default context with that CA connects over ``amqps://``; a host name that is not
in the certificate and a CA that did not sign it fail with ``ssl.SSLCertVerificationError``;
TLS to the plain AMQP port fails in under 1 s; EXTERNAL logs in with the client certificate and
is refused (403) without one.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import anyio
import puka
import puka_anyio
import puka_asyncio
import pytest

from tests.broker_node import PrivateBrokerNode, rabbitmq_bin_dir, rabbitmq_installed
from tests.faults.private_helpers import DRIVERS, close_quietly, record, run_async
from tests.integration.styles import ANYIO_BACKENDS

EXTERNAL_USER = "puka-test-f18-external"
SSL_PLUGIN = "rabbitmq_auth_mechanism_ssl"


@dataclass(frozen=True)
class TLSNode:
    """The TLS-enabled private node and the files of its certificates."""

    node: PrivateBrokerNode
    tls_port: int
    ca: Path
    other_ca: Path
    client_cert: Path
    client_key: Path
    external: bool  # EXTERNAL is available (the plugin is shipped)

    def url(self, host: str = "localhost", query: str = "", user: str = "guest:guest@") -> str:
        return f"amqps://{user}{host}:{self.tls_port}/{'?' + query if query else ''}"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=Puka test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=directory,
    )  # fmt: skip


def _make_leaf(directory: Path, name: str, cn: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n" + extensions
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plugin_shipped() -> bool:
    bin_dir = rabbitmq_bin_dir()
    if bin_dir is None:
        return False
    root = bin_dir.parent  # /usr/lib/rabbitmq: plugins in lib/rabbitmq_server-*/plugins
    candidates = [*root.glob("plugins/*"), *root.glob("lib/*/plugins/*")]
    return any(path.name.startswith(SSL_PLUGIN) for path in candidates)


def _unavailable(reason: str) -> NoReturn:
    """Skip for missing infrastructure -- or fail under CI, where it is a bug (as conftest)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: missing infrastructure is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tls_node() -> Iterator[TLSNode]:
    """A private node with a TLS listener (and EXTERNAL), and its certificates."""
    if not rabbitmq_installed():
        _unavailable("rabbitmq-server is not installed: no private broker node")
    if shutil.which("openssl") is None:
        _unavailable("the openssl command is not installed: cannot make certificates")
    directory = Path(tempfile.mkdtemp(prefix="puka-test-tls-"))
    try:
        _make_ca(directory, "ca")
        _make_ca(directory, "other-ca")
        _make_leaf(
            directory,
            "server",
            "localhost",
            "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        _make_leaf(directory, "client", EXTERNAL_USER, "extendedKeyUsage=clientAuth\n")
        # the node runs as the rabbitmq user: it must read the files (test keys only)
        directory.chmod(0o755)
        for path in directory.iterdir():
            path.chmod(0o644)
        external = _plugin_shipped()
        tls_port = _free_port()
        config = (
            f"listeners.ssl.default = 127.0.0.1:{tls_port}\n"
            f"ssl_options.cacertfile = {directory / 'ca.pem'}\n"
            f"ssl_options.certfile = {directory / 'server.pem'}\n"
            f"ssl_options.keyfile = {directory / 'server.key'}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
        )
        if external:
            config += (
                "auth_mechanisms.1 = PLAIN\n"
                "auth_mechanisms.2 = EXTERNAL\n"
                "ssl_cert_login_from = common_name\n"
            )
        node = PrivateBrokerNode(extra_config=config, plugins=[SSL_PLUGIN] if external else [])
        with node:
            if external:
                node.eval(
                    f'rabbit_auth_backend_internal:add_user(<<"{EXTERNAL_USER}">>,'
                    ' <<"unused-password">>, <<"test">>),'
                    f' rabbit_auth_backend_internal:set_permissions(<<"{EXTERNAL_USER}">>,'
                    ' <<"/">>, <<".*">>, <<".*">>, <<".*">>, <<"test">>).'
                )
            yield TLSNode(
                node=node,
                tls_port=tls_port,
                ca=directory / "ca.pem",
                other_ca=directory / "other-ca.pem",
                client_cert=directory / "client.pem",
                client_key=directory / "client.key",
                external=external,
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


@pytest.mark.parametrize("driver", [*DRIVERS, *ANYIO_BACKENDS])
def test_f18_tls(driver: str, tls_node: TLSNode) -> None:
    began = time.monotonic()
    if driver == "blocking":
        figures = _f18_blocking(tls_node)
    elif driver in ANYIO_BACKENDS:
        figures = anyio.run(_f18_anyio, tls_node, backend=ANYIO_BACKENDS[driver])
    else:
        figures = run_async(lambda: _f18_asyncio(tls_node), 30)
    assert figures["tls_to_plain_port_seconds"] < 1.0
    record("F18", driver, **figures, seconds=round(time.monotonic() - began, 3))


@pytest.mark.parametrize("driver", DRIVERS)
def test_f18_tls_external(driver: str, tls_node: TLSNode) -> None:
    """EXTERNAL: the client certificate logs in; without one, 403."""
    if not tls_node.external:
        pytest.skip(f"{SSL_PLUGIN} is not shipped with this RabbitMQ: no EXTERNAL mechanism")
    began = time.monotonic()
    if driver == "blocking":
        figures = _f18_external_blocking(tls_node)
    else:
        figures = run_async(lambda: _f18_external_asyncio(tls_node), 30)
    record("F18-external", driver, **figures, seconds=round(time.monotonic() - began, 3))


def _blocking_connect(url: str, **kwargs: Any) -> puka.Client:
    client = puka.Client(url, **kwargs)
    try:
        client.wait(client.connect(), timeout=5)
    except BaseException:
        close_quietly(client)
        raise
    return client


def _roundtrip_blocking(client: puka.Client) -> None:
    queue = client.wait(client.queue_declare(exclusive=True), timeout=5)["queue"]  # type: ignore[index]
    client.wait(client.basic_publish("", queue, body=b"over TLS"), timeout=5)
    got = client.wait(client.basic_get(queue, no_ack=True), timeout=5)
    assert got is not None and got["body"] == b"over TLS"


def _f18_blocking(tls: TLSNode) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    # the default context with our CA, given as a context and as the URL's cacertfile
    for client in (
        _blocking_connect(tls.url(), ssl=_context(tls.ca)),
        _blocking_connect(tls.url(query=f"cacertfile={tls.ca}")),
    ):
        try:
            assert isinstance(client.socket(), ssl.SSLSocket)
            _roundtrip_blocking(client)
        finally:
            close_quietly(client)
    figures["connected"] = 2
    # a host name the certificate does not name
    began = time.monotonic()
    with pytest.raises(ssl.SSLCertVerificationError) as mismatch:
        _blocking_connect(tls.url(host="127.0.0.1"), ssl=_context(tls.ca))
    assert "match" in str(mismatch.value).lower() or "hostname" in str(mismatch.value).lower()
    assert isinstance(mismatch.value, puka.ConnectFailed)
    figures["hostname_mismatch_seconds"] = round(time.monotonic() - began, 3)
    # a CA that did not sign it
    with pytest.raises(ssl.SSLCertVerificationError) as wrong_ca:
        _blocking_connect(tls.url(query=f"cacertfile={tls.other_ca}"))
    assert "certificate" in str(wrong_ca.value).lower()
    # TLS to the plain AMQP port
    began = time.monotonic()
    with pytest.raises(puka.ConnectFailed) as plain:
        _blocking_connect(
            f"amqps://guest:guest@localhost:{tls.node.port}/",
            ssl=_context(tls.ca),
            connection_timeout=5,
        )
    figures["tls_to_plain_port_seconds"] = round(time.monotonic() - began, 3)
    assert not isinstance(plain.value, ssl.SSLCertVerificationError)
    return figures


def _f18_external_blocking(tls: TLSNode) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    query = f"auth_mechanism=external&cacertfile={tls.ca}"
    client = _blocking_connect(
        tls.url(user="", query=f"{query}&certfile={tls.client_cert}&keyfile={tls.client_key}")
    )
    try:
        _roundtrip_blocking(client)
    finally:
        close_quietly(client)
    with pytest.raises(puka.AccessRefused) as refused:
        _blocking_connect(tls.url(user="", query=query))
    assert refused.value.reply_code == 403
    figures["external"] = "cert ok, no cert 403"
    return figures


async def _f18_asyncio(tls: TLSNode) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for url, kwargs in (
        (tls.url(), {"ssl": _context(tls.ca)}),
        (tls.url(query=f"cacertfile={tls.ca}"), {}),
    ):
        async with await puka_asyncio.connect(url, **kwargs) as client:
            queue = (await client.queue_declare(exclusive=True))["queue"]
            await client.basic_publish("", queue, body=b"over TLS")
            got = await client.basic_get(queue, no_ack=True)
            assert got["body"] == b"over TLS"
    figures["connected"] = 2
    began = time.monotonic()
    with pytest.raises(ssl.SSLCertVerificationError) as mismatch:
        await puka_asyncio.connect(tls.url(host="127.0.0.1"), ssl=_context(tls.ca))
    assert "match" in str(mismatch.value).lower() or "hostname" in str(mismatch.value).lower()
    assert isinstance(mismatch.value, puka.ConnectFailed)
    figures["hostname_mismatch_seconds"] = round(time.monotonic() - began, 3)
    with pytest.raises(ssl.SSLCertVerificationError) as wrong_ca:
        await puka_asyncio.connect(tls.url(query=f"cacertfile={tls.other_ca}"))
    assert "certificate" in str(wrong_ca.value).lower()
    began = time.monotonic()
    with pytest.raises(puka.ConnectFailed) as plain:
        await puka_asyncio.connect(
            f"amqps://guest:guest@localhost:{tls.node.port}/",
            ssl=_context(tls.ca),
            connection_timeout=5,
        )
    figures["tls_to_plain_port_seconds"] = round(time.monotonic() - began, 3)
    assert not isinstance(plain.value, ssl.SSLCertVerificationError)
    return figures


async def _f18_anyio(tls: TLSNode) -> dict[str, Any]:
    """`_f18_asyncio`'s checks, with puka-anyio (on trio or asyncio)."""
    figures: dict[str, Any] = {}
    with anyio.fail_after(30):
        for url, kwargs in (
            (tls.url(), {"ssl": _context(tls.ca)}),
            (tls.url(query=f"cacertfile={tls.ca}"), {}),
        ):
            async with puka_anyio.connect(url, **kwargs) as client:
                queue = (await client.queue_declare(exclusive=True))["queue"]
                await client.basic_publish("", queue, body=b"over TLS")
                assert (await client.basic_get(queue, no_ack=True))["body"] == b"over TLS"
        figures["connected"] = 2
        began = time.monotonic()
        with pytest.raises(ssl.SSLCertVerificationError) as mismatch:
            async with puka_anyio.connect(tls.url(host="127.0.0.1"), ssl=_context(tls.ca)):
                pass
        text = str(mismatch.value).lower()
        assert "match" in text or "hostname" in text
        assert isinstance(mismatch.value, puka.ConnectFailed)
        figures["hostname_mismatch_seconds"] = round(time.monotonic() - began, 3)
        with pytest.raises(ssl.SSLCertVerificationError) as wrong_ca:
            async with puka_anyio.connect(tls.url(query=f"cacertfile={tls.other_ca}")):
                pass
        assert "certificate" in str(wrong_ca.value).lower()
        began = time.monotonic()
        with pytest.raises(puka.ConnectFailed) as plain:
            async with puka_anyio.connect(
                f"amqps://guest:guest@localhost:{tls.node.port}/",
                ssl=_context(tls.ca),
                connection_timeout=5,
            ):
                pass
        figures["tls_to_plain_port_seconds"] = round(time.monotonic() - began, 3)
        assert not isinstance(plain.value, ssl.SSLCertVerificationError)
    return figures


async def _f18_external_asyncio(tls: TLSNode) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    query = f"auth_mechanism=external&cacertfile={tls.ca}"
    url = tls.url(user="", query=f"{query}&certfile={tls.client_cert}&keyfile={tls.client_key}")
    async with await puka_asyncio.connect(url) as client:
        queue = (await client.queue_declare(exclusive=True))["queue"]
        await client.basic_publish("", queue, body=b"over TLS")
        assert (await client.basic_get(queue, no_ack=True))["body"] == b"over TLS"
    with pytest.raises(puka.AccessRefused) as refused:
        await puka_asyncio.connect(tls.url(user="", query=query))
    assert refused.value.reply_code == 403
    figures["external"] = "cert ok, no cert 403"
    return figures
