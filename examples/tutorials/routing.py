"""Tutorial 4, "Routing": subscribe to a subset of the messages (a direct exchange).

Log messages are published with their severity as the routing key. One subscriber binds its
queue with `error` only (to write errors to disk), the other with all three severities (to
print everything). Both consumes run on one client: each consume is a promise of its own.

    python examples/tutorials/routing.py              # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import uuid

import puka

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
EXCHANGE = f"direct_logs-{uuid.uuid4().hex[:8]}"  # the tutorial calls it "direct_logs"
LOGS = [
    ("info", "Starting up"),
    ("warning", "Disk 81% full"),
    ("error", "Cannot write /var/log/app.log"),
    ("info", "Shutting down"),
]


# --8<-- [start:emit_log_direct]
def emit_log_direct(client: puka.Client, logs: list[tuple[str, str]]) -> None:
    client.wait(client.exchange_declare(exchange=EXCHANGE, type="direct"))
    promises = [
        client.basic_publish(exchange=EXCHANGE, routing_key=severity, body=text)
        for severity, text in logs
    ]
    client.wait_for_all(promises)
    for severity, text in logs:
        print(f" [x] Sent {severity}: {text!r}")


# --8<-- [end:emit_log_direct]


# --8<-- [start:subscribe]
def subscribe(client: puka.Client, severities: list[str]) -> int:
    """Declare a queue, bind it once per severity; return the consume promise."""
    client.wait(client.exchange_declare(exchange=EXCHANGE, type="direct"))
    queue = client.wait(client.queue_declare(exclusive=True))["queue"]
    bindings = [
        client.queue_bind(queue=queue, exchange=EXCHANGE, routing_key=severity)
        for severity in severities
    ]
    client.wait_for_all(bindings)  # three bindings in flight at once
    return client.basic_consume(queue=queue, no_ack=True)


# --8<-- [end:subscribe]


def main() -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())
    try:
        # --8<-- [start:main]
        to_disk = subscribe(client, ["error"])
        to_screen = subscribe(client, ["info", "warning", "error"])

        emit_log_direct(client, LOGS)

        errors = [text for severity, text in LOGS if severity == "error"]
        for _ in errors:
            message = client.wait(to_disk)
            print(f" [disk] {message['routing_key']}: {message['body'].decode()}")
        for _ in LOGS:  # the screen subscriber gets every log
            message = client.wait(to_screen)
            print(f" [screen] {message['routing_key']}: {message['body'].decode()}")
        # --8<-- [end:main]
        if client.wait(to_disk, timeout=0.2) is not None:
            raise SystemExit("the disk subscriber got a message that is not an error")
    finally:
        client.wait(client.exchange_delete(exchange=EXCHANGE))
        client.wait(client.close())  # the exclusive queues are deleted with the connection


if __name__ == "__main__":
    main()
