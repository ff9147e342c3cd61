"""xnat_download.retry: which answers are retried, the waits between attempts, how many."""
from __future__ import annotations

import threading

import pytest
import requests

from xnat_download import retry
from xnat_download.errors import Interrupted


def test_backoff_grows_with_jitter_and_respects_retry_after():
    assert retry.backoff(1, 1.0, retry_after=7) == 7
    waits = [retry.backoff(attempt, 1.0) for attempt in (1, 2, 3, 4)]
    for attempt, wait in zip((1, 2, 3, 4), waits):
        assert 0.5 * 2 ** (attempt - 1) <= wait <= 2 ** (attempt - 1)


def test_retry_after_in_seconds_is_kept_and_a_date_falls_back_to_our_own_wait():
    assert retry.parse_retry_after("7") == 7 and retry.parse_retry_after("-3") == 0
    assert retry.parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry.parse_retry_after(None) is None


def test_too_many_requests_and_server_errors_are_retried_nothing_else():
    assert [status for status in (200, 206, 301, 400, 401, 403, 404, 416, 429, 500, 502, 503)
            if retry.retried(status)] == [429, 500, 502, 503]


def test_attempts_stop_at_the_rule_and_say_why_and_how_often():
    attempts = retry.RetryRule(retries=2, first_wait=0.0).attempts(what="x")
    seen = []
    for number in attempts:
        seen.append(number)
        attempts.failed(f"answer {number}")
    assert seen == [1, 2, 3]
    assert attempts.exhausted() == "answer 3 (after 3 attempts)"
    assert [n for n in retry.RetryRule(5, 0.0).attempts(limit=2)] == [1, 2]


def test_a_stop_during_the_wait_ends_the_attempts():
    stop = threading.Event()
    stop.set()
    attempts = retry.RetryRule(retries=3, first_wait=10.0).attempts(cancel=stop)
    with pytest.raises(Interrupted):
        for _ in attempts:
            attempts.failed("503")


def answer(status: int, location: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code, response.url = status, "https://xnat.example.org/xnat/data/projects"
    if location is not None:
        response.headers["Location"] = location
    return response


def test_a_401_or_a_redirect_to_a_login_page_means_log_in_again():
    assert retry.needs_fresh_login(answer(401))
    assert retry.needs_fresh_login(answer(302, "/xnat/app/template/Login.vm"))
    assert retry.needs_fresh_login(answer(302, "https://sso.example.org/login?next=x"))
    assert not retry.needs_fresh_login(answer(302, "/xnat/data/archive/projects"))
    assert not retry.needs_fresh_login(answer(403))
