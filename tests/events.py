"""Waiting for the moment a test needs (a request arrives at the sandbox, a body stalls, a file
appears), never for a length of time: a loaded machine makes everything slower, and a test that
waits for the event itself still passes. Each wait has a deadline, generous, that only turns a
hang into a failure with a message."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

HANG_GUARD = 60.0   # seconds: far beyond any wait a working run makes, on any machine


@dataclass(frozen=True)
class Heard:
    event: str      # "arrived", "stalled", "resumed" (the sandbox's tell) or "answered" (its log)
    request: str    # "METHOD path?query"
    at: float       # time.monotonic() when it was heard


class SandboxEvents:
    """Everything a sandbox tells about its requests, in order, from the moment this is made."""

    def __init__(self, sandbox) -> None:
        self._heard: list[Heard] = []
        self._changed = threading.Condition()
        self._reactions: list[Callable[[Heard], None]] = []
        sandbox.event_listeners.append(self._hear)
        sandbox.log_listeners.append(lambda entry: self._hear(
            "answered", f"{entry.method} {entry.path}" + (f"?{entry.query}" if entry.query else "")))

    def _hear(self, event: str, request: str) -> None:
        heard = Heard(event, request, time.monotonic())
        # A reaction runs in the server's thread before the request goes on (before its latency,
        # for "arrived"), so it can change the faults that request meets.
        for react in list(self._reactions):
            react(heard)
        with self._changed:
            self._heard.append(heard)
            self._changed.notify_all()

    def on(self, react: Callable[[Heard], None]) -> None:
        """Call react(heard) for every event from now on, in the server's thread."""
        self._reactions.append(react)

    def heard(self, event: str, containing: str = "") -> list[Heard]:
        with self._changed:
            return [h for h in self._heard if h.event == event and containing in h.request]

    def wait_for(self, event: str, containing: str = "", count: int = 1,
                 timeout: float = HANG_GUARD) -> list[Heard]:
        """Wait until `event` has been heard `count` times for requests containing `containing`;
        fails the test if that does not happen before the hang guard."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.heard(event, containing)) >= count, timeout)
        found = self.heard(event, containing)
        assert len(found) >= count, (
            f"the sandbox never told {event!r} {count} time(s) for {containing!r}; it told "
            f"{[(h.event, h.request) for h in self._heard]}")
        return found


def wait_until(condition: Callable[[], object], what: str, timeout: float = HANG_GUARD) -> None:
    """Wait until condition() is true (something on disk the test cannot be told of, such as a
    file appearing), looking again every few milliseconds; fails the test after the hang guard."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)
