"""Tutorial 2, "Work Queues": distribute time-consuming tasks among several workers.

A durable queue, persistent messages, manual acknowledgements and fair dispatch
(`prefetch_count=1`). Each worker is a `puka.Client` in a thread of its own: a client belongs to
the thread that drives it, and a thread may drive as many clients as it likes. A dot in a task
stands for a tenth of a second of work. (`work_queues_pool.py` runs the workers as a pool of
threads on one client instead.)

    python examples/tutorials/work_queues.py          # AMQP_URL picks another broker
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import puka

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUE = f"task_queue-{uuid.uuid4().hex[:8]}"
TASKS = ["First task.", "Second task..", "Third task...", "Fourth task.", "Fifth task....."]

done = threading.Semaphore(0)  # released once per finished task
workers_clients: list[puka.Client] = []  # to stop them from the main thread
print_lock = threading.Lock()


def say(text: str) -> None:
    with print_lock:  # the workers print from two threads
        print(text)


# --8<-- [start:new_task]
def new_task(tasks: list[str]) -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=QUEUE, durable=True))

    promises = [
        client.basic_publish(
            exchange="",
            routing_key=QUEUE,
            body=task,
            headers={"delivery_mode": 2},  # persistent: survives a broker restart
        )
        for task in tasks
    ]
    client.wait_for_all(promises)  # every task is confirmed by the broker
    for task in tasks:
        print(f" [x] Sent {task!r}")
    client.wait(client.close())


# --8<-- [end:new_task]


# --8<-- [start:worker]
def worker(name: str, ready: threading.Event) -> None:
    client = puka.Client(AMQP_URL)
    client.wait(client.connect())
    client.wait(client.queue_declare(queue=QUEUE, durable=True))

    def on_task(promise: int, message: puka.Result) -> None:
        task = message["body"].decode()
        say(f" [{name}] Received {task!r}")
        time.sleep(task.count(".") / 10)  # the "work"
        say(f" [{name}] Done")
        client.basic_ack(message)  # only now may the broker forget the task
        done.release()

    # prefetch_count=1: no new task for this worker until it has acknowledged the last one
    consume = client.basic_consume(queue=QUEUE, prefetch_count=1, callback=on_task)
    workers_clients.append(client)
    ready.set()
    client.loop()  # until another thread hands it loop_break (see main)

    client.wait(client.basic_cancel(consume))
    client.wait(client.close())


# --8<-- [end:worker]


def main() -> None:
    ready = [threading.Event() for _ in (1, 2)]
    workers = [threading.Thread(target=worker, args=(f"worker {n}", ready[n - 1])) for n in (1, 2)]
    try:
        new_task(TASKS)
        for thread in workers:
            thread.start()
        for _ in TASKS:
            if not done.acquire(timeout=10):
                raise SystemExit("a task was not processed in time")
    finally:
        for started in ready:
            started.wait(10)
        # --8<-- [start:stop]
        for client in workers_clients:  # from this thread: hand the stop to each client's own
            client.call_soon_threadsafe(client.loop_break)
        # --8<-- [end:stop]
        for thread in workers:
            if thread.ident is not None:  # started
                thread.join()
        with puka.Client(AMQP_URL) as client:
            client.wait(client.connect())
            client.wait(client.queue_delete(queue=QUEUE))


if __name__ == "__main__":
    main()
