"""The manifest (`.xnat-manifest.json`: a scan folder's source and each verified file), the
folder lock that makes two runs into one folder take turns, and the resume check (check_on_disk):
the one place that decides whether a file is there already, someone else's, or to fetch."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Iterator
from urllib.parse import urlsplit

from xnat_download.disk import describe_disk_error, digest_of, write_json
from xnat_download.errors import DiskProblem, XnatError
from xnat_download.output import note, warn
from xnat_download.plan import PlannedFile

MANIFEST_NAME = ".xnat-manifest.json"
LOCK_NAME = ".xnat-lock"
MANIFEST_FLUSH_SECONDS = 2.0

log = logging.getLogger("xnat_download")

def same_source(recorded: dict, wanted: dict) -> bool:
    """Same server (host and path prefix, not scheme or port), project, session, scan, resource."""
    def where(server: str) -> tuple[str, str]:
        parts = urlsplit(server or "")
        return (parts.hostname or "").lower(), parts.path.rstrip("/")

    return (where(recorded.get("server", "")) == where(wanted["server"])
            and all(recorded.get(key) == wanted[key]
                    for key in ("project", "session", "scan", "resource")))


class ForeignFolder(XnatError):
    """The scan folder holds another scan's data (an older layout's, say): never written into."""


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
        """Read what an earlier run recorded; ForeignFolder if it belongs to another source."""
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
            raise ForeignFolder(
                f"{self.path.parent} holds another scan's data (from "
                f"{recorded_source.get('project')}/{recorded_source.get('session')} scan "
                f"{recorded_source.get('scan')}): nothing was written there; move that folder "
                f"away, or choose another folder with --output-dir")
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
            try:
                write_json(self.path, data, indent=1)
            except OSError as error:   # the disk filled up under the data files too
                raise DiskProblem(describe_disk_error(error, self.path.parent)) from None
            self._dirty = False
            self._last_write = time.monotonic()


@contextlib.contextmanager
def folder_lock(folder: Path, say_when_waiting: bool = True) -> Iterator[None]:
    """Hold the folder for this process: a second download into it waits, then resumes. (A BIDS
    dataset's bookkeeping holds it only for moments, so a wait there goes unsaid.)"""
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
            if say_when_waiting:
                note(f"waiting for another download into {folder} to finish")
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


@dataclass
class OnDisk:
    """A scan's planned files, sorted by what is on disk under their names."""
    present: list[PlannedFile] = field(default_factory=list)    # verified: not fetched again
    theirs: list[PlannedFile] = field(default_factory=list)     # a file we did not write: left alone
    to_fetch: list[PlannedFile] = field(default_factory=list)


def check_on_disk(files: list[PlannedFile], manifest: Manifest, record: bool = True) -> OnDisk:
    """The one resume check, for a download and its --dry-run alike: which files are already
    there and verified, which names someone else's file holds, and which files to fetch."""
    found = OnDisk()
    for planned in files:
        if _verified_there(planned, manifest, record):
            found.present.append(planned)
        elif _someone_elses(planned, manifest):
            found.theirs.append(planned)
        else:
            found.to_fetch.append(planned)
    return found


def _verified_there(planned: PlannedFile, manifest: Manifest, record: bool = True) -> bool:
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


def _someone_elses(planned: PlannedFile, manifest: Manifest) -> bool:
    """A file (or folder) under the planned name that the manifest does not say we wrote."""
    return planned.relative not in manifest.files and os.path.lexists(planned.target)



def adopt_former_folder(former: Path, folder: Path, source: dict) -> bool:
    """A scan folder an earlier version named otherwise (scan-3_EPI_PE_AP_29c0bb50, now
    scan-3_EPI_PE_AP) takes its new name when its manifest names this very source, so that its
    verified files are kept, not fetched again. Nothing happens where the new name is taken."""
    if not former_is_this_scans(former, folder, source):
        return False
    with folder_lock(former, say_when_waiting=False):   # not while another run writes there
        if folder.exists():
            return False
        try:
            os.rename(former, folder)
        except OSError as error:
            warn(f"could not rename {former} to {folder} ({error.strerror}): it is downloaded "
                 f"into {folder.name} afresh")
            return False
    note(f"renamed {former} to {folder.name}, the name this version gives it")
    return True


def former_is_this_scans(former: Path, folder: Path, source: dict) -> bool:
    """True if `former` holds this source's scan by its manifest and `folder` is not there yet."""
    if folder.exists() or not former.is_dir():
        return False
    try:
        recorded = json.loads((former / MANIFEST_NAME).read_text(encoding="utf-8"))["source"]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return False
    return isinstance(recorded, dict) and same_source(recorded, source)
