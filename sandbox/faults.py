"""Faults the sandbox can inject, to show that clients survive what real servers and proxies do.

Count fields (`*_count`) make the first N matching requests fail; -1 means every matching one
and 0 means off. Each has its own counter, which starts again from zero whenever the count field
is assigned (`faults.reset_count = 2` arms two more resets even if two already happened), so a
test can re-arm a fault with a plain attribute write.

Which requests match: by default single-file downloads only (`.../files/<name>`, not a listing
or a zip). Setting `match` to anything else makes it a plain substring test on the request path
and query (for example `match="/data/"` for every REST call, or `match="format=zip"`).

Two faults are switched on by their kind rather than their count: `status` (500/502/503/504) fails
every matching request unless `status_count` limits how many, and each candidate fails with
probability `status_rate` (a seeded RNG, so runs repeat); `listing` spoils every JSON listing
whose path and query contain `listing_match` unless `listing_count` limits it. `expire_after`
is None (off) or N: N more requests succeed on their session cookie, then every server session
ends, once. Body faults (reset, short, stall) cut the body at half its length; corrupt flips the
first, middle and last bytes of a file, and in a zip changes the middle entry's bytes with its CRC
to match, so that only the catalog's MD5 can tell. Flood faults send more than the listing says:
overlong a file body (with its Content-Length) or a zip entry that runs on past its listed size;
endless a file body sent chunked without end, or a zip led by an entry it does not list that never
ends; bomb a zip entry that inflates far past its listed size. Each stops at `flood_bytes`, so that
a client without a cap fails its test instead of filling the disk.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields
from typing import Any

LISTING_KINDS = ("", "html", "empty", "truncated", "nokeys")
FILE_REQUESTS = "/files/"  # the default `match`: single-file GETs


def is_file_request(path: str, query: str) -> bool:
    """True for a GET of one file: `/files/` followed by a name, and not a zip of the folder."""
    position = path.find("/files/")
    if position < 0 or position + len("/files/") == len(path):
        return False
    return "format=zip" not in query


@dataclass
class Faults:
    latency: float = 0.0  # seconds added before every answer
    pace: float = 0.0  # bytes per second per response body (the WAN model); 0 = unpaced
    match: str = FILE_REQUESTS

    status: int = 0  # 500, 502, 503 or 504
    status_count: int = -1  # with `status` set: how many matching requests fail (-1: all)
    status_rate: float = 1.0  # ... and each of those fails with this probability (seeded)
    status_seed: int = 1

    throttle_count: int = 0  # 429 with Retry-After
    retry_after: float = 1  # seconds; 0 makes tests fast

    reset_count: int = 0  # headers and half the body, then a TCP reset
    short_count: int = 0  # full Content-Length, half the body, then a clean close
    corrupt_count: int = 0  # right length, some bytes flipped
    stall_count: int = 0  # part of the body, then silence for stall_seconds
    stall_seconds: float = 30.0

    expire_after: int | None = None  # after N more cookie requests, every server session ends (once)

    listing: str = ""  # "", "html", "empty", "truncated" or "nokeys"
    listing_count: int = -1  # with `listing` set: how many matching listings are spoiled (-1: all)
    listing_match: str = ""  # substring of path and query; "" = any format=json listing

    redirect_count: int = 0  # 302 to the login page
    redirect_to: str = ""  # with redirect_count: 302 to this server URL and the same path instead
    missing_count: int = 0  # 404 for a file the listing names
    wrong_size: bool = False  # files listings say Size + 1
    no_digest: bool = False  # files listings give an empty digest, as catalogs without checksums do
    foreign_links: str = ""  # e.g. "http://other:8080": files listings link every file to that server
    zip_deflate: bool = False  # a site setting: zips deflated, sizes in data descriptors (else stored)

    overlong_count: int = 0  # a file body, or a zip's `flood_entry`, runs on past its listed size
    endless_count: int = 0  # a file body chunked without end; a zip led by an unlisted endless entry
    bomb_count: int = 0  # a zip deflated, its `flood_entry` inflating far past its listed size
    flood_entry: int = 0  # which entry of a zip overlong and bomb hit
    flood_bytes: int = 50 * 1024 * 1024  # where every flood stops

    _used: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _random: random.Random = field(default_factory=random.Random, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.listing not in LISTING_KINDS:
            raise ValueError(f"listing must be one of {LISTING_KINDS}, not {self.listing!r}")
        self._random.seed(self.status_seed)

    def __setattr__(self, name: str, value: Any) -> None:
        # A misspelt knob would otherwise switch nothing on and let a fault test pass vacuously.
        if not name.startswith("_") and name not in self.__dataclass_fields__:
            raise AttributeError(f"Faults has no knob {name!r}")
        super().__setattr__(name, value)
        # Assigning a count re-arms it; the private fields may not exist yet during __init__.
        if (name.endswith("_count") or name == "expire_after") and "_used" in self.__dict__:
            with self._lock:
                self._used.pop(name, None)
        if name == "status_seed" and "_random" in self.__dict__:
            self._random.seed(value)

    def reset(self) -> None:
        """Turn every fault off again."""
        for spec in fields(self):
            if spec.init:
                setattr(self, spec.name, spec.default)
        with self._lock:
            self._used.clear()

    def matches(self, path: str, query: str) -> bool:
        if self.match == FILE_REQUESTS:
            return is_file_request(path, query)
        return self.match in f"{path}?{query}"

    def take(self, count_field: str) -> bool:
        """Whether the fault counted by `count_field` applies to this request; uses one if so."""
        count = getattr(self, count_field)
        if count == 0:
            return False
        with self._lock:
            used = self._used.get(count_field, 0)
            if 0 <= count <= used:
                return False
            self._used[count_field] = used + 1
        return True

    def take_status(self) -> int:
        """The error status this request gets, or 0."""
        if not self.status:
            return 0
        if self.status_rate < 1.0:
            with self._lock:
                if self._random.random() >= self.status_rate:
                    return 0
        return self.status if self.take("status_count") else 0

    def take_listing(self, path: str, query: str) -> str:
        """The way this JSON listing is spoiled, or ""."""
        if not self.listing or "format=json" not in query:
            return ""
        if self.listing_match and self.listing_match not in f"{path}?{query}":
            return ""
        return self.listing if self.take("listing_count") else ""

    def take_expiry(self) -> bool:
        """Count one cookie-authenticated request; True when every session must end now."""
        if self.expire_after is None:
            return False
        with self._lock:
            used = self._used.get("expire_after", 0)
            if used > self.expire_after:
                return False  # it already happened once
            self._used["expire_after"] = used + 1
            return used == self.expire_after
