"""The worker pool: up to N threads take tasks in the order given, and hand each outcome back to
the main thread, which may add follow-up tasks while the pool runs."""
from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator


class WorkerPool:
    """Daemon threads rather than a ThreadPoolExecutor: on Ctrl-C a worker stuck in a stalled read
    must not keep the process alive until its timeout."""

    def __init__(self, work: Callable[[object], object], workers: int, cancel: threading.Event) -> None:
        self.work = work
        self.workers = workers
        self.cancel = cancel
        self._pending: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._finished = threading.Event()
        self._outstanding = 0   # submitted, not yet handed back; touched by the main thread only

    def submit(self, task: object) -> None:
        self._outstanding += 1
        self._pending.put(task)
        # Workers wait for tasks until the pool is finished, so a follow-up task never finds
        # its worker gone; they start only as tasks arrive.
        if len(self._threads) < self.workers:
            thread = threading.Thread(target=self._worker, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _worker(self) -> None:
        while not self.cancel.is_set() and not self._finished.is_set():
            try:
                task = self._pending.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self._done.put((task, self.work(task)))
            except BaseException as error:  # handed to the main thread, which decides
                self._done.put((task, error))

    def outcomes(self) -> Iterator[tuple[object, object]]:
        """(task, result or exception) as workers finish them, until nothing is outstanding."""
        try:
            while self._outstanding:
                try:
                    task, outcome = self._done.get(timeout=0.2)
                except queue.Empty:
                    if self.cancel.is_set() and not any(t.is_alive() for t in self._threads):
                        return
                    continue
                self._outstanding -= 1
                yield task, outcome
        finally:
            self._finished.set()
            if self._outstanding and any(thread.is_alive() for thread in self._threads):
                self.cancel.set()
                # Give workers a moment to stop writing, so no .part is half-flushed as we exit.
                deadline = time.monotonic() + 2.0
                for thread in self._threads:
                    thread.join(max(0.0, deadline - time.monotonic()))
