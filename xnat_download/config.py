"""Configuration and credentials: each setting from the first source that has it (option,
environment, the constants in common.py, ~/.netrc, a hidden prompt), and `--demo`."""
from __future__ import annotations

import argparse
import contextlib
import getpass
import netrc
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import common
from xnat_download.cli import note
from xnat_download.errors import XnatError, register_secret

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
    server = (args.server or env.get("XNAT_HOST") or common.XNAT_SERVER).strip()
    check_server_url(server)
    project = args.project or env.get("XNAT_PROJECT") or common.PROJECT_ID
    host = urlsplit(server).hostname or ""
    netrc_login, netrc_password = read_netrc(host, env)

    if args.user:
        user, user_from = args.user, "the --user option"
    elif env.get("XNAT_USER"):
        user, user_from = env["XNAT_USER"], "XNAT_USER"
    elif common.TOKEN_USER:
        user, user_from = common.TOKEN_USER, "TOKEN_USER in common.py"
    elif netrc_login:
        user, user_from = netrc_login, "~/.netrc"
    else:
        user, user_from = None, ""

    if getattr(args, "demo_secret", None):
        secret, secret_from = args.demo_secret, "the demo sandbox"
        user_from = secret_from
    elif env.get("XNAT_PASS"):
        secret, secret_from = env["XNAT_PASS"], "XNAT_PASS"
    elif common.TOKEN_SECRET:
        secret, secret_from = common.TOKEN_SECRET, "TOKEN_SECRET in common.py"
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
    register_secret(secret)
    output = getattr(args, "output_dir", None) or common.OUTPUT_DIR
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

