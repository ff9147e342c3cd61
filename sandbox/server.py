"""The sandbox server: its life cycle, its log, its server sessions, and the threaded HTTP server.

One `ThreadingHTTPServer`, a thread per connection, HTTP/1.1 keep-alive; each request is answered
by handler.py's `_Handler`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .api import Api
from .catalog import Catalog
from .demo_data import DEMO_USER, OUTSIDER_USER, Scale, build_catalog
from .faults import Faults, is_file_request
from .handler import SESSION_TIMEOUT_MS, LogEntry, ServerSession, _Handler

logger = logging.getLogger(__name__)

__all__ = ["LogEntry", "Sandbox"]


class Sandbox:
    """A local XNAT 1.8 stand-in serving a deterministic demo catalog; see xnat-api.md."""

    USER = DEMO_USER
    PASSWORD = "demo-password"
    OUTSIDER = OUTSIDER_USER
    OUTSIDER_PASSWORD = "outsider-password"
    # Fixed, so a sandbox started from the command line can be used with a token too.
    ALIAS = "5a9d6e1c-0d2b-4c5e-9f3a-7b8c9d0e1f2a"
    ALIAS_SECRET = "demo-alias-secret"

    def __init__(self, scale: Scale | None = None, prefix: str = "", tls: tuple[str, str] | None = None,
                 hostile: bool = False, ignore_columns: bool = False, host: str = "127.0.0.1",
                 port: int = 0, vendor: bool = False, dicom_tree: str | os.PathLike | None = None) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.tls = tls
        self.host = host
        self.port = port
        self.catalog: Catalog = build_catalog(scale=scale, hostile=hostile, vendor=vendor,
                                               dicom_tree=Path(dicom_tree) if dicom_tree is not None else None)
        self.faults = Faults()
        self.log: list[LogEntry] = []
        self.in_flight = self.peak_in_flight = 0
        self.keep_log = True  # False: entries only go to log_listeners
        self.log_listeners: list[Callable[[LogEntry], None]] = []  # called for every entry
        # For tests that wait for a moment rather than for a time: called with (event, request),
        # request being "METHOD path?query"; see tell().
        self.event_listeners: list[Callable[[str, str], None]] = []
        self.user, self.password = self.USER, self.PASSWORD
        self.outsider, self.outsider_password = self.OUTSIDER, self.OUTSIDER_PASSWORD
        self.alias, self.alias_secret = self.ALIAS, self.ALIAS_SECRET
        self.passwords = {self.user: self.password, self.outsider: self.outsider_password}
        self.aliases = {self.alias: (self.user, self.alias_secret)}
        self.api = Api(self.catalog, self.prefix, lambda: self.faults, ignore_columns=ignore_columns)
        self.sessions: dict[str, ServerSession] = {}
        self.sessions_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- life cycle ---

    def start(self) -> Sandbox:
        context = None
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, sandbox=self, tls_context=context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections (stalled answers end at once)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._connections_lock:
            for connection in list(self._connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def host_port(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host_port}{self.prefix}"

    # --- the request log ---

    def record(self, entry: LogEntry) -> None:
        if self.keep_log:
            with self._log_lock:
                self.log.append(entry)

    def notify(self, entry: LogEntry) -> None:
        """Tell the listeners about an entry whose request is over."""
        for listener in self.log_listeners:
            listener(entry)

    def tell(self, event: str, request: str) -> None:
        """Tell the event listeners that `event` happened to `request`: "arrived" as its answer
        begins (before any latency), "stalled" as a stalled body falls silent, "resumed" as that
        silence ends without the sandbox stopping."""
        for listener in self.event_listeners:
            listener(event, request)

    def clear_log(self) -> None:
        with self._log_lock:
            self.log.clear()

    def file_requests(self) -> list[LogEntry]:
        """GETs of single files (not listings, not zips)."""
        prefix_length = len(self.prefix)
        with self._log_lock:
            entries = list(self.log)
        return [entry for entry in entries
                if entry.method == "GET" and is_file_request(entry.path[prefix_length:], entry.query)]

    def count_in_flight(self, change: int) -> None:
        """Requests being answered right now; `peak_in_flight` keeps the most at once."""
        with self._log_lock:
            self.in_flight += change
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def zip_requests(self) -> list[LogEntry]:
        """GETs of a resource's files as one zip."""
        with self._log_lock:
            entries = list(self.log)
        return [entry for entry in entries if entry.method == "GET" and "format=zip" in entry.query]

    # --- server sessions ---

    def create_session(self, user: str) -> tuple[str, ServerSession]:
        session_id = secrets.token_hex(16).upper()
        session = ServerSession(user, int(time.time() * 1000), time.monotonic())
        with self.sessions_lock:
            self.sessions[session_id] = session
        return session_id, session

    def session_user(self, session_id: str) -> str | None:
        """The user of a live server session, keeping it alive; None if it ended or timed out."""
        with self.sessions_lock:
            session = self.sessions.get(session_id)
            if session is None:
                return None
            if (time.monotonic() - session.last_seen) * 1000 > SESSION_TIMEOUT_MS:
                del self.sessions[session_id]
                return None
            session.last_seen = time.monotonic()
            return session.user

    def end_session(self, session_id: str) -> None:
        with self.sessions_lock:
            self.sessions.pop(session_id, None)

    def end_all_sessions(self) -> None:
        with self.sessions_lock:
            self.sessions.clear()

    def check_password(self, login: str, password: str) -> str | None:
        """The user a login/password or alias/secret pair stands for, or None."""
        if login in self.passwords and secrets.compare_digest(self.passwords[login], password):
            return login
        if login in self.aliases:
            user, secret = self.aliases[login]
            if secrets.compare_digest(secret, password):
                return user
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, sandbox: Sandbox,
                 tls_context: ssl.SSLContext | None) -> None:
        self.sandbox = sandbox
        self.tls_context = tls_context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the connection's own thread, so one slow or
        # plain-text client cannot hold up the accept loop.
        connection = request
        if self.tls_context is not None:
            try:
                connection = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        with self.sandbox._connections_lock:
            self.sandbox._connections.add(connection)
        try:
            self.RequestHandlerClass(connection, client_address, self)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            with self.sandbox._connections_lock:
                self.sandbox._connections.discard(connection)
            if connection is not request:
                connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away is not news
