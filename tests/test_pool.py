"""The worker pool: never more than N tasks at once, every outcome handed back (a task's exception
as its outcome, not lost and not stopping the others), follow-up tasks added while it runs, and a
consumer that stops early cancels the workers.

Tasks here block on events the test controls, so nothing depends on how fast the machine is."""
from __future__ import annotations

import threading

import pytest

from xnat_download.pool import WorkerPool

HANG_GUARD = 60   # seconds; only a broken pool waits this long


class Gate:
    """Tasks that wait at a gate the test opens; counts how many run at once."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.changed = threading.Condition()
        self.running = self.peak = 0
        self.started: list[object] = []

    def work(self, task: object) -> object:
        with self.changed:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.started.append(task)
            self.changed.notify_all()
        try:
            assert self.opened.wait(HANG_GUARD), "the test never opened the gate"
            return f"done {task}"
        finally:
            with self.changed:
                self.running -= 1
                self.changed.notify_all()

    def wait_running(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.running >= count, HANG_GUARD), self.running


@pytest.mark.parametrize("workers", [1, 3])
def test_no_more_than_n_tasks_run_at_once_and_every_one_is_handed_back(workers):
    gate = Gate()
    pool = WorkerPool(gate.work, workers, threading.Event())
    for task in range(10):
        pool.submit(task)
    gate.wait_running(workers)     # the pool has filled up: the others must wait for a worker
    with gate.changed:
        waiting_at_the_gate = list(gate.started)
    gate.opened.set()
    outcomes = dict(pool.outcomes())
    assert len(waiting_at_the_gate) == workers
    assert gate.peak == workers
    assert outcomes == {task: f"done {task}" for task in range(10)}


def test_one_worker_takes_the_tasks_in_the_order_given():
    order = []
    pool = WorkerPool(lambda task: order.append(task), 1, threading.Event())
    for task in "abcdef":
        pool.submit(task)
    assert [task for task, _ in pool.outcomes()] == list("abcdef") == order


def test_a_task_that_raises_hands_back_its_exception_and_the_others_still_finish():
    def work(task: int) -> int:
        if task == 2:
            raise OSError(28, "No space left on device")
        return task * 10

    pool = WorkerPool(work, 2, threading.Event())
    for task in range(5):
        pool.submit(task)
    outcomes = dict(pool.outcomes())
    assert {task: outcome for task, outcome in outcomes.items() if task != 2} == {0: 0, 1: 10, 3: 30, 4: 40}
    assert isinstance(outcomes[2], OSError) and outcomes[2].errno == 28


def test_even_a_keyboard_interrupt_in_a_worker_reaches_the_main_thread_as_an_outcome():
    def work(task: str) -> str:
        raise KeyboardInterrupt

    pool = WorkerPool(work, 1, threading.Event())
    pool.submit("x")
    [(task, outcome)] = list(pool.outcomes())
    assert task == "x" and isinstance(outcome, KeyboardInterrupt)


def test_follow_up_tasks_submitted_while_outcomes_arrive_are_run_too():
    pool = WorkerPool(lambda task: task, 2, threading.Event())
    pool.submit(3)
    seen = []
    for task, outcome in pool.outcomes():   # each task n > 0 is followed by task n - 1
        seen.append(outcome)
        if task > 0:
            pool.submit(task - 1)
    assert seen == [3, 2, 1, 0]


def test_a_consumer_that_stops_early_cancels_the_workers_and_they_take_no_further_task():
    gate = Gate()
    cancel = threading.Event()

    def work(task: int) -> object:
        return "quick" if task == 0 else gate.work(task)   # every task but the first waits

    pool = WorkerPool(work, 2, cancel)
    for task in range(6):
        pool.submit(task)
    outcomes = pool.outcomes()
    assert next(outcomes) == (0, "quick")
    outcomes.close()   # as when the main thread meets Ctrl-C or a full disk, tasks outstanding
    assert cancel.is_set()
    gate.opened.set()  # the tasks under way end; the workers then see the cancel
    with gate.changed:
        assert gate.changed.wait_for(lambda: gate.running == 0, HANG_GUARD)
        assert set(gate.started) <= {1, 2}   # at most the two taken before the cancel


def test_a_cancelled_pool_with_no_worker_left_ends_its_outcomes():
    cancel = threading.Event()
    pool = WorkerPool(lambda task: task, 2, cancel)
    cancel.set()   # before any worker took the task: nothing will ever come back
    pool.submit("never run")
    assert list(pool.outcomes()) == []
