"""Progress lines from Ray Train's rank 0 to the driver's log.

`finetune` runs its workers with `log_to_driver=False` (their libraries' chatter stays out of the
console), so a run of minutes would print nothing. The few lines a user wants (one per epoch, and
one every `every_s` seconds inside an epoch) travel through a small Ray queue instead; a driver
thread logs each as it arrives.
"""

import contextlib
import logging
import threading
from collections.abc import Iterator

from ray.util.queue import Empty, Full, Queue

log = logging.getLogger(__name__)
KEY = "progress_queue"


@contextlib.contextmanager
def relayed(loop_config: dict, *, name: str) -> Iterator[dict]:
    """`loop_config` plus a queue (under `KEY`) whose lines this driver logs while the block runs."""
    queue = Queue(maxsize=1000, actor_options={"num_cpus": 0})  # never waits for a worker's CPU
    stop = threading.Event()
    thread = threading.Thread(target=_log_lines, args=(queue, stop, name), daemon=True)
    thread.start()
    try:
        yield {**loop_config, KEY: queue}
    finally:
        stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(Exception):
            queue.shutdown()


def _log_lines(queue: Queue, stop: threading.Event, name: str) -> None:
    while True:
        try:
            log.info("%s: %s", name, queue.get(timeout=0.5))
        except Empty:
            if stop.is_set():
                return
        except Exception:  # the queue's actor ended with Ray: nothing more will come
            return


def send(loop_config: dict, line: str) -> None:
    """One line to the driver's log; dropped when no driver listens or the queue is full."""
    queue = loop_config.get(KEY)
    if queue is not None:
        with contextlib.suppress(Full):
            queue.put_nowait(line)

