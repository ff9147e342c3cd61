"""A request as the REST routes see it, and the reply they give: what passes between the HTTP
handler (handler.py) and the routes (api.py), with the errors and byte ranges both speak."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .catalog import File
from .pages import error_page


@dataclass
class Request:
    method: str
    path: str  # percent-encoded, without the site prefix
    query: dict[str, str]
    query_string: str
    user: str
    range_header: str = ""  # the Range header, if any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    file: File | None = None  # a file download: body is file bytes range_start..range_end-1
    range_start: int = 0
    range_end: int = 0
    stream: Callable[[], Iterator[bytes | memoryview]] | None = None  # a zip: chunked, no length
    stream_length: int = 0  # how long the stream will be (for cutting it in half)
    chunked: bool = True  # a stream sent chunked; else with stream_length as its Content-Length


class NotFound(Exception):
    status = 404


class Forbidden(Exception):
    status = 403


def error_reply(status: int, message: str) -> Reply:
    return Reply(status=status, body=error_page(status, message), content_type="text/html;charset=UTF-8")


def apply_range(reply: Reply, byte_range: str) -> Reply:
    """Honour `bytes=N-` and `bytes=N-M`; anything fancier gets the whole file, as HTTP allows."""
    assert reply.file is not None
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", byte_range.strip())
    if not match:
        return reply
    size = reply.file.size
    start = int(match.group(1))
    end = int(match.group(2)) + 1 if match.group(2) else size
    if start >= size or end <= start:
        refused = error_reply(416, "Requested range not satisfiable.")
        refused.headers.append(("Content-Range", f"bytes */{size}"))
        return refused
    end = min(end, size)
    reply.status = 206
    reply.range_start, reply.range_end = start, end
    reply.headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
    return reply
