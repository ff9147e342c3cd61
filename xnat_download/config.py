"""Configuration and credentials: each setting from the first source that has it (option,
environment, the site defaults a script passes in, ~/.netrc, a hidden prompt), and `--demo`.

Every environment variable the scripts read is read here, and nowhere else."""
from __future__ import annotations

import contextlib
import getpass
import netrc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Iterator, Mapping
from urllib.parse import urlsplit

from xnat_download.errors import UsageError, XnatError, register_secret
from xnat_download.output import note


@dataclass(frozen=True)
class SiteDefaults:
    """The site's defaults, as a script passes them in (built from common.py's constants): the
    package never reads common.py itself."""
    server: str
    project: str
    user: str = ""
    secret: str = field(default="", repr=False)
    output_dir: str = "downloaded_data"
    resource: str = "DICOM"
    workers: int = 8
    retries: int = 5
    timeout: float = 60
    retry_wait: float = 1.0
    bids_dir: str = "bids"
    bids_map: list = field(default_factory=list)   # BIDS_MAP: how --bids names scans by type
    where: str = "common.py"   # where the constants are edited, for messages

    @classmethod
    def from_module(cls, module: ModuleType) -> SiteDefaults:
        """The constants of a module such as common.py (XNAT_SERVER, PROJECT_ID, ...)."""
        return cls(server=module.XNAT_SERVER, project=module.PROJECT_ID, user=module.TOKEN_USER,
                   secret=module.TOKEN_SECRET, output_dir=module.OUTPUT_DIR,
                   resource=module.RESOURCE, workers=module.WORKERS, retries=module.RETRIES,
                   timeout=module.TIMEOUT, retry_wait=module.RETRY_WAIT, bids_dir=module.BIDS_DIR,
                   bids_map=module.BIDS_MAP, where=Path(module.__file__).name)


@dataclass(frozen=True)
class DemoServer:
    """The bundled sandbox that --demo serves: where it is and how to log in."""
    url: str
    user: str
    secret: str = field(repr=False)
    project: str = "DEMO"


@dataclass
class Config:
    server: str
    project: str
    user: str | None
    secret: str | None = field(repr=False)
    credentials_from: str          # where user and secret came from, for error messages
    output_dir: Path
    demo: bool = False
    workers: int = 8               # connections at once
    retries: int = 5               # extra attempts after the first fails
    timeout: float = 60            # seconds without a byte before an attempt is abandoned
    retry_wait: float = 1.0        # seconds before the first retry (XNAT_RETRY_WAIT)
    ca_bundle: str | None = None   # $REQUESTS_CA_BUNDLE (or $CURL_CA_BUNDLE): a private CA
    proxies: dict[str, str] = field(default_factory=dict)   # $HTTPS_PROXY, $NO_PROXY and kin
    started: float = field(default_factory=time.monotonic)   # for the time a summary reports


def resolve_config(site: SiteDefaults, *, server: str | None = None, project: str | None = None,
                   user: str | None = None, output_dir: str | None = None, workers: int | None = None,
                   retries: int | None = None, timeout: float | None = None,
                   demo: DemoServer | None = None, environ: Mapping[str, str],
                   cwd: Path | None = None, can_prompt: bool = False) -> Config:
    """Each setting from the first source that has it: the keyword (the command line's option),
    environment, site default, netrc, prompt (only where `can_prompt`: a person at stdin). With
    `demo`, the sandbox's address and credentials. A relative output folder is below `cwd`."""
    env = environ
    server = demo.url if demo else (server or env.get("XNAT_HOST") or site.server).strip()
    check_server_url(server)
    project = project or (demo.project if demo else env.get("XNAT_PROJECT") or site.project)
    option_user = user
    host = urlsplit(server).hostname or ""
    netrc_login, netrc_password = read_netrc(host, env)
    netrc_name = netrc_shown(env)

    constant = f" in {site.where}"
    if demo:
        user, user_from = demo.user, "the demo sandbox"
    elif option_user:
        user, user_from = option_user, "the --user option"
    elif env.get("XNAT_USER"):
        user, user_from = env["XNAT_USER"], "XNAT_USER"
    elif site.user:
        user, user_from = site.user, "TOKEN_USER" + constant
    elif netrc_login:
        user, user_from = netrc_login, netrc_name
    else:
        user, user_from = None, ""

    if demo:
        secret, secret_from = demo.secret, "the demo sandbox"
    elif env.get("XNAT_PASS"):
        secret, secret_from = env["XNAT_PASS"], "XNAT_PASS"
    elif site.secret:
        secret, secret_from = site.secret, "TOKEN_SECRET" + constant
    elif netrc_password and user is not None and netrc_login == user:
        secret, secret_from = netrc_password, netrc_name
    else:
        secret, secret_from = None, ""

    if user is None or secret is None:
        if user is not None and can_prompt:
            secret = getpass.getpass(f"Password or token secret for {user} at {host}: ")
            secret_from = "the password prompt"
        else:
            raise XnatError(missing_credentials(host, user is None, secret is None, site.where,
                                                netrc_name))
    register_secret(secret)
    output = Path(output_dir or site.output_dir)
    if cwd is not None and not output.is_absolute():
        output = cwd / output
    sources = describe_sources(user_from, secret_from, constant)
    return Config(server=server.rstrip("/"), project=project, user=user, secret=secret,
                  credentials_from=sources, output_dir=output, demo=demo is not None,
                  workers=site.workers if workers is None else workers,
                  retries=site.retries if retries is None else retries,
                  timeout=site.timeout if timeout is None else timeout,
                  retry_wait=retry_wait(site, env),
                  ca_bundle=env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None,
                  proxies=proxies_for(server.rstrip("/")))


def missing_credentials(host: str, no_user: bool, no_secret: bool, where: str, netrc_name: str) -> str:
    """What is missing, only that, and where each missing part can be set."""
    if no_user and no_secret:
        return (f"no credentials for {host} (user and secret missing): set XNAT_USER and XNAT_PASS, "
                f"or TOKEN_USER and TOKEN_SECRET in {where}, or add 'machine {host} login ... "
                f"password ...' to {netrc_name}")
    if no_user:
        return (f"no user for {host} (the secret is set): set XNAT_USER, or --user, or TOKEN_USER "
                f"in {where}, or add 'machine {host} login ...' to {netrc_name}")
    return (f"no credentials for {host} (secret missing): set XNAT_PASS, or TOKEN_SECRET in "
            f"{where}, or add 'machine {host} login ... password ...' to {netrc_name}")


def netrc_file(environ: Mapping[str, str]) -> Path:
    """The netrc file read: $NETRC if set, else ~/.netrc (of this environment's $HOME)."""
    if environ.get("NETRC"):
        return Path(environ["NETRC"])
    return (Path(environ["HOME"]) if environ.get("HOME") else Path.home()) / ".netrc"


def netrc_shown(environ: Mapping[str, str]) -> str:
    """The netrc file read, as messages name it."""
    return environ["NETRC"] if environ.get("NETRC") else "~/.netrc"


def dcm2niix_setting(environ: Mapping[str, str]) -> str | None:
    """$DCM2NIIX: the dcm2niix --bids runs, where not the one on the PATH. Not part of Config, since
    --bids is checked (cli.download_options) before the rest of the configuration is resolved."""
    return environ.get("DCM2NIIX") or None


def proxies_for(server: str) -> dict[str, str]:
    """The proxies the environment sets for this server, by requests's own rules (which read
    os.environ itself), read once: requests would read them again for every request."""
    import requests.utils   # deferred: a usage error never pays for importing requests

    return requests.utils.get_environ_proxies(server)


def retry_wait(site: SiteDefaults, environ: Mapping[str, str]) -> float:
    """XNAT_RETRY_WAIT, else the site's: seconds before the first retry."""
    text = environ.get("XNAT_RETRY_WAIT")
    if text is None:
        return float(site.retry_wait)
    try:
        return float(text)
    except ValueError:
        raise XnatError(f"XNAT_RETRY_WAIT must be a number of seconds, not {text!r}") from None


def describe_sources(user_from: str, secret_from: str, suffix: str = " in common.py") -> str:
    """'XNAT_USER and XNAT_PASS', 'TOKEN_USER and TOKEN_SECRET in common.py', '~/.netrc', ..."""
    if user_from == secret_from:
        return user_from
    if user_from.endswith(suffix) and secret_from.endswith(suffix):
        return f"{user_from[:-len(suffix)]} and {secret_from}"
    return f"{user_from} and {secret_from}"


def check_server_url(server: str) -> None:
    """A usage error unless the address is http(s)://host...; one holding credentials is refused
    before anything of it is echoed (the part before '@' may be a password)."""
    authority = server.split("://", 1)[-1].split("/", 1)[0]
    if "@" in authority:
        raise UsageError("the server address holds credentials (user:secret@host): remove them "
                         "and set XNAT_USER and XNAT_PASS instead")
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        hint = f" (did you mean https://{server}?)" if "://" not in server and server else ""
        raise UsageError(f"the server address must start with https:// (or http://) and name a "
                         f"host, not {server!r}{hint}")


def read_netrc(host: str, environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Login and password for the host (no port) from ~/.netrc (or $NETRC), if any."""
    path = netrc_file(environ)
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
def demo_sandbox(wanted: bool) -> Iterator[DemoServer | None]:
    """With --demo (`wanted`), serve the bundled sandbox XNAT while the block runs, and give its
    address and credentials for resolve_config; without, None."""
    if not wanted:
        yield None
        return
    from sandbox import Sandbox  # only the demo needs it (and pydicom)

    with Sandbox() as server:
        note(f"Demo: a sandbox XNAT serves the demo project at {server.url}")
        yield DemoServer(url=server.url, user=server.user, secret=server.password)

