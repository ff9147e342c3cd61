"""What this run has seen of the network, for the route chooser (routing.py) to read instead of
assuming: the quickest answer to a request, how much of it this process spent computing rather
than waiting, and the bytes per second one connection carried.

The connection feeds it the time of every plain request answered 200 or 206 (`record_request`):
the listings first, then each file and zip request as its headers arrive. The throughput comes
from the first MiB of each file and zip body (`record_bytes`, through a BodyClock), since a
listing's body is too short to show a connection's pace; until then the chooser assumes one.
The chooser works from a NetworkReading taken as a session's routes are chosen, so that a
session's routes follow one picture of the network, and the next session's a newer one.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# A body this small says more about per-read overhead than about the network's throughput.
MIN_MEASURED_BYTES = 256 * 1024
# Past its first MiB a body is not timed further: by then a connection shows its pace.
TIMED_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NetworkReading:
    """What the meter had measured at one moment; None where nothing was measured yet."""
    request_seconds: float | None = None   # the quickest request: its cost, not queueing
    cpu_seconds: float | None = None       # this process's own share of the quickest
    bytes_per_second: float | None = None  # what one connection carries

    def useful_connections(self, workers: int) -> int:
        """How many connections at once shorten a run here. Connections overlap their waiting
        (latency, a server's pace per connection), not this process's computing: where a request
        is mostly computing (a fast network, no latency), more of them only take turns."""
        if not self.request_seconds or not self.cpu_seconds:
            return workers
        return max(1, min(workers, int(self.request_seconds / self.cpu_seconds)))


class NetworkMeter:
    """Thread-safe: every worker may record; the chooser takes a reading between sessions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._request_seconds: float | None = None
        self._cpu_seconds: float | None = None
        self._bytes = 0
        self._seconds = 0.0

    def record_request(self, seconds: float, cpu_seconds: float | None = None) -> None:
        """A request answered after `seconds` (to its headers), while this thread computed for
        `cpu_seconds` (time.thread_time over the same span, and over the body where it is read
        at once, as a listing's is) rather than waited."""
        with self._lock:
            if seconds > 0:
                self._request_seconds = min(self._request_seconds or seconds, seconds)
            if cpu_seconds is not None and cpu_seconds > 0:
                self._cpu_seconds = min(self._cpu_seconds or cpu_seconds, cpu_seconds)

    def record_bytes(self, count: int, seconds: float) -> None:
        """`count` bytes of one body arrived in `seconds` on one connection."""
        if count < MIN_MEASURED_BYTES or seconds <= 0:
            return
        with self._lock:
            self._bytes += count
            self._seconds += seconds

    def reading(self) -> NetworkReading:
        """The network as measured so far, over every request and body recorded."""
        with self._lock:
            return NetworkReading(self._request_seconds, self._cpu_seconds,
                                  self._bytes / self._seconds if self._seconds else None)


class BodyClock:
    """Times one body's first TIMED_BYTES from its headers' arrival, for the meter's throughput;
    a shorter body is timed to its end. Only the thread reading the body uses it."""

    def __init__(self, meter: NetworkMeter) -> None:
        self.meter = meter
        self.started = time.monotonic()
        self.count = 0
        self.stopped = False

    def arrived(self, count: int) -> None:
        if self.stopped:
            return
        self.count += count
        if self.count >= TIMED_BYTES:
            self.ended()

    def ended(self) -> None:
        """The body ended (or was timed long enough): what it carried goes to the meter."""
        if not self.stopped:
            self.stopped = True
            self.meter.record_bytes(self.count, time.monotonic() - self.started)
