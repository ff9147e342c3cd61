"""The connection to XNAT: xnatpy logs in and out, and its HTTP session carries our GETs, retried
by the rule in retry.py, with one fresh login when a session expires, redirects followed only on
the server, and network errors in plain words."""
from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import threading
import time
from urllib.parse import urljoin, urlsplit

import requests

from xnat_download.config import Config
from xnat_download.errors import AuthError, NotFound, XnatError
from xnat_download.meter import NetworkMeter
from xnat_download.output import warn
from xnat_download.retry import RetryRule, needs_fresh_login, retried

LOGOUT_TIMEOUT = 1.0
MAX_REDIRECTS = 5

log = logging.getLogger("xnat_download")


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: credentials sent there never leave the machine."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OffServer(XnatError):
    """The server sent a request on to another server; not followed, since listings and files
    come from the server only (and our session cookie would go along to another port)."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where   # scheme://host:port of the other server


class XnatClient:
    """A logged-in connection: xnatpy logs in and out, and its HTTP session carries our requests.

    Our requests add what a download tool needs on top of xnatpy's session: retries with backoff,
    a fresh login when the session expires mid-run, and one-line errors.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.server = config.server
        self.host = urlsplit(config.server).hostname or config.server
        self.timeout = config.timeout
        self.retry_rule = RetryRule(config.retries, config.retry_wait)
        workers = config.workers
        # What the requests so far have shown of the network, for the route chooser; the time of
        # each request is recorded here, the throughput of bodies where they are read.
        self.meter = NetworkMeter()
        self._login_lock = threading.Lock()
        self._login_generation = 0
        self._xnat = self._login()
        self.http: requests.Session = self._xnat.interface
        # One pooled connection per worker, and no hidden retries below ours.
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=max(workers, 4),
                                                max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        # requests reads the environment (proxies, CA bundle) again for every request, which costs
        # more than the rest of a small file's request. Every request goes to one server, so
        # config.py reads it once, with the same variables and precedence requests itself uses.
        self.http.proxies = dict(config.proxies)
        if self.http.verify is True:
            self.http.verify = config.ca_bundle or True
        self.http.trust_env = False

    def _login(self):
        import xnat  # deferred: importing xnatpy costs a fifth of a second

        xnatpy_log = logging.getLogger("xnat_download.xnatpy")
        # xnatpy logs a failed login at CRITICAL besides raising: we report it ourselves, once.
        xnatpy_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL + 1)
        if self.config.server.startswith("http://") and not is_loopback(self.host):
            warn(f"{self.host} is reached over plain http://: the credentials cross the network "
                 f"unencrypted; use https:// if the server offers it")
        log.debug("logging in to %s as %s (credentials from %s)", self.server, self.config.user,
                  self.config.credentials_from)
        try:
            session = xnat.connect(self.server, user=self.config.user, password=self.config.secret,
                                   no_parse_model=True, logger=xnatpy_log,
                                   default_timeout=self.timeout, pilot_timeout=min(self.timeout, 30))
        except xnat.exceptions.XNATAuthError:
            raise self.refused_login() from None
        except requests.RequestException as error:
            raise XnatError(describe_network_error(self.host, error)) from None
        except xnat.exceptions.XNATError as error:
            status = getattr(error, "status_code", None)   # set on xnatpy's XNATResponseError
            if status is None:
                raise XnatError(f"logging in to {self.host} failed: {error}") from None
            if status == 401:   # refused on one of the requests that follow the login itself
                raise self.refused_login() from None
            raise XnatError(f"logging in to {self.host} failed: it answered {status} to "
                            f"{urlsplit(error.url).path}") from None
        except ValueError as error:
            # xnatpy took a page (the login page a redirect led to) for a session ID.
            log.debug("xnatpy could not log in: %s", error)
            raise self.refused_login() from None
        # Our requests log in again when the session expires; xnatpy's background heartbeat would
        # instead print a traceback from its thread.
        session.keepalive = False
        return session

    def refused_login(self) -> XnatError:
        """Wrong credentials, or no XNAT at this address at all (a path prefix missing or extra):
        one request without credentials tells which."""
        probe = self.url("/data/JSESSION")
        try:
            with requests.get(probe, timeout=min(self.timeout, 30)) as response:
                status = response.status_code
        except requests.RequestException:
            return self.auth_error()
        if status == 404:
            return XnatError(f"no XNAT answers at {self.server}: {urlsplit(probe).path} was not "
                             f"found (404); check the server address, including its path prefix if "
                             f"XNAT sits below one (such as /xnat)")
        return self.auth_error()

    def auth_error(self, detail: str = "") -> AuthError:
        return AuthError(
            f"authentication failed at {self.host}{detail}: check the user and secret, or renew "
            f"the alias token (credentials read from {self.config.credentials_from})")

    def close(self) -> None:
        """Log out. A courtesy to the server, so never waited for long: a slow server must not
        hold up the end of a run, least of all one stopped with Ctrl-C."""
        self._xnat.request_timeout = min(self.timeout, LOGOUT_TIMEOUT)
        with contextlib.suppress(Exception):
            self._xnat.disconnect()

    def __enter__(self) -> XnatClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def url(self, path: str) -> str:
        """Join a server-relative /data/... path to the server URL, keeping any path prefix."""
        return self.server + path


    def relogin(self, generation: int) -> None:
        """Log in again after a 401, once for all the workers that saw that 401."""
        with self._login_lock:
            if generation != self._login_generation:
                return  # another worker logged in again already
            log.debug("session expired; logging in again")
            self.http.cookies.pop("JSESSIONID", None)
            try:
                response = self.http.get(self.url("/data/JSESSION"), timeout=self.timeout,
                                         auth=(self.config.user, self.config.secret))
            except requests.RequestException as error:
                raise XnatError(describe_network_error(self.host, error)) from None
            if response.status_code != 200 or not response.cookies.get("JSESSIONID"):
                raise self.auth_error(" (the session expired and logging in again was refused)")
            self._login_generation += 1

    def request(self, path_or_url: str, *, params: dict | None = None, headers: dict | None = None,
                stream: bool = False) -> requests.Response:
        """GET with a fresh login on 401. Returns the response whatever its status otherwise."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        if not on_server(self.server, url):
            # Our session (and with it, perhaps, the credentials) goes only to our server.
            raise XnatError(f"refused to follow a link from {self.host} to another server")
        for attempt in range(2):
            generation = self._login_generation
            response = self._get_on_server(url, params, headers, stream)
            if needs_fresh_login(response):
                response.close()
                if attempt == 0:
                    self.relogin(generation)
                    continue
                raise self.auth_error(" (refused again right after a fresh login)")
            return response
        raise AssertionError("unreachable")

    def _get_on_server(self, url: str, params: dict | None, headers: dict | None,
                       stream: bool) -> requests.Response:
        """GET, following redirects only while they stay on our server; OffServer for one that
        leaves it. A redirect to a login page is returned as it is, for the caller to log in."""
        for hop in range(MAX_REDIRECTS + 1):
            started_cpu = time.thread_time()
            response = self.http.get(url, params=params, headers=headers, stream=stream,
                                     timeout=(min(self.timeout, 30), self.timeout),
                                     allow_redirects=False)
            if not response.is_redirect or needs_fresh_login(response):
                if hop == 0 and response.status_code in (200, 206):
                    # One plain request, answered: what it cost goes to the route chooser.
                    self.meter.record_request(response.elapsed.total_seconds(),
                                              time.thread_time() - started_cpu)
                return response
            target = urljoin(response.url, response.headers["Location"])
            response.close()
            if not on_server(self.server, target):
                parts = urlsplit(target)
                where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
                raise OffServer(f"{self.host} sent the request for {urlsplit(url).path} on to "
                                f"another server ({where}); not followed: listings and files come "
                                f"from {self.host} only", where)
            url, params = target, None   # the query travels in the new address
        raise XnatError(f"{self.host} redirected {urlsplit(url).path} more than {MAX_REDIRECTS} times")

    def get_listing(self, path: str, params: dict | None = None) -> list[dict]:
        """The rows of a JSON listing, retried on network trouble and 429/5xx.

        404 and 403 become XnatError(status) for the caller to explain with context.
        """
        params = dict(params or {}, format="json")
        attempts = self.retry_rule.attempts(what=path)
        for _ in attempts:
            generation = self._login_generation
            try:
                response = self.request(path, params=params)
            except requests.RequestException as error:
                attempts.failed(describe_network_error(self.host, error))
                continue
            if response.status_code in (403, 404):
                raise NotFound(response.status_code, path)
            if retried(response.status_code):
                attempts.failed_with(response, f"{self.host} answered {response.status_code} to {path}")
                continue
            if response.status_code != 200:
                raise XnatError(f"{self.host} answered {response.status_code} "
                                f"{error_text(response)} to {path}")
            try:
                return parse_result_set(response)
            except ValueError as error:
                attempts.failed(f"{self.host} sent an unusable listing for {path}: {error}")
                log.debug(attempts.problem)
                if shows_login_form(response):
                    # Some sites answer an expired session with their login page and a 200.
                    self.relogin(generation)
        raise XnatError(attempts.exhausted())


def on_server(server: str, url: str) -> bool:
    """Whether a URL is server-relative or on our server (same scheme, host, port, path prefix)."""
    return "://" not in url or url.startswith(server + "/")


def shows_login_form(response: requests.Response) -> bool:
    """The answer is a page with a password field: a login page, not data."""
    return re.search(rb"<input[^>]+type=[\"']?password", response.content, re.I) is not None


def parse_result_set(response: requests.Response) -> list[dict]:
    """The rows of XNAT's {"ResultSet": {"Result": [...]}}, or ValueError saying what is wrong."""
    body = response.content
    if not body.strip():
        raise ValueError("an empty answer")
    if body.lstrip()[:1] == b"<":
        raise ValueError("an HTML page instead of JSON (a login page or a proxy error?)")
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("JSON that does not parse (cut short?)") from None
    try:
        rows = data["ResultSet"]["Result"]
    except (KeyError, TypeError):
        raise ValueError("JSON without ResultSet.Result") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("ResultSet.Result is not a list of rows")
    return rows


def error_text(response: requests.Response) -> str:
    """The message of an XNAT (Restlet) error page, never the raw HTML."""
    match = re.search(r"<h3>(.*?)</h3>", response.text or "", re.S)
    return f"({match.group(1).strip()[:200]})" if match else f"({response.reason or 'no reason given'})"


def describe_network_error(host: str, error: Exception) -> str:
    text = str(error)
    if isinstance(error, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text:
            kind = ("its TLS certificate could not be verified (for a private certificate "
                    "authority, point REQUESTS_CA_BUNDLE at its certificate file)")
        else:
            kind = "the TLS (https) handshake failed; check that the server really offers https"
    elif isinstance(error, requests.exceptions.ConnectTimeout):
        kind = "connecting timed out"
    elif isinstance(error, requests.exceptions.Timeout) or "timed out" in text.lower():
        kind = "the server stopped answering (timed out)"
    elif isinstance(error, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in text:
        kind = "the answer ended early (the connection closed mid-transfer)"
    elif isinstance(error, requests.exceptions.ConnectionError):
        if "Name or service not known" in text or "nodename nor servname" in text \
                or "getaddrinfo failed" in text or "NameResolution" in text:
            kind = "the host name could not be resolved (DNS); check the server address"
        elif "Connection refused" in text or "ConnectionRefused" in text:
            kind = "the connection was refused; check the address and port, or whether the server is up"
        elif "reset" in text.lower():
            kind = "the connection was reset"
        else:
            kind = "the connection broke"
    else:
        kind = f"the request failed ({type(error).__name__})"
    return f"could not reach {host}: {kind}"
