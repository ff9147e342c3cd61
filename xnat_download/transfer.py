"""The transfer: planned files fetched by a pool of workers, each streamed to `<name>.part`,
checked against the listing's size and MD5, and only then renamed; progress and the tally."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import requests

from xnat_download.catalog import RemoteFile
from xnat_download.cli import human_size
from xnat_download.connection import XnatClient, backoff, describe_network_error, error_text, parse_retry_after
from xnat_download.disk import CHUNK_SIZE, describe_disk_error, make_folder, remove_quietly
from xnat_download.errors import DiskProblem, Interrupted
from xnat_download.manifest import Manifest, already_there, folder_lock, someone_elses
from xnat_download.plan import PlannedFile, ScanPlan

log = logging.getLogger("xnat_download")


@dataclass
class Summary:
    downloaded: int = 0
    downloaded_bytes: int = 0
    present: int = 0
    present_bytes: int = 0
    skipped: list[str] = field(default_factory=list)   # scans and sessions, as noted
    failed: list[str] = field(default_factory=list)
    needs_attention: int = 0   # of the failed: those no rerun will change (unsafe names, others' files)
    started: float = field(default_factory=time.monotonic)

    def line(self, folder: Path) -> str:
        parts = [f"{self.downloaded} files ({human_size(self.downloaded_bytes)}) downloaded",
                 f"{self.present} already present ({human_size(self.present_bytes)})"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        parts.append(f"{len(self.failed)} failed")
        elapsed = time.monotonic() - self.started
        return f"{', '.join(parts)} in {elapsed:.{2 if elapsed < 10 else 0}f} s -> {folder}"



class FileFailed(Exception):
    """This file could not be fetched; the others go on."""



class Downloader:
    """Fetches planned files, several at once, each verified before it takes its final name."""

    def __init__(self, client: XnatClient, workers: int, output_dir: Path, quiet: bool) -> None:
        self.client = client
        self.workers = workers
        self.output_dir = output_dir
        self.quiet = quiet
        self.summary = Summary()
        self.cancel = threading.Event()
        self.progress = _progress_bar(quiet)
        self._files_done = 0
        self._files_total = 0

    def close(self) -> None:
        self.progress.close()

    def download_session(self, plans: list[ScanPlan]) -> None:
        """Download every planned scan of one session; failures are recorded, not raised."""
        with contextlib.ExitStack() as stack:
            manifests = []
            for plan in plans:
                for name, why in plan.refused:
                    self.summary.failed.append(f"scan {plan.scan.id} file {name}: {why}")
                    self.summary.needs_attention += 1
                # Every folder once here, rather than a check per file as it is written.
                for folder in sorted({plan.folder} | {f.target.parent for f in plan.files}):
                    make_folder(folder, self.output_dir)
                stack.enter_context(folder_lock(plan.folder, self.quiet))
                manifest = Manifest(plan.folder, plan.source)
                manifest.load()
                stack.callback(manifest.save)
                manifests.append(manifest)
            tasks = []
            for plan, manifest in zip(plans, manifests):
                for planned in plan.files:
                    size = max(planned.remote.size, 0)   # -1: the listing gave no size
                    if already_there(planned, manifest):
                        self.summary.present += 1
                        self.summary.present_bytes += size
                        self.progress.total += size
                        self.progress.update(size)
                    elif someone_elses(planned, manifest):   # not ours to replace
                        self.summary.failed.append(
                            f"{planned.target.relative_to(self.output_dir)}: a different file of "
                            f"this name was already there, not from these scripts; it was left "
                            f"untouched: move it away to download this one")
                        self.summary.needs_attention += 1
                    else:
                        self.progress.total += size
                        tasks.append((planned, manifest))
            self._files_total += len(tasks)
            self.progress.refresh()
            fatal = None
            # Outcomes are counted here, in one thread, as the workers hand them over.
            for (planned, manifest), outcome in run_in_threads(
                    tasks, lambda task: self.fetch(*task), self.workers, self.cancel):
                if isinstance(outcome, int):
                    self.summary.downloaded += 1
                    self.summary.downloaded_bytes += outcome
                elif isinstance(outcome, FileFailed):
                    self.summary.failed.append(
                        f"{planned.target.relative_to(self.output_dir)}: {outcome}")
                elif isinstance(outcome, Interrupted):
                    continue   # a worker stopping because another one hit a fatal problem
                else:
                    fatal = fatal or outcome
                    self.cancel.set()
                    continue
                self._files_done += 1
                self.progress.set_postfix_str(f"{self._files_done}/{self._files_total} files")
            if fatal:
                raise fatal

    def fetch(self, planned: PlannedFile, manifest: Manifest) -> int:
        """One file, retried; renamed to its final name only once its size and digest match.
        Returns its size; FileFailed if it could not be had."""
        remote, target = planned.remote, planned.target
        partial = target.with_name(target.name + ".part")
        problem = ""
        retry_after = None
        for attempt in range(self.client.retries + 1):
            if attempt:
                wait = backoff(attempt, self.client.retry_wait, retry_after)
                log.debug("retrying %s in %.1f s: %s", planned.relative, wait, problem)
                if self.cancel.wait(wait):
                    raise Interrupted()
            retry_after = None
            counted = [0]   # bytes this attempt added to the progress bar
            try:
                md5, size = self._fetch_once(remote, partial, counted)
            except _Retry as retry:
                problem, retry_after = str(retry), retry.retry_after
            except requests.RequestException as error:
                problem = describe_network_error(self.client.host, error)
            else:
                if remote.size >= 0 and size != remote.size:
                    problem = f"got {size} bytes where the listing says {remote.size}"
                elif remote.md5 and md5 != remote.md5:
                    problem = "the MD5 digest did not match the server's"
                else:
                    mtime_ns = partial.stat().st_mtime_ns
                    try:
                        os.replace(partial, target)
                    except OSError as error:   # a folder, say, stands where the file belongs
                        remove_quietly(partial)
                        raise FileFailed(f"could not take its name: {error.strerror}") from None
                    manifest.add(planned.relative, size, md5, mtime_ns)
                    return size
                remove_quietly(partial)   # wrong bytes: the next attempt starts over
            self.progress.update(-counted[0])
        raise FileFailed(f"{problem} (after {self.client.retries + 1} attempts)")

    def _fetch_once(self, remote: RemoteFile, partial: Path, counted: list[int]) -> tuple[str, int]:
        """Stream the file into `partial`, continuing a leftover .part when the server allows it."""
        md5 = hashlib.md5()
        try:
            offset = partial.stat().st_size
        except FileNotFoundError:
            offset = 0
        # Continue a leftover only where the digest will vouch for the whole file; complete or
        # overlong leftovers cannot be trusted either.
        if offset and (not remote.md5 or (remote.size >= 0 and offset >= remote.size)):
            remove_quietly(partial)
            offset = 0
        headers = {"Accept": "*/*"}   # never image/*: XNAT would convert DICOM to a snapshot
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self.client.request(remote.url, headers=headers, stream=True)
        with response:
            status = response.status_code
            if status == 206 and offset:
                with open(partial, "rb") as handle:
                    for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
                        md5.update(block)
                mode = "ab"
            elif status == 200:
                offset, mode = 0, "wb"   # the server sent it whole: start the .part over
            elif status == 416:
                remove_quietly(partial)
                raise _Retry("the server refused to continue a partial file")
            elif status == 429 or status >= 500:
                raise _Retry(f"{self.client.host} answered {status}",
                             parse_retry_after(response.headers.get("Retry-After")))
            elif status in (403, 404):
                raise FileFailed(f"the server answered {status}: the file it listed is not there "
                                 f"or not accessible")
            else:
                raise FileFailed(f"the server answered {status} {error_text(response)}")
            size = offset
            with self._open_for_writing(partial, mode) as handle:
                for chunk in response.iter_content(CHUNK_SIZE):
                    if self.cancel.is_set():
                        raise Interrupted()
                    try:
                        handle.write(chunk)
                    except OSError as error:
                        raise self._disk_problem(error, partial) from None
                    md5.update(chunk)
                    size += len(chunk)
                    counted[0] += len(chunk)
                    self.progress.update(len(chunk))
        return md5.hexdigest(), size

    @contextlib.contextmanager
    def _open_for_writing(self, partial: Path, mode: str):
        try:
            handle = open(partial, mode)
        except OSError as error:
            raise self._disk_problem(error, partial) from None
        try:
            yield handle
        finally:
            try:
                handle.close()
            except OSError as error:  # a full disk can surface only when the buffer is flushed
                raise self._disk_problem(error, partial) from None

    def _disk_problem(self, error: OSError, partial: Path) -> DiskProblem:
        """Stop every worker: a full disk or a missing permission will not heal by retrying."""
        self.cancel.set()
        remove_quietly(partial)
        return DiskProblem(describe_disk_error(error, partial.parent))


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after



def run_in_threads(tasks: list, work: Callable, workers: int,
                   cancel: threading.Event) -> Iterator[tuple[object, object]]:
    """Yield (task, result or exception) as workers finish them.

    Daemon threads rather than a ThreadPoolExecutor: on Ctrl-C a worker stuck in a stalled read
    must not keep the process alive until its timeout.
    """
    pending: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()
    for task in tasks:
        pending.put(task)

    def worker() -> None:
        while not cancel.is_set():
            try:
                task = pending.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((task, work(task)))
            except BaseException as error:  # handed to the main thread, which decides
                done.put((task, error))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(workers, len(tasks)))]
    for thread in threads:
        thread.start()
    try:
        for _ in range(len(tasks)):
            while True:
                try:
                    task, outcome = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    if cancel.is_set() and not any(t.is_alive() for t in threads):
                        return
            yield task, outcome
    finally:
        if any(thread.is_alive() for thread in threads):
            cancel.set()
            # Give workers a moment to stop writing, so no .part is half-flushed as we exit.
            deadline = time.monotonic() + 2.0
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))


def _progress_bar(quiet: bool):
    """Bytes and files on stderr, only for a person watching a terminal."""
    from tqdm import tqdm

    enabled = not quiet and sys.stderr.isatty()
    return tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, leave=False)

