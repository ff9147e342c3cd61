"""What a run is handed from outside: its arguments, streams, environment variables and folder.

cli.py builds one Environment (from the process, or a test's own) and hands it down, so that no
module below the scripts reads sys.argv, sys.stdout, sys.stderr, os.environ or the process's
folder itself, and a script runs in process with streams and settings of the caller's choosing.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence, TextIO


@dataclass(frozen=True)
class Environment:
    program: str                   # the script's name, for `<script>: error: ...`
    args: Sequence[str]            # its arguments, without the program
    stdout: TextIO                 # data: tables, JSON, CSV, --dry-run's plan
    stderr: TextIO                 # notes, warnings, errors, the progress bar
    stdin: TextIO | None = None    # only asked whether a person can answer a prompt
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: Path | None = None        # where relative paths lead; None: the process's own folder

    @classmethod
    def from_process(cls) -> Environment:
        return cls(program=Path(sys.argv[0]).name or "xnat-download", args=sys.argv[1:],
                   stdout=sys.stdout, stderr=sys.stderr, stdin=sys.stdin, environ=os.environ)

    @property
    def stdin_isatty(self) -> bool:
        return _isatty(self.stdin)

    @property
    def stdout_isatty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_isatty(self) -> bool:
        return _isatty(self.stderr)

    def path(self, text: str | os.PathLike) -> Path:
        """A path the user gave, relative to this run's folder."""
        path = Path(text)
        return path if self.cwd is None or path.is_absolute() else self.cwd / path


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):   # a closed or stream-like object
        return False
