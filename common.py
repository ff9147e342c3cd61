"""Shared machinery of the xnat-download scripts.

The constants below are the site defaults: the first thing to edit. Everything else is a toolbox
the four scripts call: configuration, login, listing, the folder layout and the download engine.
Each setting can also come from the command line or the environment; see README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import enum
import fnmatch
import getpass
import hashlib
import json
import logging
import netrc
import os
import queue
import random
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Callable, Iterable, Iterator, Sequence
from urllib.parse import unquote, urlsplit

import requests

# --- Site defaults: edit these --------------------------------------------------------------
XNAT_SERVER = "https://xnat.abudhabi.nyu.edu"
PROJECT_ID = "rokerslab_ari-clean"
TOKEN_USER = ""      # alias token ("Manage Alias Tokens" in XNAT); prefer XNAT_USER
TOKEN_SECRET = ""    # never commit a real secret; prefer XNAT_PASS or ~/.netrc
OUTPUT_DIR = "downloaded_data"
RESOURCE = "DICOM"
WORKERS = 8
RETRIES = 5          # extra attempts per file or listing after the first one fails
TIMEOUT = 60         # seconds without a byte from the server before an attempt is abandoned
RETRY_WAIT = 1.0     # seconds before the first retry; doubles each time (XNAT_RETRY_WAIT overrides)
# ----------------------------------------------------------------------------------------------

MANIFEST_NAME = ".xnat-manifest.json"
LOCK_NAME = ".xnat-lock"
CHUNK_SIZE = 1024 * 1024
MAX_RETRY_WAIT = 60.0
MANIFEST_FLUSH_SECONDS = 2.0
LOGOUT_TIMEOUT = 1.0

log = logging.getLogger("xnat_download")


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130   # Ctrl-C (SIGINT)
    TERMINATED = 143    # SIGTERM, as a batch system sends before it kills a job


class XnatError(Exception):
    """Anything the user must be told about in one line; the run then exits with ERROR."""


class AuthError(XnatError):
    """The server refused the credentials."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop, keep what is verified, exit 130 (143 for SIGTERM)."""

    def __init__(self, exit_status: int = 130) -> None:
        super().__init__()
        self.exit_status = exit_status


# --- Running a script: one place turns every failure into one line ---------------------------

def script_name() -> str:
    return Path(sys.argv[0]).name or "xnat-download"


# Secrets registered by resolve_config, scrubbed from every message we print. Module state by
# necessity: a secret can surface in any exception message, and the one place that prints those
# (run) must know what to scrub without every caller passing it along.
_REGISTERED_SECRETS: set[str] = set()


def redact(text: str) -> str:
    for secret in _REGISTERED_SECRETS:
        # A secret of a few characters would turn ordinary words into asterisks; it is also far
        # too weak to be a real token, whose secrets run to dozens of characters.
        if len(secret) >= 4:
            text = text.replace(secret, "********")
    return text


def warn(message: str) -> None:
    """A warning line of its own; shown even with --quiet."""
    print(f"{script_name()}: warning: {redact(message)}", file=sys.stderr, flush=True)


def note(message: str, quiet: bool = False) -> None:
    """A note for the user on stderr, hidden by --quiet."""
    if not quiet:
        print(redact(message), file=sys.stderr, flush=True)


def run(main: Callable[[], int]) -> int:
    """Run a script's main, turning errors, Ctrl-C and closed pipes into one line and an exit code."""
    prog = script_name()
    # A file-size limit (ulimit -f) must surface as an OSError we report, not kill the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return int(main())
    except XnatError as error:
        _print_traceback_if_verbose()
        print(f"{prog}: error: {redact(str(error))}", file=sys.stderr, flush=True)
        return ExitStatus.ERROR
    except (KeyboardInterrupt, Interrupted) as stop:
        _print_traceback_if_verbose()
        print(f"{prog}: interrupted; running the same command again resumes where it stopped",
              file=sys.stderr, flush=True)
        return getattr(stop, "exit_status", ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # The reader (head, less) went away: not our failure. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitStatus.OK
    except Exception as error:  # a bug or an unforeseen local failure: still one line
        _print_traceback_if_verbose()
        hint = "" if log.isEnabledFor(logging.DEBUG) else " (run again with --verbose for details)"
        message = f"unexpected {type(error).__name__}: {error}{hint}"
        print(f"{prog}: error: {redact(message)}", file=sys.stderr, flush=True)
        return ExitStatus.ERROR


def _print_traceback_if_verbose() -> None:
    if log.isEnabledFor(logging.DEBUG):
        print(redact(traceback.format_exc()), file=sys.stderr, end="", flush=True)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(ExitStatus.TERMINATED)


# --- Command line ------------------------------------------------------------------------------

def base_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the options every script has; the module docstring is its description."""
    parser = argparse.ArgumentParser(
        prog=script_name(), description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_argument_group("connection (defaults: environment, then common.py)")
    group.add_argument("--server", metavar="URL", help="XNAT address (XNAT_HOST, XNAT_SERVER)")
    group.add_argument("--project", metavar="ID", help="project ID (XNAT_PROJECT, PROJECT_ID)")
    group.add_argument("--user", metavar="NAME",
                       help="login or alias token (XNAT_USER, TOKEN_USER, ~/.netrc); "
                            "the secret is never an option: XNAT_PASS, TOKEN_SECRET, ~/.netrc or a prompt")
    group.add_argument("--demo", action="store_true",
                       help="run against the bundled sandbox XNAT with its demo project (no account needed)")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true", help="details, and tracebacks on error")
    talk.add_argument("-q", "--quiet", action="store_true", help="errors and warnings only")
    return parser


def add_download_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("download")
    group.add_argument("--output-dir", metavar="DIR", help=f"where to write (default {OUTPUT_DIR})")
    group.add_argument("--resource", default=RESOURCE, help=f"resource to download (default {RESOURCE})")
    group.add_argument("--workers", type=positive_int, default=WORKERS,
                       help=f"files fetched at once (default {WORKERS}; 1 is sequential)")
    group.add_argument("--retries", type=non_negative_int, default=RETRIES,
                       help=f"retries per file after a failure (default {RETRIES})")
    group.add_argument("--timeout", type=positive_float, default=TIMEOUT, metavar="SECONDS",
                       help=f"give up on an attempt after this long without data (default {TIMEOUT})")
    group.add_argument("--dry-run", action="store_true",
                       help="show what would be downloaded, write nothing")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    log.setLevel(level)
    # urllib3 at DEBUG prints one line per request: useful with --verbose, noise otherwise.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if args.verbose else logging.ERROR)


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


# --- Configuration -----------------------------------------------------------------------------

@dataclass
class Config:
    server: str
    project: str
    user: str | None
    secret: str | None = field(repr=False)
    credentials_from: str          # where user and secret came from, for error messages
    output_dir: Path
    quiet: bool = False
    demo: bool = False
    started: float = field(default_factory=time.monotonic)   # for the time a summary reports


def resolve_config(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Config:
    """Each setting from the first source that has it: option, environment, constant, netrc, prompt."""
    env = os.environ if environ is None else environ
    server = (args.server or env.get("XNAT_HOST") or XNAT_SERVER).strip()
    check_server_url(server)
    project = args.project or env.get("XNAT_PROJECT") or PROJECT_ID
    host = urlsplit(server).hostname or ""
    netrc_login, netrc_password = read_netrc(host, env)

    if args.user:
        user, user_from = args.user, "the --user option"
    elif env.get("XNAT_USER"):
        user, user_from = env["XNAT_USER"], "XNAT_USER"
    elif TOKEN_USER:
        user, user_from = TOKEN_USER, "TOKEN_USER in common.py"
    elif netrc_login:
        user, user_from = netrc_login, "~/.netrc"
    else:
        user, user_from = None, ""

    if getattr(args, "demo_secret", None):
        secret, secret_from = args.demo_secret, "the demo sandbox"
        user_from = secret_from
    elif env.get("XNAT_PASS"):
        secret, secret_from = env["XNAT_PASS"], "XNAT_PASS"
    elif TOKEN_SECRET:
        secret, secret_from = TOKEN_SECRET, "TOKEN_SECRET in common.py"
    elif netrc_password and user is not None and netrc_login == user:
        secret, secret_from = netrc_password, "~/.netrc"
    else:
        secret, secret_from = None, ""

    if user is None or secret is None:
        if user is not None and sys.stdin is not None and sys.stdin.isatty():
            secret = getpass.getpass(f"Password or token secret for {user} at {host}: ")
            secret_from = "the password prompt"
        else:
            missing = "user and secret" if user is None else "secret"
            raise XnatError(
                f"no credentials for {host} ({missing} missing): set XNAT_USER and XNAT_PASS, "
                f"or TOKEN_USER and TOKEN_SECRET in common.py, or add 'machine {host} login ... "
                f"password ...' to ~/.netrc")
    _REGISTERED_SECRETS.add(secret)
    output = getattr(args, "output_dir", None) or OUTPUT_DIR
    sources = describe_sources(user_from, secret_from)
    return Config(server=server.rstrip("/"), project=project, user=user, secret=secret,
                  credentials_from=sources, output_dir=Path(output), quiet=args.quiet,
                  demo=bool(getattr(args, "demo", False)))


def describe_sources(user_from: str, secret_from: str) -> str:
    """'XNAT_USER and XNAT_PASS', 'TOKEN_USER and TOKEN_SECRET in common.py', '~/.netrc', ..."""
    if user_from == secret_from:
        return user_from
    suffix = " in common.py"
    if user_from.endswith(suffix) and secret_from.endswith(suffix):
        return f"{user_from[:-len(suffix)]} and {secret_from}"
    return f"{user_from} and {secret_from}"


def check_server_url(server: str) -> None:
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise XnatError(f"the server address must start with https:// (or http://) and name a host, "
                        f"not {parts.scheme + '://' if parts.scheme else ''}{parts.hostname or '...'}")
    if parts.username or parts.password:
        # Never echo it: the part before '@' may be a password.
        raise XnatError("the server address holds credentials (user:secret@host): remove them "
                        "and set XNAT_USER and XNAT_PASS instead")


def read_netrc(host: str, environ: dict[str, str]) -> tuple[str | None, str | None]:
    """Login and password for the host (no port) from ~/.netrc (or $NETRC), if any."""
    path = Path(environ["NETRC"]) if environ.get("NETRC") else Path.home() / ".netrc"
    if not path.is_file():
        return None, None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        # As Python's own netrc reader insists for ~/.netrc: a password file must be private.
        raise XnatError(f"{path} can be read by other users: run 'chmod 600 {path}'")
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except netrc.NetrcParseError as error:
        # Its message may quote the offending line, which can hold a password: never show it.
        if "access" in str(error) or "owner" in str(error):
            raise XnatError(f"{path} can be read by other users: run 'chmod 600 {path}'") from None
        raise XnatError(f"{path} could not be parsed (line {error.lineno}); fix or remove it") from None
    except OSError as error:
        raise XnatError(f"{path} could not be read: {error.strerror}") from None
    if not entry:
        return None, None
    login, _account, password = entry
    return login or None, password or None


@contextlib.contextmanager
def demo_sandbox(args: argparse.Namespace) -> Iterator[None]:
    """With --demo, serve the bundled sandbox XNAT and point the arguments at it."""
    if not args.demo:
        yield
        return
    from sandbox import Sandbox  # only the demo needs it (and pydicom)

    with Sandbox() as server:
        args.server, args.user = server.url, server.user
        args.project = args.project or "DEMO"
        args.demo_secret = server.password
        note(f"Demo: a sandbox XNAT serves the demo project at {server.url}", args.quiet)
        yield


# --- The connection ----------------------------------------------------------------------------

class XnatClient:
    """A logged-in connection: xnatpy logs in and out, and its HTTP session carries our requests.

    Our requests add what a download tool needs on top of xnatpy's session: retries with backoff,
    a fresh login when the session expires mid-run, and one-line errors.
    """

    def __init__(self, config: Config, workers: int = WORKERS, retries: int = RETRIES,
                 timeout: float = TIMEOUT) -> None:
        self.config = config
        self.server = config.server
        self.host = urlsplit(config.server).hostname or config.server
        self.retries = retries
        self.timeout = timeout
        try:
            self.retry_wait = float(os.environ.get("XNAT_RETRY_WAIT", RETRY_WAIT))
        except ValueError:
            raise XnatError(f"XNAT_RETRY_WAIT must be a number of seconds, not "
                            f"{os.environ['XNAT_RETRY_WAIT']!r}") from None
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
        # more than the rest of a small file's request. Every request goes to one server, so read
        # it once, with the same variables and precedence requests itself uses.
        self.http.proxies = requests.utils.get_environ_proxies(self.server)
        if self.http.verify is True:
            self.http.verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                                or os.environ.get("CURL_CA_BUNDLE") or True)
        self.http.trust_env = False

    def _login(self):
        import xnat  # deferred: importing xnatpy costs a fifth of a second

        xnatpy_log = logging.getLogger("xnat_download.xnatpy")
        # xnatpy logs a failed login at CRITICAL besides raising: we report it ourselves, once.
        xnatpy_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL + 1)
        if self.config.server.startswith("http://") and not self.config.demo:
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
            response = self.http.get(url, params=params, headers=headers, stream=stream,
                                     timeout=(min(self.timeout, 30), self.timeout))
            if response.status_code == 401 or lands_on_login_page(response):
                response.close()
                if attempt == 0:
                    self.relogin(generation)
                    continue
                raise self.auth_error(" (refused again right after a fresh login)")
            return response
        raise AssertionError("unreachable")

    def get_listing(self, path: str, params: dict | None = None) -> list[dict]:
        """The rows of a JSON listing, retried on network trouble and 429/5xx.

        404 and 403 become XnatError(status) for the caller to explain with context.
        """
        params = dict(params or {}, format="json")
        last_problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(backoff(attempt, self.retry_wait, retry_after))
            retry_after = None
            generation = self._login_generation
            try:
                response = self.request(path, params=params)
            except requests.RequestException as error:
                last_problem = describe_network_error(self.host, error)
                continue
            if response.status_code in (403, 404):
                raise NotFound(response.status_code, path)
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                last_problem = f"{self.host} answered {response.status_code} to {path}"
                continue
            if response.status_code != 200:
                raise XnatError(f"{self.host} answered {response.status_code} "
                                f"{error_text(response)} to {path}")
            try:
                return parse_result_set(response)
            except ValueError as error:
                last_problem = f"{self.host} sent an unusable listing for {path}: {error}"
                log.debug(last_problem)
                if shows_login_form(response):
                    # Some sites answer an expired session with their login page and a 200.
                    self.relogin(generation)
        raise XnatError(f"{last_problem} (after {self.retries + 1} attempts)")


def on_server(server: str, url: str) -> bool:
    """Whether a URL is server-relative or on our server (same scheme, host, port, path prefix)."""
    return "://" not in url or url.startswith(server + "/")


class NotFound(XnatError):
    def __init__(self, status: int, path: str) -> None:
        super().__init__(f"{path} not found or not accessible ({status})")
        self.status = status


def lands_on_login_page(response: requests.Response) -> bool:
    """An expired session may be redirected to the login page instead of getting a 401."""
    return bool(response.history) and "login" in response.url.lower()


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


def parse_retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare for XNAT; fall back to our own backoff


def backoff(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry `attempt` (1, 2, ...): the server's Retry-After if it gave one,
    otherwise doubling waits with jitter so that parallel workers do not retry in lockstep."""
    if retry_after is not None:
        return min(retry_after, 5 * MAX_RETRY_WAIT)
    return min(MAX_RETRY_WAIT, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


# --- Listing a project ------------------------------------------------------------------------

@dataclass
class Scan:
    id: str
    type: str
    series_description: str = ""
    quality: str = ""
    files: int | None = None     # of the resource asked for; None = not counted
    bytes: int | None = None


@dataclass
class Session:
    id: str
    label: str
    subject_label: str
    date: str = ""
    modality: str = ""
    scans: list[Scan] = field(default_factory=list)


@dataclass
class Subject:
    id: str
    label: str
    sessions: list[Session] = field(default_factory=list)


def natural_key(text: str) -> list:
    """Sort key that puts sub-2 before sub-10: digit runs compare as numbers."""
    return [int(part) if index % 2 else part.casefold()
            for index, part in enumerate(re.split(r"(\d+)", text))]


def modality_of(xsi_type: str) -> str:
    """xnat:mrSessionData -> MR: the modality is spelled out in the session's data type."""
    match = re.match(r"(?:\w+:)?(\w+?)SessionData$", xsi_type or "")
    return match.group(1).upper() if match else ""


def list_projects(client: XnatClient) -> list[dict]:
    rows = client.get_listing("/data/projects")
    return sorted(rows, key=lambda row: natural_key(row.get("ID", "")))


SCAN_COLUMNS = ("xnat:imagescandata/id", "xnat:imagescandata/type",
                "xnat:imagescandata/series_description", "xnat:imagescandata/quality")


def list_project(client: XnatClient, project: str) -> list[Subject]:
    """Every subject, session and scan of a project, in two requests however big it is."""
    try:
        subject_rows = client.get_listing(f"/data/projects/{project}/subjects")
    except NotFound as error:
        # A protected project is listed to everyone but answers 403 to non-members; a private
        # one answers 404, as if it did not exist.
        why = ("this user may not read its data (403): ask one of its owners for access"
               if error.status == 403 else "1_list_projects.py shows the projects you can access")
        raise XnatError(f"project {project} not found or not accessible at {client.host} "
                        f"({why})") from None
    subjects = {row.get("ID", ""): Subject(id=row.get("ID", ""), label=row.get("label", ""))
                for row in subject_rows}
    columns = ("ID", "label", "subject_ID", "subject_label", "date", "xsiType") + SCAN_COLUMNS
    rows = client.get_listing("/data/experiments", {
        "project": project, "xsiType": "xnat:imageSessionData", "columns": ",".join(columns)})
    rows = [{key.lower(): value for key, value in row.items()} for row in rows]
    has_scan_columns = not rows or SCAN_COLUMNS[0] in rows[0]
    if not has_scan_columns:
        log.debug("the server ignored columns= on /data/experiments: asking each session for its scans")
    sessions: dict[str, Session] = {}
    for row in rows:
        session_id = row.get("id", "")
        session = sessions.get(session_id)
        if session is None:
            subject = subjects.get(row.get("subject_id", ""))
            if subject is None:  # shared in from elsewhere, or a subject listing that lags
                subject = subjects.setdefault(row.get("subject_id", ""), Subject(
                    id=row.get("subject_id", ""), label=row.get("subject_label", "")))
            session = Session(id=session_id, label=row.get("label", ""), subject_label=subject.label,
                              date=row.get("date", ""), modality=modality_of(row.get("xsitype", "")))
            sessions[session_id] = session
            subject.sessions.append(session)
        if has_scan_columns and row.get(SCAN_COLUMNS[0]):
            session.scans.append(Scan(id=row[SCAN_COLUMNS[0]], type=row.get(SCAN_COLUMNS[1], ""),
                                      series_description=row.get(SCAN_COLUMNS[2], ""),
                                      quality=row.get(SCAN_COLUMNS[3], "")))
    if not has_scan_columns:
        for session in sessions.values():
            session.scans = [Scan(id=r.get("ID", ""), type=r.get("type", ""),
                                  series_description=r.get("series_description", ""),
                                  quality=r.get("quality", ""))
                             for r in client.get_listing(f"/data/experiments/{session.id}/scans")]
    for subject in subjects.values():
        subject.sessions.sort(key=lambda s: natural_key(s.label))
        for session in subject.sessions:
            session.scans.sort(key=lambda s: natural_key(s.id))
    return sorted(subjects.values(), key=lambda s: natural_key(s.label))


def find_subject(subjects: list[Subject], wanted: str | None, project: str) -> Subject:
    """The subject with this label or ID, or the first (natural order) that has a session."""
    if wanted is None:
        for subject in subjects:
            if subject.sessions:
                return subject
        raise XnatError(f"project {project} has no subject with a session")
    for subject in subjects:
        if wanted in (subject.label, subject.id):
            return subject
    raise XnatError(f"subject {wanted} not found in project {project}; subjects there: "
                    f"{some(s.label for s in subjects)}")


def find_session(subjects: list[Subject], subject: Subject | None, wanted: str, project: str) -> Session:
    """The session with this label or ID, within the subject if one is given."""
    pool = subject.sessions if subject else [s for subj in subjects for s in subj.sessions]
    for session in pool:
        if wanted in (session.label, session.id):
            return session
    where = f"subject {subject.label} in project {project}" if subject else f"project {project}"
    raise XnatError(f"session {wanted} not found for {where}; sessions there: "
                    f"{some(s.label for s in pool)}")


def pick_session(client: XnatClient, subjects: list[Subject], subject: Subject | None,
                 wanted: str | None, resource: str, project: str
                 ) -> tuple[Session, dict[str, list[RemoteFile]]]:
    """The session asked for (within the subject, if one is given); else the first session, in
    natural order of subject and session, that has the resource. With its files of the resource."""
    if wanted:
        session = find_session(subjects, subject, wanted, project)
        return session, list_session_files(client, session, resource)
    candidates = subject.sessions if subject else [s for subj in subjects for s in subj.sessions]
    for session in candidates:
        files = list_session_files(client, session, resource)
        if files:
            return session, files
    where = f"subject {subject.label} in project {project}" if subject else f"project {project}"
    raise XnatError(f"no session of {where} has a {resource} resource; sessions there: "
                    f"{some(s.label for s in candidates)}")


def some(names: Iterable[str], limit: int = 12) -> str:
    """A readable, bounded list of what exists, for error messages."""
    names = list(names)
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- Files of a session ----------------------------------------------------------------------

@dataclass
class RemoteFile:
    scan_id: str
    path: str            # relative path inside the resource, as the server names it
    size: int
    md5: str             # lower-case hex, or "" when the server keeps none
    url: str             # server-relative URI to GET


def list_session_files(client: XnatClient, session: Session, resource: str) -> dict[str, list[RemoteFile]]:
    """All files of one resource across a session's scans, in one request, grouped by scan ID."""
    path = f"/data/experiments/{session.id}/scans/ALL/resources/{resource}/files"
    try:
        rows = client.get_listing(path)
    except NotFound:
        return {}  # no scan of this session has the resource
    files: dict[str, list[RemoteFile]] = {}
    for row in rows:
        uri = row.get("URI", "")
        # Only scan files: a listing can fall back to a subject's or project's own resources.
        match = re.search(r"/scans/([^/]+)/resources/[^/]+/files/(.+)$", uri)
        if not match:
            continue
        scan_id, name = unquote(match.group(1)), unquote(match.group(2))
        try:
            size = int(row.get("Size", ""))
        except ValueError:
            size = -1  # unknown: verified by digest alone
        files.setdefault(scan_id, []).append(RemoteFile(
            scan_id=scan_id, path=name or row.get("Name", ""), size=size,
            md5=row.get("digest", "").strip().lower(), url=uri))
    return files


def count_files(client: XnatClient, session: Session, resource: str) -> None:
    """Fill each scan's file count and size for the resource: one request for the whole session."""
    files = list_session_files(client, session, resource)
    for scan in session.scans:
        scan_files = files.get(scan.id, [])
        scan.files = len(scan_files)
        scan.bytes = sum(max(f.size, 0) for f in scan_files)


def scan_matches(scan: Scan, patterns: Sequence[str]) -> bool:
    """Type or series description matches a word or shell wildcard, ignoring case."""
    values = [scan.type.casefold(), scan.series_description.casefold()]
    return any(fnmatch.fnmatchcase(value, pattern.casefold())
               for pattern in patterns for value in values if value)


# --- Names on disk -----------------------------------------------------------------------------

UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME_BYTES = 200


class UnsafeName(ValueError):
    pass


def safe_component(name: str) -> str:
    """One path component with only [A-Za-z0-9._-]; long names cut, with a digest to stay unique."""
    cleaned = UNSAFE_CHARACTERS.sub("_", name)
    if cleaned in ("", ".", ".."):
        raise UnsafeName(f"refused the name {name!r}")
    if len(cleaned) > MAX_NAME_BYTES:
        stem, dot, suffix = cleaned.rpartition(".")
        suffix = dot + suffix if dot and len(suffix) <= 16 else ""
        digest = hashlib.md5(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        cleaned = cleaned[:MAX_NAME_BYTES - len(suffix) - 13] + "-" + digest + suffix
    # Our own bookkeeping names are reserved.
    if cleaned.startswith(".xnat-"):
        cleaned = "_" + cleaned
    if cleaned.endswith(".part"):
        cleaned += "_"
    return cleaned


def safe_relative_path(name: str) -> str:
    """A server file name made safe to join below a scan folder; UnsafeName if it cannot be."""
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeName(f"refused the absolute path {name!r}")
    parts = name.replace("\\", "/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeName(f"refused the path {name!r}")
    return "/".join(safe_component(part) for part in parts)


def scan_folder_name(scan: Scan) -> str:
    # Cleaned as one name, so that a long type is cut like a long file name, not refused by the disk.
    return safe_component(f"scan-{scan.id}" + (f"_{scan.type}" if scan.type else ""))


def session_folder_name(session: Session) -> str:
    return safe_component(f"session-{session.label}")


def inside(folder: Path, path: Path) -> bool:
    """True if path, links resolved, stays within folder."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


# --- Plans: what to fetch, and where ----------------------------------------------------------

@dataclass
class PlannedFile:
    remote: RemoteFile
    relative: str        # path below the scan folder
    target: Path


@dataclass
class ScanPlan:
    session: Session
    scan: Scan
    folder: Path
    source: dict
    files: list[PlannedFile] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)   # (server name, why)

    @property
    def total_bytes(self) -> int:
        return sum(max(f.remote.size, 0) for f in self.files)


def plan_scan(client: XnatClient, project: str, session: Session, scan: Scan, resource: str,
              files: list[RemoteFile], folder: Path, output_dir: Path) -> ScanPlan:
    """Map a scan's server files to safe paths in its folder; refuse what would escape it."""
    source = {"server": client.server, "project": project, "subject": session.subject_label,
              "session": session.label, "session_id": session.id, "scan": scan.id,
              "type": scan.type, "resource": resource}
    plan = ScanPlan(session=session, scan=scan, folder=folder, source=source)
    cleaned: list[tuple[RemoteFile, str]] = []
    # Sorted so that, when two names clean up to the same one, the same file keeps the plain name
    # on every run.
    for remote in sorted(files, key=lambda f: f.path):
        try:
            cleaned.append((remote, safe_relative_path(remote.path)))
        except UnsafeName as error:
            plan.refused.append((remote.path, str(error)))
    # Every sub-folder is taken from the start: a file named like a folder ('a' beside 'a/b.dcm')
    # would otherwise stop the whole download when the folder cannot be made.
    taken: set[str] = set()
    for _, relative in cleaned:
        parts = relative.split("/")
        taken.update("/".join(parts[:end]).casefold() for end in range(1, len(parts)))
    for remote, relative in cleaned:
        relative = unique_name(relative, remote.path, taken)
        taken.add(relative.casefold())
        target = folder / relative
        if not inside(output_dir, target):
            plan.refused.append((remote.path, "refused: it would land outside the output folder"))
            continue
        if not on_server(client.server, remote.url):
            plan.refused.append((remote.path, "refused: the listing links it to another server"))
            continue
        plan.files.append(PlannedFile(remote=remote, relative=relative, target=target))
    return plan


def unique_name(relative: str, server_name: str, taken: set[str]) -> str:
    """The relative path, tagged with a digest of the server's name if a file or folder has it
    already (case-insensitively: 'a b.dcm' and 'a_b.dcm' clean up to one name)."""
    candidate, attempt = relative, 0
    while candidate.casefold() in taken:
        attempt += 1
        salted = server_name if attempt == 1 else f"{server_name}\n{attempt}"
        tag = hashlib.md5(salted.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        stem, dot, suffix = relative.rpartition(".")
        candidate = f"{stem}_{tag}.{suffix}" if dot and "/" not in suffix else f"{relative}_{tag}"
    return candidate


# --- Manifest and lock --------------------------------------------------------------------------

def same_source(recorded: dict, wanted: dict) -> bool:
    """Same server (host and path prefix, not scheme or port), project, session, scan, resource."""
    def where(server: str) -> tuple[str, str]:
        parts = urlsplit(server or "")
        return (parts.hostname or "").lower(), parts.path.rstrip("/")

    return (where(recorded.get("server", "")) == where(wanted["server"])
            and all(recorded.get(key) == wanted[key]
                    for key in ("project", "session", "scan", "resource")))


class Manifest:
    """`.xnat-manifest.json`: where a scan folder's files came from, and each verified file."""

    def __init__(self, folder: Path, source: dict) -> None:
        self.path = folder / MANIFEST_NAME
        self.source = source
        self.files: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._dirty = False
        self._last_write = 0.0

    def load(self) -> None:
        """Read what an earlier run recorded; XnatError if the folder belongs to another source."""
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise XnatError(f"{self.path} is not a file: move it away, then run again")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            recorded_source, files = data["source"], data["files"]
            if not isinstance(recorded_source, dict) or not isinstance(files, dict):
                raise ValueError
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            warn(f"{self.path} is damaged; the files in that folder will be checked again")
            return
        if not same_source(recorded_source, self.source):
            raise XnatError(
                f"{self.path.parent} holds another scan's data (from "
                f"{recorded_source.get('project')}/{recorded_source.get('session')} scan "
                f"{recorded_source.get('scan')}): nothing was written there; choose another "
                f"folder with --output-dir")
        self.files = {name: entry for name, entry in files.items()
                      if isinstance(entry, dict) and {"size", "md5"} <= entry.keys()}

    def add(self, relative: str, size: int, md5: str, mtime_ns: int) -> None:
        with self._lock:
            self.files[relative] = {"size": size, "md5": md5, "mtime_ns": mtime_ns}
            self._dirty = True
        if time.monotonic() - self._last_write > MANIFEST_FLUSH_SECONDS:
            self.save()

    def save(self) -> None:
        with self._lock:
            if not self._dirty and self.path.exists():
                return
            data = {"format": 1, "source": self.source,
                    "files": dict(sorted(self.files.items()))}
            temporary = self.path.with_name(self.path.name + ".part")
            try:
                temporary.write_text(json.dumps(data, indent=1), encoding="utf-8")
                os.replace(temporary, self.path)
            except OSError as error:   # the disk filled up under the data files too
                remove_quietly(temporary)
                raise DiskProblem(describe_disk_error(error, self.path.parent)) from None
            self._dirty = False
            self._last_write = time.monotonic()


@contextlib.contextmanager
def folder_lock(folder: Path, quiet: bool) -> Iterator[None]:
    """Hold the scan folder for this process: a second download into it waits, then resumes."""
    try:
        handle = open(folder / LOCK_NAME, "a+b")
    except OSError as error:
        try:   # a read-only folder: a complete download there is still checked, not refused
            handle = open(folder / LOCK_NAME, "rb")
        except OSError:
            log.debug("no lock for %s: %s", folder, error)
            yield  # nothing can be written there, so nothing can clash either
            return
    try:
        if not _try_lock(handle):
            note(f"waiting for another download into {folder} to finish", quiet)
            _lock(handle)
        yield
    finally:
        handle.close()  # closing releases the lock; the empty lock file stays harmlessly


try:
    import fcntl

    def _try_lock(handle) -> bool:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _lock(handle) -> None:
        fcntl.flock(handle, fcntl.LOCK_EX)
except ImportError:  # Windows
    import msvcrt

    def _try_lock(handle) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _lock(handle) -> None:
        while not _try_lock(handle):
            time.sleep(0.5)


# --- Downloading ----------------------------------------------------------------------------

@dataclass
class Summary:
    downloaded: int = 0
    downloaded_bytes: int = 0
    present: int = 0
    present_bytes: int = 0
    skipped: list[str] = field(default_factory=list)   # scans and sessions, as noted
    failed: list[str] = field(default_factory=list)
    needs_attention: int = 0   # of the failed: those no rerun will change (unsafe names, others' files)
    started: float = field(default_factory=time.monotonic)

    def line(self, folder: Path) -> str:
        parts = [f"{self.downloaded} files ({human_size(self.downloaded_bytes)}) downloaded",
                 f"{self.present} already present ({human_size(self.present_bytes)})"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        parts.append(f"{len(self.failed)} failed")
        elapsed = time.monotonic() - self.started
        return f"{', '.join(parts)} in {elapsed:.{2 if elapsed < 10 else 0}f} s -> {folder}"


def print_columns(rows: list[list[str]], indent: str = "", width: int | None = None) -> None:
    """Rows as left-aligned columns on stdout; each line cut to `width` when one is given."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))
        print(line[:width].rstrip() if width else line.rstrip())


def human_size(size: int | None) -> str:
    if size is None or size < 0:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


class FileFailed(Exception):
    """This file could not be fetched; the others go on."""


class DiskProblem(XnatError):
    """A local write failed (disk full, size limit, permissions): every worker stops."""


def digest_of(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            md5.update(block)
    return md5.hexdigest()


def already_there(planned: PlannedFile, manifest: Manifest, record: bool = True) -> bool:
    """Already on disk and verified: by the manifest if the file is untouched, else by digest
    (and then, with record, added to the manifest)."""
    remote, target = planned.remote, planned.target
    try:
        info = target.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not S_ISREG(info.st_mode) or (remote.size >= 0 and info.st_size != remote.size):
        return False
    entry = manifest.files.get(planned.relative)
    if entry and entry.get("mtime_ns") == info.st_mtime_ns and entry["size"] == info.st_size \
            and (not remote.md5 or entry["md5"] == remote.md5):
        return True
    md5 = digest_of(target)
    if remote.md5 and md5 != remote.md5:
        return False
    if record:
        manifest.add(planned.relative, info.st_size, md5, info.st_mtime_ns)
    return True


def someone_elses(planned: PlannedFile, manifest: Manifest) -> bool:
    """A file (or folder) under the planned name that the manifest does not say we wrote."""
    return planned.relative not in manifest.files and os.path.lexists(planned.target)


class Downloader:
    """Fetches planned files, several at once, each verified before it takes its final name."""

    def __init__(self, client: XnatClient, workers: int, output_dir: Path, quiet: bool) -> None:
        self.client = client
        self.workers = workers
        self.output_dir = output_dir
        self.quiet = quiet
        self.summary = Summary()
        self.cancel = threading.Event()
        self.progress = _progress_bar(quiet)
        self._files_done = 0
        self._files_total = 0

    def close(self) -> None:
        self.progress.close()

    def download_session(self, plans: list[ScanPlan]) -> None:
        """Download every planned scan of one session; failures are recorded, not raised."""
        with contextlib.ExitStack() as stack:
            manifests = []
            for plan in plans:
                for name, why in plan.refused:
                    self.summary.failed.append(f"scan {plan.scan.id} file {name}: {why}")
                    self.summary.needs_attention += 1
                # Every folder once here, rather than a check per file as it is written.
                for folder in sorted({plan.folder} | {f.target.parent for f in plan.files}):
                    make_folder(folder, self.output_dir)
                stack.enter_context(folder_lock(plan.folder, self.quiet))
                manifest = Manifest(plan.folder, plan.source)
                manifest.load()
                stack.callback(manifest.save)
                manifests.append(manifest)
            tasks = []
            for plan, manifest in zip(plans, manifests):
                for planned in plan.files:
                    size = max(planned.remote.size, 0)   # -1: the listing gave no size
                    if already_there(planned, manifest):
                        self.summary.present += 1
                        self.summary.present_bytes += size
                        self.progress.total += size
                        self.progress.update(size)
                    elif someone_elses(planned, manifest):   # not ours to replace
                        self.summary.failed.append(
                            f"{planned.target.relative_to(self.output_dir)}: a different file of "
                            f"this name was already there, not from these scripts; it was left "
                            f"untouched: move it away to download this one")
                        self.summary.needs_attention += 1
                    else:
                        self.progress.total += size
                        tasks.append((planned, manifest))
            self._files_total += len(tasks)
            self.progress.refresh()
            fatal = None
            # Outcomes are counted here, in one thread, as the workers hand them over.
            for (planned, manifest), outcome in run_in_threads(
                    tasks, lambda task: self.fetch(*task), self.workers, self.cancel):
                if isinstance(outcome, int):
                    self.summary.downloaded += 1
                    self.summary.downloaded_bytes += outcome
                elif isinstance(outcome, FileFailed):
                    self.summary.failed.append(
                        f"{planned.target.relative_to(self.output_dir)}: {outcome}")
                elif isinstance(outcome, Interrupted):
                    continue   # a worker stopping because another one hit a fatal problem
                else:
                    fatal = fatal or outcome
                    self.cancel.set()
                    continue
                self._files_done += 1
                self.progress.set_postfix_str(f"{self._files_done}/{self._files_total} files")
            if fatal:
                raise fatal

    def fetch(self, planned: PlannedFile, manifest: Manifest) -> int:
        """One file, retried; renamed to its final name only once its size and digest match.
        Returns its size; FileFailed if it could not be had."""
        remote, target = planned.remote, planned.target
        partial = target.with_name(target.name + ".part")
        problem = ""
        retry_after = None
        for attempt in range(self.client.retries + 1):
            if attempt:
                wait = backoff(attempt, self.client.retry_wait, retry_after)
                log.debug("retrying %s in %.1f s: %s", planned.relative, wait, problem)
                if self.cancel.wait(wait):
                    raise Interrupted()
            retry_after = None
            counted = [0]   # bytes this attempt added to the progress bar
            try:
                md5, size = self._fetch_once(remote, partial, counted)
            except _Retry as retry:
                problem, retry_after = str(retry), retry.retry_after
            except requests.RequestException as error:
                problem = describe_network_error(self.client.host, error)
            else:
                if remote.size >= 0 and size != remote.size:
                    problem = f"got {size} bytes where the listing says {remote.size}"
                elif remote.md5 and md5 != remote.md5:
                    problem = "the MD5 digest did not match the server's"
                else:
                    mtime_ns = partial.stat().st_mtime_ns
                    try:
                        os.replace(partial, target)
                    except OSError as error:   # a folder, say, stands where the file belongs
                        remove_quietly(partial)
                        raise FileFailed(f"could not take its name: {error.strerror}") from None
                    manifest.add(planned.relative, size, md5, mtime_ns)
                    return size
                remove_quietly(partial)   # wrong bytes: the next attempt starts over
            self.progress.update(-counted[0])
        raise FileFailed(f"{problem} (after {self.client.retries + 1} attempts)")

    def _fetch_once(self, remote: RemoteFile, partial: Path, counted: list[int]) -> tuple[str, int]:
        """Stream the file into `partial`, continuing a leftover .part when the server allows it."""
        md5 = hashlib.md5()
        try:
            offset = partial.stat().st_size
        except FileNotFoundError:
            offset = 0
        # Continue a leftover only where the digest will vouch for the whole file; complete or
        # overlong leftovers cannot be trusted either.
        if offset and (not remote.md5 or (remote.size >= 0 and offset >= remote.size)):
            remove_quietly(partial)
            offset = 0
        headers = {"Accept": "*/*"}   # never image/*: XNAT would convert DICOM to a snapshot
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.client.request(remote.url, headers=headers, stream=True)
        with response:
            status = response.status_code
            if status == 206 and offset:
                with open(partial, "rb") as handle:
                    for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
                        md5.update(block)
                mode = "ab"
            elif status == 200:
                offset, mode = 0, "wb"   # the server sent it whole: start the .part over
            elif status == 416:
                remove_quietly(partial)
                raise _Retry("the server refused to continue a partial file")
            elif status == 429 or status >= 500:
                raise _Retry(f"{self.client.host} answered {status}",
                             parse_retry_after(response.headers.get("Retry-After")))
            elif status in (403, 404):
                raise FileFailed(f"the server answered {status}: the file it listed is not there "
                                 f"or not accessible")
            else:
                raise FileFailed(f"the server answered {status} {error_text(response)}")
            size = offset
            with self._open_for_writing(partial, mode) as handle:
                for chunk in response.iter_content(CHUNK_SIZE):
                    if self.cancel.is_set():
                        raise Interrupted()
                    try:
                        handle.write(chunk)
                    except OSError as error:
                        raise self._disk_problem(error, partial) from None
                    md5.update(chunk)
                    size += len(chunk)
                    counted[0] += len(chunk)
                    self.progress.update(len(chunk))
        return md5.hexdigest(), size

    @contextlib.contextmanager
    def _open_for_writing(self, partial: Path, mode: str):
        try:
            handle = open(partial, mode)
        except OSError as error:
            raise self._disk_problem(error, partial) from None
        try:
            yield handle
        finally:
            try:
                handle.close()
            except OSError as error:  # a full disk can surface only when the buffer is flushed
                raise self._disk_problem(error, partial) from None

    def _disk_problem(self, error: OSError, partial: Path) -> DiskProblem:
        """Stop every worker: a full disk or a missing permission will not heal by retrying."""
        self.cancel.set()
        remove_quietly(partial)
        return DiskProblem(describe_disk_error(error, partial.parent))


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def describe_disk_error(error: OSError, folder: Path) -> str:
    import errno

    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
    elif error.errno == errno.EFBIG:
        what = "a file-size limit was reached"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "it is not writable"
    else:
        what = error.strerror or str(error)
    return (f"could not write into {folder}: {what}; nothing partial was left under a final "
            f"name, and running the same command again resumes")


def make_folder(folder: Path, output_dir: Path) -> None:
    if not inside(output_dir, folder):
        raise XnatError(f"refused to write to {folder}: it is outside {output_dir}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise XnatError(f"{folder} (or a folder above it) exists and is a file, not a folder; "
                        f"move it or choose another folder with --output-dir") from None
    except OSError as error:
        raise DiskProblem(describe_disk_error(error, folder)) from None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def run_in_threads(tasks: list, work: Callable, workers: int,
                   cancel: threading.Event) -> Iterator[tuple[object, object]]:
    """Yield (task, result or exception) as workers finish them.

    Daemon threads rather than a ThreadPoolExecutor: on Ctrl-C a worker stuck in a stalled read
    must not keep the process alive until its timeout.
    """
    pending: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()
    for task in tasks:
        pending.put(task)

    def worker() -> None:
        while not cancel.is_set():
            try:
                task = pending.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((task, work(task)))
            except BaseException as error:  # handed to the main thread, which decides
                done.put((task, error))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(workers, len(tasks)))]
    for thread in threads:
        thread.start()
    try:
        for _ in range(len(tasks)):
            while True:
                try:
                    task, outcome = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    if cancel.is_set() and not any(t.is_alive() for t in threads):
                        return
            yield task, outcome
    finally:
        if any(thread.is_alive() for thread in threads):
            cancel.set()
            # Give workers a moment to stop writing, so no .part is half-flushed as we exit.
            deadline = time.monotonic() + 2.0
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))


def _progress_bar(quiet: bool):
    """Bytes and files on stderr, only for a person watching a terminal."""
    from tqdm import tqdm

    enabled = not quiet and sys.stderr.isatty()
    return tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, leave=False)


# --- The download story shared by scripts 3 and 4 ----------------------------------------------

@dataclass
class Job:
    """One session to download: which of its scans, and the folder each goes to."""
    session: Session
    scans: list[Scan]
    files: dict[str, list[RemoteFile]]
    folder_of: Callable[[Scan], Path]


def scans_with_files(session: Session, files: dict[str, list[RemoteFile]]) -> list[Scan]:
    """The session's scans that have files in the resource; scans the listing alone knows added."""
    known = {scan.id for scan in session.scans}
    extra = [Scan(id=scan_id, type="") for scan_id in files if scan_id not in known]
    return [scan for scan in session.scans + extra if files.get(scan.id)]


def passes_filters(scan: Scan, scan_types: Sequence[str], scan_ids: Sequence[str]) -> bool:
    """--scans and --scan-types together: a scan must pass both (an empty filter passes all)."""
    return ((not scan_ids or scan.id in scan_ids)
            and (not scan_types or scan_matches(scan, scan_types)))


def filter_scans(session: Session, scans: list[Scan], scan_types: Sequence[str],
                 scan_ids: Sequence[str], strict: bool) -> list[Scan]:
    """The scans passing --scans and --scan-types. With strict (one session), an ID the session
    does not have, or filters that no scan of the session passes, is an error naming what is there."""
    if strict:
        known = {s.id for s in session.scans + scans}
        missing = [i for i in scan_ids if i not in known]
        if missing:
            raise XnatError(f"scan {', '.join(missing)} not found in session {session.label}; "
                            f"scans there: {describe_scans(session.scans or scans)}")
        if scan_types and not any(passes_filters(s, scan_types, scan_ids) for s in session.scans + scans):
            if scan_ids:
                raise XnatError(f"no scan in session {session.label} passes both --scans "
                                f"{' '.join(scan_ids)} and --scan-types {' '.join(scan_types)}; "
                                f"scans there: {describe_scans(session.scans)}")
            types = sorted({s.type for s in session.scans if s.type}, key=natural_key)
            raise XnatError(f"no scan in session {session.label} matches --scan-types "
                            f"{' '.join(scan_types)}; types there: {some(types)}")
    return [scan for scan in scans if passes_filters(scan, scan_types, scan_ids)]


def describe_scans(scans: Iterable[Scan]) -> str:
    return some(f"{scan.id} ({scan.type})" if scan.type else scan.id for scan in scans)


def shard(sessions: list[Session], spec: tuple[int, int] | None) -> list[Session]:
    """The K-th of N round-robin slices, in natural (subject, session) order."""
    ordered = sorted(sessions, key=lambda s: (natural_key(s.subject_label), natural_key(s.label)))
    if spec is None:
        return ordered
    k, n = spec
    return [session for index, session in enumerate(ordered) if index % n == k - 1]


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def download_jobs(client: XnatClient, config: Config, jobs: Iterable[Job], resource: str,
                  workers: int, dry_run: bool, skipped: list[str] | None = None) -> int:
    """Download (or, with dry_run, show) each job as it comes, then report.

    `jobs` may be a generator that lists each session only when its turn comes, so that the first
    files of a project arrive without waiting for every session's listing; it may add to
    `skipped` as it goes.
    """
    output_dir = config.output_dir
    if output_dir.exists() and not output_dir.is_dir():
        raise XnatError(f"the output folder {output_dir} exists and is a file; "
                        f"choose another with --output-dir")
    skipped = [] if skipped is None else skipped
    downloader = None if dry_run else Downloader(client, workers, output_dir, config.quiet)
    would_fetch_files = would_fetch_bytes = already_present = 0
    try:
        for job in jobs:
            plans = [plan_scan(client, config.project, job.session, scan, resource,
                               job.files[scan.id], job.folder_of(scan), output_dir)
                     for scan in job.scans]
            if dry_run:
                files, size, present = show_plans(plans, output_dir)
                would_fetch_files += files
                would_fetch_bytes += size
                already_present += present
            else:
                downloader.download_session(plans)
    finally:
        if downloader:
            downloader.close()
    if dry_run:
        print(f"would download {would_fetch_files} files ({human_size(would_fetch_bytes)}) "
              f"into {output_dir}, {already_present} already present; nothing was written")
        return ExitStatus.OK
    summary = downloader.summary
    summary.started = config.started
    summary.skipped = skipped
    note(summary.line(output_dir), config.quiet)
    if summary.failed:
        for failure in summary.failed:
            print(f"  failed: {failure}", file=sys.stderr)
        retryable = len(summary.failed) - summary.needs_attention
        advice = ("running the same command again retries them" if not summary.needs_attention else
                  "running again will not change them: each line above says why" if not retryable
                  else f"running the same command again retries the {retryable} that failed in "
                       f"transfer; each of the others says why it needs you")
        raise XnatError(f"{len(summary.failed)} file(s) could not be downloaded (listed above); "
                        f"{advice}")
    return ExitStatus.OK


def show_plans(plans: list[ScanPlan], output_dir: Path) -> tuple[int, int, int]:
    """--dry-run: what a real run would fetch for these scans, on stdout, writing nothing.
    Returns the files and bytes it would fetch, and the files already there."""
    files = size = present = 0
    for plan in plans:
        manifest = Manifest(plan.folder, plan.source)
        manifest.load()   # another source's folder is the same error as in a real run
        fetch, theirs = [], []
        for planned in plan.files:
            if already_there(planned, manifest, record=False):
                present += 1
            elif someone_elses(planned, manifest):
                theirs.append(planned)
            else:
                fetch.append(planned)
        scan_bytes = sum(max(f.remote.size, 0) for f in fetch)
        print(f"{plan.folder.relative_to(output_dir)}  {len(fetch)} files  {human_size(scan_bytes)}")
        for name, why in plan.refused:
            print(f"  would refuse {name!r}: {why}")
        for planned in theirs:
            print(f"  would leave alone {planned.relative}: a different file of this name is there")
        files += len(fetch)
        size += scan_bytes
    return files, size, present
