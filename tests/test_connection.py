"""xnat_download.connection: the waits between retries."""
from __future__ import annotations

from xnat_download import connection


def test_backoff_grows_with_jitter_and_respects_retry_after():
    assert connection.backoff(1, 1.0, retry_after=7) == 7
    waits = [connection.backoff(attempt, 1.0) for attempt in (1, 2, 3, 4)]
    for attempt, wait in zip((1, 2, 3, 4), waits):
        assert 0.5 * 2 ** (attempt - 1) <= wait <= 2 ** (attempt - 1)
