"""The AMQP handshake: what we answer to the broker's connection.start and connection.tune.

Pure functions of the connection parameters and the broker's methods; the engine sends what
they return (the handshake's states are rows of `connection_states`).
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from puka_spec import methods
from puka_spec.constants import FRAME_MIN_SIZE
from puka_spec.exceptions import AccessRefused, UnexpectedFrame

from puka.__about__ import __version__

if TYPE_CHECKING:
    from puka.urls import ConnectionParameters

__all__ = ["client_properties", "shared_server_properties", "start_ok", "tune_ok"]

_SERVER_PROPERTIES_SEEN: list[dict[str, Any]] = []
"""The distinct server properties received lately (`shared_server_properties`), newest last."""
_SERVER_PROPERTIES_KEPT = 8

_CLIENT_CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


def shared_server_properties(props: dict[str, Any]) -> dict[str, Any]:
    """`props` (connection.start's server properties), or an equal dict received before.

    Every connection to one broker, or to the nodes of one cluster, receives the same
    properties: they then hold one copy, not about 1.7 KB each. The dict is shared, so it is
    never changed; `Calls.server_properties` and the connect result hand out copies.
    """
    seen = _SERVER_PROPERTIES_SEEN
    known: dict[str, Any]
    for known in reversed(seen):
        if known == props:
            return known
    seen.append(props)
    if len(seen) > _SERVER_PROPERTIES_KEPT:
        del seen[0]
    return props


def client_properties(params: ConnectionParameters, extra: dict[str, Any] | None) -> dict[str, Any]:
    """The client properties of connection.start-ok: Puka's, with `extra` over them."""
    props: dict[str, Any] = {
        "product": "Puka",
        "version": __version__,
        "platform": f"Python {platform.python_version()}",
        "information": "https://github.com/puka-amqp/puka",
        "capabilities": dict(_CLIENT_CAPABILITIES),
    }
    if params.connection_name:
        props["connection_name"] = params.connection_name
    if extra:
        props.update(extra)
    return props


def start_ok(
    params: ConnectionParameters, start: methods.ConnectionStart, properties: dict[str, Any]
) -> methods.ConnectionStartOk | AccessRefused:
    """Our answer to connection.start, or the error if the broker does not offer our
    mechanism (PLAIN with the URL's credentials, or EXTERNAL: the TLS client certificate)."""
    offered = start.mechanisms.decode("utf-8", "replace").split()
    mechanism = params.auth_mechanism
    if mechanism not in offered:
        return AccessRefused(
            f"the broker does not offer the {mechanism} mechanism (it offers "
            f"{', '.join(offered) or 'none'})"
        )
    if mechanism == "PLAIN":
        response = b"\0" + params.username.encode() + b"\0" + params.password.encode()
    else:  # EXTERNAL: the TLS client certificate is the identity
        response = b""
    return methods.ConnectionStartOk(
        client_properties=properties, mechanism=mechanism, response=response, locale="en_US"
    )


def tune_ok(
    params: ConnectionParameters, tune: methods.ConnectionTune, max_message_size: int
) -> methods.ConnectionTuneOk:
    """What we settle on from the broker's connection.tune and our parameters: channel_max,
    frame_max (never above what our largest message needs) and the heartbeat interval."""
    if 0 < tune.frame_max < FRAME_MIN_SIZE:
        raise UnexpectedFrame(
            f"the broker proposed frame_max {tune.frame_max}, below the minimum 4096"
        )
    channel_max = min(_negotiate(params.channel_max, tune.channel_max) or 65535, 65535)
    frame_max = _negotiate(params.frame_max, tune.frame_max) or 131072
    # No frame needs to be larger than the largest message: this bounds the read buffer
    # (one partial frame) whatever frame_max a hostile broker proposes.
    frame_max = min(frame_max, max(FRAME_MIN_SIZE, max_message_size + 8))
    if params.heartbeat is None:
        heartbeat = tune.heartbeat
    elif params.heartbeat == 0 or tune.heartbeat == 0:
        heartbeat = params.heartbeat
    else:
        heartbeat = min(params.heartbeat, tune.heartbeat)
    return methods.ConnectionTuneOk(
        channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat
    )


def _negotiate(ours: int, theirs: int) -> int:
    """Channel-max and frame-max: 0 means no limit, otherwise the smaller wins."""
    if ours == 0 or theirs == 0:
        return max(ours, theirs)
    return min(ours, theirs)
