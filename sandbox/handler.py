"""The sandbox's HTTP handler: credentials, server sessions, faults, and sending bytes fast.

Bodies go out in chunks of up to 256 KiB straight from the catalog's memoryviews, so the server
is not what limits a benchmark of many parallel downloads. Each request is logged as a LogEntry.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import ssl
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .floods import flooded_file
from .messages import Reply, Request, error_reply
from .pages import XNAT_VERSION, home_page, login_page
from .catalog import CHUNK_SIZE

if TYPE_CHECKING:
    from .server import _Server

logger = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 900_000  # XNAT's default: 15 idle minutes
LOGIN_PAGE_PATH = "/app/template/Login.vm"
SMALL_BODY = 64 * 1024  # bodies up to this size go out in one write with the headers


@dataclass
class LogEntry:
    method: str
    path: str  # as requested, with the site prefix, still percent-encoded
    query: str
    status: int
    bytes: int  # body bytes actually sent
    user: str  # "" when the request was not authenticated


@dataclass
class ServerSession:
    user: str
    started_ms: int
    last_seen: float


def _unauthorized_page() -> bytes:
    """Tomcat's page for a failed login; xnatpy looks for the sentence in it."""
    return (b"<!doctype html><html lang=\"en\"><head><title>HTTP Status 401 \xe2\x80\x93 Unauthorized</title>"
            b"</head><body><h1>HTTP Status 401 \xe2\x80\x93 Unauthorized</h1><hr class=\"line\" />"
            b"<p><b>Type</b> Status Report</p><p><b>Message</b> Login attempt failed. Please try again.</p>"
            b"<p><b>Description</b> The request has not been applied because it lacks valid authentication "
            b"credentials for the target resource.</p><hr class=\"line\" /><h3>Apache Tomcat</h3></body></html>")


@dataclass
class _Auth:
    user: str = ""
    failed: bool = False  # wrong credentials were given
    cookies: tuple[str, ...] = ()  # Set-Cookie values for a session created now
    session_id: str = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Apache-Coyote/1.1"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the sandbox keeps its own log

    def do_GET(self) -> None:
        self.answer()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # --- one request ---

    def answer(self) -> None:
        sandbox = self.server.sandbox
        faults = sandbox.faults
        self.sent = 0
        self.user = ""
        self.reply_status = 0
        self.body_faults_apply = False
        self.cookies_to_set: tuple[str, ...] = ()
        self.log_entry: LogEntry | None = None
        path, _, query_string = self.path.partition("?")
        self.request_path, self.query_string = path, query_string
        form = self.read_request_body()
        sandbox.count_in_flight(+1)
        try:
            sandbox.tell("arrived", f"{self.command} {self.path}")
            if faults.latency > 0:
                sandbox._stopping.wait(faults.latency)
            try:
                reply = self.route(path, query_string, form)
            except Exception:  # a bug here must look like a server error, not a dropped line
                logger.exception("sandbox: error answering %s %s", self.command, self.path)
                reply = error_reply(500, "Internal Server Error")
            self.send_reply(reply)
        except (ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True  # the client went away (or a fault cut the line)
        finally:
            sandbox.count_in_flight(-1)
        if self.log_entry is None:
            self.record(self.sent)
        self.log_entry.bytes = self.sent  # differs from the plan only when the client went away
        sandbox.notify(self.log_entry)

    def record(self, planned_bytes: int) -> None:
        """Put the request in the log before the write that completes it, so that a client
        that has its answer always finds its request in the log."""
        self.log_entry = LogEntry(self.command, self.request_path, self.query_string, self.reply_status,
                                  planned_bytes, self.user)
        self.server.sandbox.record(self.log_entry)

    def read_request_body(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return dict(parse_qsl(body.decode("utf-8", "replace")))
        return {}

    def route(self, path: str, query_string: str, form: dict[str, str]) -> Reply:
        sandbox = self.server.sandbox
        faults = sandbox.faults
        prefix = sandbox.prefix
        if path != prefix and not path.startswith(prefix + "/"):
            return error_reply(404, "The requested resource does not exist.")
        local = path[len(prefix):] or "/"
        method = self.command

        if local == LOGIN_PAGE_PATH:
            return Reply(body=login_page(prefix), content_type="text/html;charset=UTF-8")
        is_api = local.startswith(("/data/", "/xapi/")) or local == "/data"
        if local != "/" and not is_api:
            return error_reply(404, "The requested resource does not exist.")

        # What a proxy or an overloaded server does happens before anyone looks at credentials.
        if faults.matches(local, query_string):
            if faults.take("redirect_count"):
                target = (faults.redirect_to + local + (f"?{query_string}" if query_string else "")
                          if faults.redirect_to else prefix + LOGIN_PAGE_PATH)
                return Reply(status=302, headers=[("Location", target)], content_type="text/html;charset=UTF-8")
            if faults.take("throttle_count"):
                reply = error_reply(429, "Too many requests.")
                reply.headers.append(("Retry-After", f"{faults.retry_after:g}"))
                return reply
            status = faults.take_status()
            if status:
                return error_reply(status, HTTPStatus(status).phrase)

        if local == "/data/services/auth":
            return self.form_login(form, method)

        auth = self.authenticate()
        self.user = auth.user
        self.cookies_to_set = auth.cookies
        if auth.failed:
            return self.unauthorized()
        if local == "/":
            if method not in ("GET", "HEAD"):
                return self.not_allowed("GET, HEAD")
            page = home_page(auth.user) if auth.user else login_page(prefix)
            return Reply(body=page, content_type="text/html;charset=UTF-8")
        if not auth.user:
            if "Mozilla" in self.headers.get("User-Agent", ""):
                return Reply(status=302, headers=[("Location", prefix + LOGIN_PAGE_PATH)],
                             content_type="text/html;charset=UTF-8")
            return self.unauthorized()

        if local == "/data/JSESSION":
            if method == "DELETE":
                if auth.session_id:
                    sandbox.end_session(auth.session_id)
                return Reply(body=b"", content_type="text/plain")
            if method not in ("GET", "HEAD"):
                return self.not_allowed("GET, HEAD, DELETE")
            return Reply(body=auth.session_id.encode(), content_type="text/plain")
        if method not in ("GET", "HEAD"):
            return self.not_allowed("GET, HEAD")
        if local == "/data/auth":
            return Reply(body=f"User '{auth.user}' is logged in".encode(), content_type="text/plain")
        if local == "/xapi/siteConfig/buildInfo":
            return Reply(body=(f'{{"version": "{XNAT_VERSION}", "buildNumber": "8", "commit": "sandbox",'
                               f' "branch": "sandbox", "buildDate": "2024-01-15", "sha": "0000000"}}').encode())
        if local.startswith("/xapi/"):
            return error_reply(404, "The requested resource does not exist.")

        if faults.matches(local, query_string) and faults.take("missing_count"):
            return error_reply(404, "The requested resource does not exist.")
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        request = Request(method=method, path=local, query=query, query_string=query_string,
                          user=auth.user, range_header=self.headers.get("Range", ""))
        reply = sandbox.api.answer(request)
        if reply.file is not None or reply.stream is not None:
            self.body_faults_apply = faults.matches(local, query_string)
            if self.body_faults_apply and reply.file is not None:
                reply = flooded_file(reply, faults)
        return reply

    # --- credentials ---

    def authenticate(self) -> _Auth:
        sandbox = self.server.sandbox
        cookie_session = self.request_cookies().get("JSESSIONID", "")
        header = self.headers.get("Authorization", "")
        if header[:6].lower() == "basic ":
            try:
                login, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _Auth(failed=True)
            user = sandbox.check_password(login, password)
            if user is None:
                return _Auth(failed=True)
            if cookie_session and sandbox.session_user(cookie_session) == user:
                return _Auth(user=user, session_id=cookie_session)
            return self.new_session(user)
        if cookie_session:
            user = sandbox.session_user(cookie_session)
            if user is not None:
                if sandbox.faults.take_expiry():
                    sandbox.end_all_sessions()  # as if the server restarted or timed everyone out
                    return _Auth()
                return _Auth(user=user, session_id=cookie_session)
        return _Auth()

    def new_session(self, user: str) -> _Auth:
        sandbox = self.server.sandbox
        session_id, session = sandbox.create_session(user)
        cookies = (f"JSESSIONID={session_id}; Path=/; HttpOnly",
                   f'SESSION_EXPIRATION_TIME="{session.started_ms},{SESSION_TIMEOUT_MS}"; Path=/')
        return _Auth(user=user, cookies=cookies, session_id=session_id)

    def form_login(self, form: dict[str, str], method: str) -> Reply:
        if method not in ("PUT", "POST"):
            return self.not_allowed("PUT, POST")
        user = self.server.sandbox.check_password(form.get("username", ""), form.get("password", ""))
        if user is None:
            refused = error_reply(401, "Login attempt failed. Please try again.")
            refused.headers.append(("WWW-Authenticate", 'Basic realm="XNAT"'))
            return refused
        auth = self.new_session(user)
        self.user, self.cookies_to_set = user, auth.cookies
        return Reply(body=auth.session_id.encode(), content_type="text/plain")

    def request_cookies(self) -> dict[str, str]:
        cookies: dict[str, str] = {}
        for header in self.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name:
                    cookies[name] = value.strip('"')
        return cookies

    def unauthorized(self) -> Reply:
        return Reply(status=401, body=_unauthorized_page(), content_type="text/html;charset=utf-8",
                     headers=[("WWW-Authenticate", 'Basic realm="XNAT"')])

    @staticmethod
    def not_allowed(allowed: str) -> Reply:
        reply = error_reply(405, "Method not allowed.")
        reply.headers.append(("Allow", allowed))
        return reply

    # --- sending ---

    def send_reply(self, reply: Reply) -> None:
        self.reply_status = reply.status
        head_only = self.command == "HEAD"
        headers = [("Date", formatdate(usegmt=True)), ("Server", self.server_version),
                   ("Content-Type", reply.content_type), *reply.headers]
        headers += [("Set-Cookie", cookie) for cookie in self.cookies_to_set]
        self.cookies_to_set = ()
        # An HTTP/1.0 client cannot read chunks: its stream ends when the connection closes.
        chunked = reply.stream is not None and reply.chunked and self.request_version != "HTTP/1.0"
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        elif reply.stream is not None and not reply.chunked:
            headers.append(("Content-Length", str(reply.stream_length)))
        elif reply.stream is not None:
            self.close_connection = True
        else:
            length = reply.range_end - reply.range_start if reply.file is not None else len(reply.body)
            headers.append(("Content-Length", str(length)))
        if self.close_connection:
            headers.append(("Connection", "close"))
        head = (f"HTTP/1.1 {reply.status} {_phrase(reply.status)}\r\n"
                + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n")
        head_bytes = head.encode("latin-1", "replace")

        if head_only:
            self.record(0)
            self.wfile.write(head_bytes)
        elif reply.file is not None:
            if reply.range_end == reply.range_start:
                self.record(0)  # an empty body: the headers complete the answer
            self.wfile.write(head_bytes)
            chunks = reply.file.chunks(reply.range_start, reply.range_end, self.chunk_size())
            self.send_body(chunks, reply.range_end - reply.range_start, chunked=False)
        elif reply.stream is not None:
            self.wfile.write(head_bytes)
            self.send_body(reply.stream(), reply.stream_length, chunked=chunked, is_zip=True)
        elif len(reply.body) <= SMALL_BODY:
            self.record(len(reply.body))
            self.wfile.write(head_bytes + reply.body)
            self.sent = len(reply.body)
        else:
            self.wfile.write(head_bytes)
            self.send_body(_pieces(reply.body), len(reply.body), chunked=False)
        self.body_faults_apply = False

    def chunk_size(self) -> int:
        pace = self.server.sandbox.faults.pace
        # Paced bodies go out in pieces of about 1/50 s, so pacing is smooth, not bursty.
        return CHUNK_SIZE if pace <= 0 else max(4096, min(CHUNK_SIZE, int(pace / 50)))

    def send_body(self, chunks: Iterable[bytes | memoryview], length: int, chunked: bool,
                  is_zip: bool = False) -> None:
        sandbox = self.server.sandbox
        faults = sandbox.faults
        cut_at, how = length, ""
        corrupt = False
        if self.body_faults_apply:
            for how in ("reset_count", "short_count", "stall_count"):
                if faults.take(how):
                    cut_at = length // 2
                    break
            else:
                how = ""
            # A zip's wrong entry is made with a matching CRC when the zip is built (api.py).
            corrupt = not is_zip and faults.take("corrupt_count")
        pace = faults.pace
        chunk_size = self.chunk_size()
        started = time.monotonic()
        position = 0
        stream: Iterator[bytes | memoryview] = _resized(chunks, chunk_size)
        if corrupt:
            stream = _corrupted(stream, length)
        for piece in stream:
            if how and position + len(piece) > cut_at:
                head = memoryview(piece)[:cut_at - position]
                if len(head):
                    self.write_piece(head, chunked)
                    position += len(head)
                if how == "stall_count":
                    sandbox.tell("stalled", f"{self.command} {self.path}")
                    if sandbox._stopping.wait(faults.stall_seconds):
                        self.close_connection = True
                        return
                    sandbox.tell("resumed", f"{self.command} {self.path}")
                    how = ""
                    piece = memoryview(piece)[len(head):]
                elif how == "reset_count":
                    self.record(self.sent)
                    self.reset_connection()
                    return
                else:  # short: the body ends early and the connection closes cleanly
                    self.close_connection = True
                    return
            if len(piece):
                if not chunked and not how and position + len(piece) == length:
                    self.record(length)
                self.write_piece(piece, chunked)
                position += len(piece)
            if pace > 0:
                # Wait until this many bytes are due at `pace` bytes per second.
                delay = started + position / pace - time.monotonic()
                if delay > 0 and sandbox._stopping.wait(delay):
                    self.close_connection = True
                    return
        if chunked:
            self.record(self.sent)
            self.wfile.write(b"0\r\n\r\n")

    def write_piece(self, piece: bytes | memoryview, chunked: bool) -> None:
        if chunked:
            self.wfile.write(f"{len(piece):x}\r\n".encode())
            self.wfile.write(piece)
            self.wfile.write(b"\r\n")
        else:
            self.wfile.write(piece)
        self.sent += len(piece)

    def reset_connection(self) -> None:
        """Drop the connection with a TCP reset (RST), as a proxy that gives up does."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # its reference would keep the socket open past close()
            self.connection.close()
        except OSError:
            pass


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _pieces(body: bytes) -> Iterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(body), CHUNK_SIZE):
        yield view[start:start + CHUNK_SIZE]


def _resized(chunks: Iterable[bytes | memoryview], size: int) -> Iterator[bytes | memoryview]:
    """Split chunks larger than `size` (small ones pass unchanged)."""
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
            continue
        view = memoryview(chunk)
        for start in range(0, len(view), size):
            yield view[start:start + size]


def _corrupted(chunks: Iterable[bytes | memoryview], length: int) -> Iterator[bytes | memoryview]:
    """The same bytes with three of them flipped: the length is right, the content is not."""
    targets = sorted({0, length // 2, max(0, length - 1)})
    position = 0
    for chunk in chunks:
        end = position + len(chunk)
        hits = [target - position for target in targets if position <= target < end]
        if hits:
            altered = bytearray(chunk)
            for index in hits:
                altered[index] ^= 0xFF
            chunk = altered
        position = end
        yield chunk
