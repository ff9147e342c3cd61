"""Talk on stderr, one channel for all of it: every note, warning, error and --verbose detail is a
record of the `xnat_download` logger, and one formatter turns each into its line, with secrets
scrubbed. `-q` and `-v` only set the logger's level (cli.setup_logging). The progress bar, for a
person at a terminal, is drawn on stderr too. Data goes to stdout and never through here."""
from __future__ import annotations

import logging
import threading
from typing import TextIO

from xnat_download.errors import redact

log = logging.getLogger("xnat_download")

# A record with this extra is printed as its message alone (a traceback, the interrupted line,
# the list of failures), whatever its level.
AS_IS = {"as_is": True}


def note(message: str) -> None:
    """A note for the user, hidden by --quiet."""
    log.info(message)


def warn(message: str) -> None:
    """`<script>: warning: ...`, shown even with --quiet."""
    log.warning(message)


def always(message: str) -> None:
    """A line shown as it is, even with --quiet (the failures listed after a summary)."""
    log.warning(message, extra=AS_IS)


class LineFormatter(logging.Formatter):
    """Our records: notes bare, warnings and errors behind the script's name, details behind the
    logger's name (as the records of libraries such as urllib3 at --verbose). Every line redacted."""

    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if getattr(record, "as_is", False):
            line = text
        elif record.name != log.name or record.levelno < logging.INFO:
            line = f"{record.name}: {text}"
        elif record.levelno >= logging.ERROR:
            line = f"{self.prog}: error: {text}"
        elif record.levelno >= logging.WARNING:
            line = f"{self.prog}: warning: {text}"
        else:
            line = text
        return redact(line)


# Where the progress bar is drawn, and whether a person watches it: as send_to_stderr was handed.
_bar_stream: TextIO | None = None
_bar_watched = False


def send_to_stderr(prog: str, level: int, verbose: bool, stream: TextIO, isatty: bool = False) -> None:
    """Every record to `stream` (the run's stderr) through LineFormatter; ours from `level` up,
    the libraries' only their warnings (and everything with --verbose). The progress bar goes
    there too, when `isatty` says a person is watching."""
    global _bar_stream, _bar_watched
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LineFormatter(prog))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.setLevel(level)
    # urllib3 at DEBUG prints one line per request: useful with --verbose, noise otherwise.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.ERROR)
    _bar_stream, _bar_watched = stream, isatty


def progress_bar() -> Progress:
    """Bytes and files on stderr, only for a person watching a terminal (and not with -q)."""
    from tqdm import tqdm   # deferred: a run that lists, or fetches nothing, never pays for it

    enabled = log.isEnabledFor(logging.INFO) and _bar_watched and _bar_stream is not None
    return Progress(tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                         file=_bar_stream, dynamic_ncols=True, leave=False))


class Progress:
    """The bar of a download, fed by every route from any thread: the bytes that come over the
    network (so its speed is the network's), and files as each one lands, a zip's entries included.
    Files already verified on disk are named beside it, never counted as bytes: they are no speed."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self._lock = threading.Lock()
        self.files = 0          # landed this run
        self.files_total = 0    # to fetch this run
        self.present = 0        # verified on disk already

    def expect(self, size: int, files: int) -> None:
        """`files` more to fetch, `size` bytes in all."""
        with self._lock:
            self.bar.total += size
            self.files_total += files
            self._show_files()

    def already_present(self, files: int) -> None:
        with self._lock:
            self.present += files
            self._show_files()

    def update(self, count: int) -> None:
        """`count` bytes arrived (negative: bytes shown that were thrown away, to come again)."""
        with self._lock:
            self.bar.update(count)

    def file_landed(self) -> None:
        with self._lock:
            self.files += 1
            self._show_files()

    def refresh(self) -> None:
        with self._lock:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def _show_files(self) -> None:
        present = f", {self.present} already present" if self.present else ""
        self.bar.set_postfix_str(f"{self.files}/{self.files_total} files{present}", refresh=True)


def human_size(size: int | None) -> str:
    if size is None or size < 0:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
