"""The errors a run can end with, their exit codes, and the scrubbing of secrets from messages.

Every failure the user must hear about is an `XnatError`; `cli.run` turns it into one stderr line
and `ExitStatus.ERROR`. Nothing here prints.
"""
from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130   # Ctrl-C (SIGINT)
    TERMINATED = 143    # SIGTERM, as a batch system sends before it kills a job


class XnatError(Exception):
    """Anything the user must be told about in one line; the run then exits with ERROR."""


class UsageError(XnatError):
    """A setting that cannot be used as given (as argparse's errors): the run exits with USAGE."""
    exit_status = ExitStatus.USAGE


class AuthError(XnatError):
    """The server refused the credentials."""


class NotFound(XnatError):
    def __init__(self, status: int, path: str) -> None:
        super().__init__(f"{path} not found or not accessible ({status})")
        self.status = status


class DiskProblem(XnatError):
    """A local write failed (disk full, size limit, permissions): every worker stops."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop, keep what is verified, exit 130 (143 for SIGTERM)."""

    def __init__(self, exit_status: int = 130) -> None:
        super().__init__()
        self.exit_status = exit_status


# The one piece of process-wide state, on purpose: a secret can surface in any exception message,
# and the one place that prints those (cli.run) must know what to scrub without every caller
# passing it along. config.resolve_config adds the secret in force; nothing ever removes one.
_REGISTERED_SECRETS: set[str] = set()


def register_secret(secret: str) -> None:
    _REGISTERED_SECRETS.add(secret)


def redact(text: str) -> str:
    for secret in _REGISTERED_SECRETS:
        # A secret of a few characters would turn ordinary words into asterisks; it is also far
        # too weak to be a real token, whose secrets run to dozens of characters.
        if len(secret) >= 4:
            text = text.replace(secret, "********")
    return text
