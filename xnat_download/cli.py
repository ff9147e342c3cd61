"""The command-line frame every script shares: options, the levels -q and -v give the output
channel (output.py), and `run`, the one place where an error, Ctrl-C or a closed pipe becomes one
line and an exit code."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from xnat_download import __version__
from xnat_download.config import SiteDefaults
from xnat_download.errors import ExitStatus, Interrupted, XnatError
from xnat_download.output import AS_IS, log, send_to_stderr

# --- Running a script: one place turns every failure into one line ---------------------------

def script_name() -> str:
    return Path(sys.argv[0]).name or "xnat-download"


def run(main: Callable[[], int]) -> int:
    """Run a script's main, turning errors, Ctrl-C and closed pipes into one line and an exit code."""
    # Until main sets the level from -q/-v: an error raised before that still gets its one line.
    send_to_stderr(script_name(), logging.INFO, verbose=False)
    # A file-size limit (ulimit -f) must surface as an OSError we report, not kill the process.
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return int(main())
    except XnatError as error:
        _log_traceback_if_verbose()
        log.error(str(error))
        return getattr(error, "exit_status", ExitStatus.ERROR)
    except (KeyboardInterrupt, Interrupted) as stop:
        _log_traceback_if_verbose()
        log.error(f"{script_name()}: interrupted; running the same command again resumes where it "
                  f"stopped", extra=AS_IS)
        return getattr(stop, "exit_status", ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # The reader (head, less) went away: not our failure. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitStatus.OK
    except Exception as error:  # a bug or an unforeseen local failure: still one line
        _log_traceback_if_verbose()
        hint = "" if log.isEnabledFor(logging.DEBUG) else " (run again with --verbose for details)"
        log.error(f"unexpected {type(error).__name__}: {error}{hint}")
        return ExitStatus.ERROR


def _log_traceback_if_verbose() -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(traceback.format_exc().rstrip("\n"), extra=AS_IS)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(ExitStatus.TERMINATED)


# --- Command line ------------------------------------------------------------------------------

def base_parser(doc: str, site: SiteDefaults) -> argparse.ArgumentParser:
    """A parser with the options every script has; the module docstring is its description."""
    parser = argparse.ArgumentParser(
        prog=script_name(), description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_argument_group(f"connection (defaults: environment, then {site.where})")
    group.add_argument("--server", metavar="URL", help="XNAT address (XNAT_HOST, XNAT_SERVER)")
    group.add_argument("--project", metavar="ID", help="project ID (XNAT_PROJECT, PROJECT_ID)")
    group.add_argument("--user", metavar="NAME",
                       help="login or alias token (XNAT_USER, TOKEN_USER, ~/.netrc); "
                            "the secret is never an option: XNAT_PASS, TOKEN_SECRET, ~/.netrc or a prompt")
    group.add_argument("--demo", action="store_true",
                       help="run against the bundled sandbox XNAT with its demo project (no account needed)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    talk = parser.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true", help="details, and tracebacks on error")
    talk.add_argument("-q", "--quiet", action="store_true", help="errors and warnings only")
    return parser


def add_download_options(parser: argparse.ArgumentParser, site: SiteDefaults) -> None:
    """The options of scripts 3 and 4, their defaults the site's."""
    group = parser.add_argument_group("download")
    group.add_argument("--output-dir", metavar="DIR", help=f"where to write (default {site.output_dir})")
    group.add_argument("--resource", default=site.resource,
                       help=f"resource to download (default {site.resource})")
    group.add_argument("--workers", type=positive_int, default=site.workers,
                       help=f"files fetched at once (default {site.workers}; 1 is sequential)")
    group.add_argument("--retries", type=non_negative_int, default=site.retries,
                       help=f"retries per file after a failure (default {site.retries})")
    group.add_argument("--timeout", type=positive_float, default=site.timeout, metavar="SECONDS",
                       help=f"give up on an attempt after this long without data (default {site.timeout})")
    group.add_argument("--transfer", choices=("auto", "zip", "files"), default="auto",
                       help="how a scan's files travel: one zip stream per scan, one request per "
                            "file, or (auto, the default) whichever finishes the session sooner")
    group.add_argument("--bids", nargs="?", const=site.bids_dir, metavar="DIR",
                       help=f"also convert what was downloaded into a BIDS dataset in DIR (default "
                            f"{site.bids_dir}), with dcm2niix")
    group.add_argument("--bids-config", metavar="FILE", action=_ImpliesBids, const=site.bids_dir,
                       help="name scans for --bids by this dcm2bids configuration file instead of "
                            "the default map (implies --bids)")
    group.add_argument("--dry-run", action="store_true",
                       help="show what would be downloaded, write nothing")


class _ImpliesBids(argparse.Action):
    """--bids-config FILE: also --bids, into the site's folder unless --bids names one."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        if namespace.bids is None:
            namespace.bids = self.const


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
    """-v shows details (and tracebacks), -q leaves errors and warnings; notes otherwise."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    send_to_stderr(script_name(), level, args.verbose)


def print_columns(rows: list[list[str]], indent: str = "", width: int | None = None) -> None:
    """Rows as left-aligned columns on stdout; each line cut to `width` when one is given."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))
        print(line[:width].rstrip() if width else line.rstrip())
