"""What every benchmark shares: the sandbox and its network profiles, timed subprocesses,
byte checks against the listing, and the figures and targets that get printed.

The sandbox runs in this process's threads and every client runs as a subprocess, as a user
would run it; on a small machine they share the cores, so only ratios measured in the same run
mean anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `sandbox` is a package at the top of the repository

from xnat_download.disk import digest_of as md5_of  # noqa: E402  (one MD5 of a file for every tool)
from sandbox import Sandbox, Scale  # noqa: E402

MiB = 1024 * 1024
PYTHON = sys.executable
# Paths a client visits to log in and out; requests "after login" are all the others.
SESSION_PATHS = ("/", "/data/JSESSION", "/data/auth", "/data/services/auth")


# --- network profiles -------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """How the sandbox models the network (see the shared benchmarks.md)."""

    name: str
    latency: float  # seconds added to every request
    pace: float  # bytes per second per connection; 0 = as fast as loopback goes


WAN = Profile("wan", latency=0.020, pace=10 * MiB)
LAN = Profile("lan", latency=0.0, pace=0.0)


def apply_profile(sb: Sandbox, profile: Profile) -> None:
    sb.faults.latency = profile.latency
    sb.faults.pace = profile.pace


def big_session(sb: Sandbox, subject: int = 0, session: int = 0):
    """A session of the scaled BIG project, from the catalog (labels like sub-1 / sub-1_ses-1)."""
    found_subject = sb.catalog.projects["BIG"].subjects[subject]
    return found_subject, found_subject.sessions[session]


def warm_caches(sb: Sandbox) -> None:
    """Compute every file's MD5 and CRC now, so the first timed listing or zip does not pay it."""
    for subject in sb.catalog.projects["BIG"].subjects:
        for session in subject.sessions:
            for scan in session.scans:
                for resource in scan.resources:
                    for file in resource.files:
                        file.md5, file.crc32  # noqa: B018 - computed on first use, then cached


# --- talking to the sandbox from the benchmark itself -----------------------------------------

def client_environment(sb: Sandbox) -> dict[str, str]:
    """The environment our scripts and the baselines read credentials from: never argv."""
    env = dict(os.environ, XNAT_HOST=sb.url, XNAT_USER=sb.user, XNAT_PASS=sb.password,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for leftover in ("XNAT_PROJECT", "XNATPY_HOST", "XNATPY_USER", "XNATPY_PASS"):
        env.pop(leftover, None)
    return env


def get_json(sb: Sandbox, path: str) -> dict:
    """One authenticated JSON GET, outside any timing (proxies bypassed: loopback only)."""
    token = base64.b64encode(f"{sb.user}:{sb.password}".encode()).decode()
    request = urllib.request.Request(sb.url + path, headers={"Authorization": f"Basic {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return json.load(response)


@dataclass(frozen=True)
class ListedFile:
    scan_id: str
    name: str
    size: int
    md5: str
    url: str  # absolute: the URI column joined to the server URL


def list_session_files(sb: Sandbox, session_id: str, resource: str = "DICOM") -> list[ListedFile]:
    """The session's files from the one-request listing the tools are checked against."""
    answer = get_json(sb, f"/data/experiments/{session_id}/scans/ALL/resources/{resource}/files?format=json")
    files = []
    for row in answer["ResultSet"]["Result"]:
        uri = row["URI"]
        scan_id = uri.split("/scans/", 1)[1].split("/", 1)[0]
        files.append(ListedFile(scan_id, row["Name"], int(row["Size"]), row["digest"], sb.url + uri))
    return files


def requests_after_login(sb: Sandbox) -> int:
    prefix = len(sb.prefix)
    return sum(1 for entry in list(sb.log) if entry.path[prefix:] not in SESSION_PATHS)


# --- running and checking clients ------------------------------------------------------------

@dataclass
class Outcome:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


def run_timed(command: Sequence[str], env: dict[str, str], timeout: float = 180) -> Outcome:
    """Wall time from launch to exit: what a user waits, interpreter start-up included."""
    started = time.perf_counter()
    completed = subprocess.run(list(command), env=env, cwd=REPO, capture_output=True, text=True,
                               timeout=timeout)
    return Outcome(time.perf_counter() - started, completed.returncode, completed.stdout, completed.stderr)


def check_files(folder: Path, listing: Sequence[ListedFile]) -> str:
    """"" when the folder holds exactly the listed files (by name, anywhere below it) with the
    listed MD5s, else what is wrong. Hidden files (our manifests) are not data."""
    found: dict[str, list[Path]] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            found.setdefault(path.name, []).append(path)
    wanted = {file.name: file.md5 for file in listing}
    extra = sorted(set(found) - set(wanted))
    missing = sorted(set(wanted) - set(found))
    if extra or missing:
        return f"{len(missing)} missing, {len(extra)} unexpected (e.g. {(missing + extra)[0]})"
    for name, paths in found.items():
        if len(paths) != 1:
            return f"{name} appears {len(paths)} times"
        if md5_of(paths[0]) != wanted[name]:
            return f"{name} has the wrong MD5"
    return ""


@contextmanager
def scratch_folder(parent: Path, name: str) -> Iterator[Path]:
    """A fresh, empty folder for one run, deleted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=name + "-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def best_of(runs: int, attempt: Callable[[], float | None]) -> float:
    """The fastest of `runs` attempts that passed their check (None = failed, not counted)."""
    times = [seconds for seconds in (attempt() for _ in range(runs)) if seconds is not None]
    return min(times) if times else math.nan


def note(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the figures and the table."""
    print(message, file=sys.stderr, flush=True)


# --- figures and targets ---------------------------------------------------------------------

@dataclass
class Target:
    what: str
    target: str
    measured: str
    met: bool | None  # None: reported, no target


@dataclass
class Report:
    figures: list[tuple[str, float, str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def figure(self, name: str, value: float, unit: str) -> float:
        """Record one figure and print it at once as `NAME VALUE UNIT`."""
        self.figures.append((name, value, unit))
        print(f"{name} {format_value(value)} {unit}", flush=True)
        return value

    def target(self, what: str, target: str, measured: str, met: bool | None) -> None:
        self.targets.append(Target(what, target, measured, met))

    def table(self) -> str:
        rows = [("what", "target", "measured", "met")]
        for item in self.targets:
            verdict = "-" if item.met is None else ("yes" if item.met else "NO")
            rows.append((item.what, item.target, item.measured, verdict))
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"
                 for row in rows]
        lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
        return "\n".join(lines)


def format_value(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def at_least(value: float, bound: float) -> bool:
    return not math.isnan(value) and value >= bound


def at_most(value: float, bound: float) -> bool:
    return not math.isnan(value) and value <= bound
