"""What this run has seen of the network, for the route chooser (routing.py) to read instead of
assuming: the quickest answer to a request, how much of it this process spent computing rather
than waiting, and the bytes per second one connection carried.

The connection feeds it the time of every listing (`record_request`); the throughput comes from
the first MiB of file and zip transfers as they arrive (`record_bytes`), since a listing's body is
too short to show a connection's pace. Until then the chooser assumes one.
"""
from __future__ import annotations

import threading

# A body this small says more about per-read overhead than about the network's throughput.
MIN_MEASURED_BYTES = 256 * 1024


class NetworkMeter:
    """Thread-safe: every worker may record; the chooser reads between sessions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.request_seconds: float | None = None   # the quickest request: its cost, not queueing
        self.cpu_seconds: float | None = None       # this process's own share of the quickest
        self._bytes = 0
        self._seconds = 0.0

    def record_request(self, seconds: float, cpu_seconds: float | None = None) -> None:
        """A request answered after `seconds` (to its headers), while this thread computed for
        `cpu_seconds` (time.thread_time, body included) rather than waited."""
        with self._lock:
            if seconds > 0:
                self.request_seconds = min(self.request_seconds or seconds, seconds)
            if cpu_seconds is not None and cpu_seconds > 0:
                self.cpu_seconds = min(self.cpu_seconds or cpu_seconds, cpu_seconds)

    def record_bytes(self, count: int, seconds: float) -> None:
        """`count` bytes of one body arrived in `seconds` on one connection."""
        if count < MIN_MEASURED_BYTES or seconds <= 0:
            return
        with self._lock:
            self._bytes += count
            self._seconds += seconds

    @property
    def bytes_per_second(self) -> float | None:
        """What one connection carries, over every body measured so far; None before the first."""
        with self._lock:
            return self._bytes / self._seconds if self._seconds else None

    def useful_connections(self, workers: int) -> int:
        """How many connections at once shorten a run here. Connections overlap their waiting
        (latency, a server's pace per connection), not this process's computing: where a request
        is mostly computing (a fast network, no latency), more of them only take turns."""
        with self._lock:
            if not self.request_seconds or not self.cpu_seconds:
                return workers
            overlap = self.request_seconds / self.cpu_seconds
        return max(1, min(workers, int(overlap)))
