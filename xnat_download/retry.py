"""The retry rule, written once for listings, files and zips: which answers are tried again, how
long to wait (doubling, with jitter, or the server's Retry-After), how many attempts, and which
answers mean the session expired (XnatClient.request then logs in again once and repeats the
request at once; a second refusal is an authentication error)."""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urljoin

import requests

from xnat_download.errors import Interrupted

MAX_RETRY_WAIT = 60.0

log = logging.getLogger("xnat_download")


def retried(status: int) -> bool:
    """Answers another attempt may change: too many requests, and the server's own failures."""
    return status == 429 or status >= 500


def needs_fresh_login(response: requests.Response) -> bool:
    """The session expired: a 401, or (on some sites) a redirect to a login page, the server's own
    or a single sign-on elsewhere (never followed: the client logs in again)."""
    if response.status_code == 401:
        return True
    return response.is_redirect and "login" in urljoin(response.url, response.headers["Location"]).lower()


def parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare for XNAT; fall back to our own backoff


def requested_wait(response: requests.Response) -> float | None:
    """The wait an answer asks for in its Retry-After header, if it gives one in seconds."""
    return parse_retry_after(response.headers.get("Retry-After"))


def backoff(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry `attempt` (1, 2, ...): the server's Retry-After if it gave one,
    otherwise doubling waits with jitter so that parallel workers do not retry in lockstep."""
    if retry_after is not None:
        return min(retry_after, 5 * MAX_RETRY_WAIT)
    return min(MAX_RETRY_WAIT, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class RetryRule:
    """How often and how patiently one request is tried: `retries` more times after the first."""
    retries: int
    first_wait: float

    @property
    def tries(self) -> int:
        """Attempts in all: the first and its retries."""
        return self.retries + 1

    def attempts(self, what: str = "", cancel: threading.Event | None = None,
                 limit: int | None = None) -> Attempts:
        """The attempts of one request (`what`, for --verbose); `limit` caps them below the
        rule's where some were spent already (a zip's retries, say)."""
        return Attempts(self, what, cancel, self.tries if limit is None else limit)


@dataclass
class Attempts:
    """The attempts of one request. Iterate over it; tell it why an attempt failed (`failed`, or
    `failed_with` for an answer that may carry Retry-After) and go on to the next, which comes
    after the rule's wait. When the loop ends without success, `exhausted()` says why.

        attempts = client.retry_rule.attempts(what=path, cancel=stop)
        for _ in attempts:
            try:
                response = client.request(...)
            except requests.RequestException as error:
                attempts.failed(describe_network_error(client.host, error))
                continue
            if retried(response.status_code):
                attempts.failed_with(response, f"{client.host} answered {response.status_code}")
                continue
            return ...
        raise SomeError(attempts.exhausted())

    A wait that `cancel` cuts short raises Interrupted. A loop may also stop early (`break`) when
    another attempt would not help.
    """
    rule: RetryRule
    what: str = ""
    cancel: threading.Event | None = None
    limit: int = 1
    problem: str = ""
    retry_after: float | None = None
    made: int = field(default=0)

    def __iter__(self) -> Iterator[int]:
        while self.made < self.limit:
            if self.made:
                self._wait()
            self.retry_after = None
            self.made += 1
            yield self.made

    def _wait(self) -> None:
        wait = backoff(self.made, self.rule.first_wait, self.retry_after)
        log.debug("retrying %s in %.1f s: %s", self.what or "the request", wait, self.problem)
        if self.cancel is None:
            time.sleep(wait)
        elif self.cancel.wait(wait):
            raise Interrupted()

    def failed(self, problem: str, retry_after: float | None = None) -> None:
        self.problem, self.retry_after = problem, retry_after

    def failed_with(self, response: requests.Response, problem: str) -> None:
        """An answer to retry: its Retry-After, if any, sets the next wait."""
        self.failed(problem, requested_wait(response))

    def exhausted(self) -> str:
        return f"{self.problem} (after {self.made} attempts)"
