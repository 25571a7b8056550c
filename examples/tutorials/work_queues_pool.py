"""Tutorial 2, "Work Queues", with a pool of worker threads on one connection.

The same durable queue and persistent tasks as `work_queues.py`, but one `puka.Client` and a
pool of worker threads (`puka.threads.consume_in_pool`): the client's thread stays in
`client.loop()`, reading, sending heartbeats and acknowledging each task as its worker finishes
it, however long the task takes. A dot in a task stands for a tenth of a second of work.

    python examples/tutorials/work_queues_pool.py     # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import puka
import puka.threads

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"task_queue-{uuid.uuid4().hex[:8]}"
TASKS = ["First task.", "Second task..", "Third task...", "Fourth task.", "Fifth task....."]


def new_task(client: puka.Client, tasks: list[str]) -> None:
    client.wait(client.queue_declare(queue=QUEUE, durable=True))
    promises = [
        client.basic_publish(
            exchange="", routing_key=QUEUE, body=task, headers={"delivery_mode": 2}
        )
        for task in tasks
    ]
    client.wait_for_all(promises)
    for task in tasks:
        print(f" [x] Sent {task!r}")


# --8<-- [start:pool]
def do_task(message: puka.Result) -> None:
    """Runs in a worker thread: it never calls the client."""
    task = message["body"].decode()
    name = threading.current_thread().name
    print(f" [{name}] Received {task!r}")
    time.sleep(task.count(".") / 10)  # the "work"
    print(f" [{name}] Done")
    # returning acks the task (raising would reject it: see on_error)
    with finished_lock:
        finished.append(task)
        if len(finished) == len(TASKS):  # the demo stops once every task is done
            client.call_soon_threadsafe(client.loop_break)


client = puka.Client(AMQP_URL, heartbeat=5)
client.wait(client.connect())
new_task(client, TASKS)
finished: list[str] = []
finished_lock = threading.Lock()

# prefetch_count bounds the tasks this client holds: at most 4, two running and two waiting
consume = client.basic_consume(queue=QUEUE, prefetch_count=4)
pool = puka.threads.consume_in_pool(client, consume, do_task, workers=2)
try:
    client.loop()  # the client's thread: I/O, heartbeats, and an ack as each task ends
finally:
    pool.stop()  # running tasks finish and are acked; tasks not started go back to the queue
    client.wait(client.queue_delete(queue=QUEUE))
    client.wait(client.close())
# --8<-- [end:pool]
