"""`puka ping`: connect, say who answered and how fast."""

from __future__ import annotations

import time
from typing import Any

from puka_cli.context import Context
from puka_cli.options import add_common, positive_int

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add `ping` to the command line."""
    parser = add_common(
        subparsers,
        "ping",
        help="check that the broker answers: connect, time a few round trips",
        epilog="Exit status 0 if it answers, 69 if it is unreachable, 77 if access is refused."
        "\n\nexample:\n  puka ping -u amqps://user:pass@rabbit.example.com/ -c 5",
    )
    parser.add_argument(
        "-c",
        "--count",
        type=positive_int,
        default=3,
        metavar="N",
        help="round trips to time after connecting (default: 3)",
    )
    parser.set_defaults(func=run)


def run(ctx: Context) -> int:
    """Connect and time round trips (a passive declare of amq.direct)."""
    started = time.perf_counter()
    with ctx.connected() as client:
        connect_ms = (time.perf_counter() - started) * 1000
        trips = []
        for _ in range(ctx.args.count):
            begin = time.perf_counter()
            client.wait(client.exchange_declare(exchange="amq.direct", passive=True))
            trips.append((time.perf_counter() - begin) * 1000)
        server = client.server_properties
        url = client.params.replace(connection_name=None).redacted_url()
    product = str(server.get("product", "?"))
    version = str(server.get("version", "?"))
    data = {
        "url": url,
        "product": product,
        "version": version,
        "connect_ms": round(connect_ms, 3),
        "round_trip_ms": {
            "min": round(min(trips), 3),
            "avg": round(sum(trips) / len(trips), 3),
            "max": round(max(trips), 3),
        },
    }
    ctx.output.result(
        data,
        f"{product} {version} at {url}: connected in {connect_ms:.1f} ms, round trip "
        f"min/avg/max {min(trips):.2f}/{sum(trips) / len(trips):.2f}/{max(trips):.2f} ms",
    )
    return 0
