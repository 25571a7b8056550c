"""A private RabbitMQ cluster on loopback, for the failover tests in ``tests/cluster/``.

:class:`PrivateCluster` starts three (or more) :class:`~tests.broker_node.PrivateBrokerNode`
nodes at once, each with its own node name, AMQP port, distribution port and data directory,
then clusters them the way an operator would: ``stop_app``, ``join_cluster <first node>``,
``start_app`` on every node but the first. The nodes run as the ``rabbitmq`` user with
``HOME=/var/lib/rabbitmq`` and so share that user's Erlang cookie, which is what lets them
(and rabbitmqctl) talk to each other. The shared broker at 5672 is never touched.

Scenarios stop a node's RabbitMQ application (:meth:`PrivateCluster.stop_app`: the Erlang VM
stays up, the AMQP listener goes away, clients are disconnected with 320 CONNECTION_FORCED) or
kill its Erlang VM (:meth:`PrivateCluster.kill`: SIGKILL, a crash; its clients' sockets just
close), and :meth:`PrivateCluster.heal` starts every stopped or killed one again, so the next scenario begins with a
healthy cluster. :meth:`PrivateCluster.stop` tears everything down and removes the data
directories; it is also registered with :mod:`atexit` by each node.

This module has no pytest dependency; the fixtures built on it are in
``tests/cluster/conftest.py``.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from tests.broker_node import PrivateBrokerNode, broker_reachable

__all__ = ["PrivateCluster"]


def _in_parallel(functions: Sequence[Callable[[], Any]]) -> None:
    """Run each function in a thread of its own; re-raise the first error once all are done."""
    errors: list[BaseException] = []

    def run(function: Callable[[], Any]) -> None:
        try:
            function()
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,), daemon=True) for f in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class PrivateCluster:
    """A RabbitMQ cluster of ``size`` private nodes on 127.0.0.1. ::

    with PrivateCluster() as cluster:
        client = puka.Client(cluster.urls, reconnect=True)
        ...
        cluster.stop_app(cluster.nodes[0])
        ...
        cluster.heal()
    """

    def __init__(self, size: int = 3) -> None:
        if size < 2:
            raise ValueError("a cluster has at least two nodes")
        nodes: list[PrivateBrokerNode] = []
        while len(nodes) < size:
            node = PrivateBrokerNode()
            if all(node.port != other.port for other in nodes):
                nodes.append(node)
        self.nodes = nodes
        #: Nodes whose RabbitMQ application is stopped, or whose VM was killed, in the order
        #: it happened.
        self.stopped: list[PrivateBrokerNode] = []
        #: Those of :attr:`stopped` that were killed (SIGKILL), not stopped.
        self.killed: list[PrivateBrokerNode] = []
        #: How long :meth:`start` took, in seconds.
        self.start_seconds: float | None = None

    # -- identity ----------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The AMQP URL of every node, first node first."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """The nodes' URLs in one comma-separated string (what ``--url``/``AMQP_URL`` take)."""
        return ",".join(self.urls)

    def node_by_port(self, port: int) -> PrivateBrokerNode:
        """The node listening on AMQP ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(f"no node of the cluster listens on port {port}")

    def __repr__(self) -> str:
        return f"<PrivateCluster {[node.nodename for node in self.nodes]}>"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> None:
        """Start every node at once, then join the others to the first; stop all on failure."""
        began = time.monotonic()
        try:
            _in_parallel([functools.partial(node.start, timeout=timeout) for node in self.nodes])
            seed = self.nodes[0].nodename
            for node in self.nodes[1:]:
                node.ctl("stop_app", timeout=timeout)
                node.ctl("join_cluster", seed, timeout=timeout)
                node.ctl("start_app", timeout=timeout)
            self.wait_until_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop every node (at once) and remove their directories; nothing is left running."""
        self.stopped.clear()
        self.killed.clear()
        _in_parallel([node.stop for node in self.nodes])

    def __enter__(self) -> PrivateCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- inspecting --------------------------------------------------------------------

    def running_nodes(self, via: PrivateBrokerNode | None = None) -> list[str]:
        """The names of the cluster's running nodes, as ``via`` (a running node) sees them."""
        asked = via or next(node for node in self.nodes if node not in self.stopped)
        status = json.loads(asked.ctl("cluster_status", "--formatter", "json"))
        return sorted(status["running_nodes"])

    def wait_until_healthy(self, timeout: float = 60.0) -> None:
        """Wait until every node runs RabbitMQ, answers AMQP and sees all the others."""
        deadline = time.monotonic() + timeout
        expected = sorted(node.nodename for node in self.nodes)
        while True:
            seen = self.running_nodes(self.nodes[0])
            if seen == expected and all(broker_reachable(n.url, timeout=1.0) for n in self.nodes):
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(f"the cluster is not healthy: running nodes {seen}")
            time.sleep(0.2)

    def queue_leader(self, queue: str, vhost: str = "/") -> PrivateBrokerNode:
        """The node holding the leader of quorum queue ``queue``."""
        via = next(node for node in self.nodes if node not in self.stopped)
        rows = json.loads(
            via.ctl("list_queues", "-p", vhost, "name", "leader", "--formatter", "json")
        )
        for row in rows:
            if row["name"] == queue:
                for node in self.nodes:
                    if node.nodename == row["leader"]:
                        return node
                raise RuntimeError(f"queue {queue!r} has its leader on {row['leader']!r}")
        raise RuntimeError(f"no queue {queue!r} on the cluster")

    # -- hurting it --------------------------------------------------------------------

    def stop_app(self, node: PrivateBrokerNode) -> None:
        """Stop RabbitMQ on ``node`` (its Erlang VM keeps running); its clients are cut.

        Returns once the running nodes know it stopped: a node stopped later then knows it
        was the last one, and may start again alone (RabbitMQ makes a node that was not the
        last to stop wait for its peers when it starts).
        """
        self.stopped.append(node)
        node.ctl("stop_app", timeout=60)
        self._wait_until_gone(node)

    def kill(self, node: PrivateBrokerNode) -> None:
        """SIGKILL ``node``'s Erlang VM (a crash: its clients and peers get no goodbye).

        Returns once the running nodes know it is gone.
        """
        self.stopped.append(node)
        self.killed.append(node)
        node.kill()
        self._wait_until_gone(node)

    def _wait_until_gone(self, node: PrivateBrokerNode) -> None:
        running = [other for other in self.nodes if other not in self.stopped]
        if running:
            deadline = time.monotonic() + 30
            while node.nodename in self.running_nodes(running[0]):
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"{running[0].nodename} still sees {node.nodename} run")
                time.sleep(0.1)

    def start_app(self, node: PrivateBrokerNode) -> None:
        """Start RabbitMQ on a stopped (or killed) ``node`` again; returns once it answers AMQP."""
        if node in self.killed:
            node.restart()
            self.killed.remove(node)
        else:
            node.ctl("start_app", timeout=90)
        node.ctl("await_startup", "--timeout", "60", timeout=70)
        if node in self.stopped:
            self.stopped.remove(node)

    def heal(self, timeout: float = 90.0) -> None:
        """Start every stopped (or killed) node again (at once) and wait for a healthy
        cluster."""
        stopped = list(self.stopped)
        if stopped:
            _in_parallel([functools.partial(self.start_app, node) for node in stopped])
        self.wait_until_healthy(timeout=timeout)
