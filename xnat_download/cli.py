"""The command-line frame every script shares: options, logging, talk on stderr, and `run`, the
one place where an error, Ctrl-C or a closed pipe becomes one line and an exit code."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from xnat_download.errors import ExitStatus, Interrupted, XnatError, redact

log = logging.getLogger("xnat_download")

# --- Running a script: one place turns every failure into one line ---------------------------

def script_name() -> str:
    return Path(sys.argv[0]).name or "xnat-download"


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
