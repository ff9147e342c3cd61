"""The command-line frame every script shares: options, the settings they make (keywords and
frozen records for the library: the library never sees argparse), the levels -q and -v give the
output channel (output.py), and `run`, the one exit point, where an error, Ctrl-C, a closed pipe
or argparse's exit becomes one line and an exit code."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import threading
import traceback
from typing import Callable, Iterator, TextIO

from xnat_download import __version__
from xnat_download.bids import BidsOptions, check_dcm2niix
from xnat_download.bids_config import ConfigError, load_config
from xnat_download.config import Config, DemoServer, SiteDefaults, dcm2niix_setting, resolve_config
from xnat_download.download import DownloadOptions
from xnat_download.environment import Environment
from xnat_download.errors import ExitStatus, Interrupted, UsageError, XnatError
from xnat_download.output import AS_IS, log, send_to_stderr

# --- Running a script: one place turns every failure into one line ---------------------------

def run(main: Callable[[Environment], int], env: Environment | None = None) -> int:
    """Run a script's main in `env` (the process's own by default), turning errors, Ctrl-C, closed
    pipes and argparse's exits into one line and an exit code: the one exit point of a run. What
    it sets up for the run (the log's handler and levels, signal handlers) is put back after."""
    env = env or Environment.from_process()
    with _run_state():
        # Until main sets the level from -q/-v: an error raised before that still gets its one line.
        send_to_stderr(env.program, logging.INFO, False, env.stderr)
        if signal_handlers_allowed():
            # A file-size limit (ulimit -f) must surface as an OSError we report, not kill the process.
            if hasattr(signal, "SIGXFSZ"):
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, _raise_interrupted)
        return _exit_status(main, env)


def _exit_status(main: Callable[[Environment], int], env: Environment) -> int:
    try:
        return int(main(env))
    except SystemExit as exit:   # argparse: --help and --version (0), or bad usage (2)
        code = exit.code
        return ExitStatus.OK if code in (0, None) else (
            ExitStatus.USAGE if code == 2 or not isinstance(code, int) else code)
    except XnatError as error:
        _log_traceback_if_verbose()
        log.error(str(error))
        return getattr(error, "exit_status", ExitStatus.ERROR)
    except (KeyboardInterrupt, Interrupted) as stop:
        _log_traceback_if_verbose()
        log.error(f"{env.program}: interrupted; running the same command again resumes where it "
                  f"stopped", extra=AS_IS)
        return getattr(stop, "exit_status", ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # The reader (head, less) went away: not our failure. Point stdout at devnull so the
        # interpreter's final flush does not raise again.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), env.stdout.fileno())
        return ExitStatus.OK
    except Exception as error:  # a bug or an unforeseen local failure: still one line
        _log_traceback_if_verbose()
        hint = "" if log.isEnabledFor(logging.DEBUG) else " (run again with --verbose for details)"
        log.error(f"unexpected {type(error).__name__}: {error}{hint}")
        return ExitStatus.ERROR


def signal_handlers_allowed() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _run_state() -> Iterator[None]:
    """The log's handlers and levels and the signal handlers as they were before the run."""
    root, ours = logging.getLogger(), logging.getLogger("xnat_download")
    handlers, levels = root.handlers[:], (root.level, ours.level)
    numbers = [number for number in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGXFSZ", None))
               if number is not None]
    handlers_before = {number: signal.getsignal(number) for number in numbers}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
        if signal_handlers_allowed():
            for number, handler in handlers_before.items():
                if handler is not None:
                    signal.signal(number, handler)


def _log_traceback_if_verbose() -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(traceback.format_exc().rstrip("\n"), extra=AS_IS)


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(ExitStatus.TERMINATED)


# --- Command line ------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse, its help and errors written to the run's streams (its exits reach `run`)."""

    def __init__(self, *args, env: Environment, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env = env

    def _print_message(self, message: str, file=None) -> None:
        if message:
            (self.env.stderr if file is sys.stderr else self.env.stdout).write(message)

    def parse(self) -> argparse.Namespace:
        """The run's own arguments."""
        return self.parse_args(list(self.env.args))


def base_parser(doc: str, site: SiteDefaults, env: Environment) -> Parser:
    """A parser with the options every script has; the module docstring is its description."""
    parser = Parser(prog=env.program, description=doc, env=env,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
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


def parse_shard(text: str) -> tuple[int, int]:
    """--shard K/N: the K-th of N slices (catalog.shard), K from 1."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def setup_logging(args: argparse.Namespace, env: Environment) -> None:
    """-v shows details (and tracebacks), -q leaves errors and warnings; notes otherwise."""
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    send_to_stderr(env.program, level, args.verbose, env.stderr, env.stderr_isatty)


def connection_settings(args: argparse.Namespace, site: SiteDefaults, env: Environment,
                        demo: DemoServer | None) -> Config:
    """The Config of a run: its options as keywords to resolve_config (scripts 1 and 2 have no
    download options, so theirs are the site's)."""
    return resolve_config(site, server=args.server, project=args.project, user=args.user,
                          output_dir=getattr(args, "output_dir", None),
                          workers=getattr(args, "workers", site.workers),
                          retries=getattr(args, "retries", site.retries),
                          timeout=getattr(args, "timeout", site.timeout), demo=demo,
                          environ=env.environ, cwd=env.cwd, can_prompt=env.stdin_isatty)


def download_options(args: argparse.Namespace, site: SiteDefaults, env: Environment) -> DownloadOptions:
    """The download options of scripts 3 and 4, checked before anything is fetched: a --bids-config
    that cannot be used is a usage error (exit 2); dcm2niix missing or broken, an error (exit 1)."""
    bids = None
    if args.bids or args.bids_config:
        config = None
        if args.bids_config:
            try:
                config = load_config(env.path(args.bids_config))
            except ConfigError as error:
                raise UsageError(f"--bids-config: {error}") from None
        dcm2niix = "dcm2niix" if args.dry_run else check_dcm2niix(dcm2niix_setting(env.environ))
        bids = BidsOptions(env.path(args.bids), site.bids_map, config, dcm2niix)
    return DownloadOptions(resource=args.resource, dry_run=args.dry_run, transfer=args.transfer,
                           bids=bids)


def terminal_width(env: Environment) -> int:
    """$COLUMNS of the run's environment, else the terminal's width."""
    try:
        return int(env.environ["COLUMNS"])
    except (KeyError, ValueError):
        return shutil.get_terminal_size().columns


def print_columns(rows: list[list[str]], out: TextIO, indent: str = "", width: int | None = None) -> None:
    """Rows as left-aligned columns on `out`; each line cut to `width` when one is given."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        line = indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths))
        print(line[:width].rstrip() if width else line.rstrip(), file=out)
