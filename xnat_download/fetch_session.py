"""One session's planned scans fetched, session after session, with the run's tally: what is
already verified is counted, how each scan travels is chosen (routing.py), and a pool of workers
fetches zips and single files, handing each outcome to the main thread, which keeps the tally and
sends on what a zip left."""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from xnat_download.connection import XnatClient
from xnat_download.disk import describe_disk_error, make_folder
from xnat_download.errors import DiskProblem, Interrupted
from xnat_download.fetch_file import FetchContext, FileFailed, Overflow, fetch_file
from xnat_download.fetch_zip import ZipOutcome, fetch_zip
from xnat_download.manifest import (ForeignFolder, Manifest, adopt_former_folder, check_on_disk,
                                    folder_lock)
from xnat_download.output import human_size, progress_bar
from xnat_download.plan import PlannedFile, ScanPlan
from xnat_download.pool import WorkerPool
from xnat_download.routing import Route, choose_routes, route

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
    abandoned: list[str] = field(default_factory=list)   # zips that ran past their listing
    scans_refused: list[str] = field(default_factory=list)   # scans whose folder was not theirs
    started: float = field(default_factory=time.monotonic)

    def line(self, folder: Path) -> str:
        parts = [f"{self.downloaded} files ({human_size(self.downloaded_bytes)}) downloaded",
                 f"{self.present} already present ({human_size(self.present_bytes)})"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        # Every failure counted: a scan refused whole is no file failed, and never "0 failed".
        refused = len(self.scans_refused)
        if not refused:
            parts.append(f"{len(self.failed)} failed")
        elif self.failed:
            parts.append(f"{len(self.failed)} files failed")
        if refused:
            parts.append(f"{refused} scan{'s' if refused > 1 else ''} failed")
        elapsed = time.monotonic() - self.started
        return f"{', '.join(parts)} in {elapsed:.{2 if elapsed < 10 else 0}f} s -> {folder}"


class SessionFetcher:
    """Fetches the planned scans of one session at a time, several connections at once, each file
    verified before it takes its final name; its summary is the tally of every session so far."""

    def __init__(self, client: XnatClient, workers: int, output_dir: Path,
                 transfer: str = "auto",
                 on_scan_ready: Callable[[ScanPlan, Manifest], None] | None = None) -> None:
        self.client = client
        self.workers = workers
        self.transfer = transfer   # --transfer: auto (routing.py chooses), zip or files
        self.output_dir = output_dir
        self.summary = Summary()
        self.fetch_context = FetchContext(client, threading.Event(), progress_bar())
        self.progress = self.fetch_context.progress
        self.on_scan_ready = on_scan_ready   # called once each scan's every file is verified
        self.network = client.meter.reading()   # as measured when the session's routes were chosen
        self._scans: dict[int, ScanState] = {}

    def close(self) -> None:
        self.progress.close()

    def fetch_session(self, plans: list[ScanPlan]) -> None:
        """Fetch every planned scan of one session; failures are recorded, not raised."""
        # One picture of the network for all of this session's routes, re-routes included: what
        # its own transfers measure is for the next session's.
        self.network = self.client.meter.reading()
        with contextlib.ExitStack() as stack:
            routes = []
            folders: dict[tuple, ScanPlan] = {}   # each scan folder (device, inode), and its scan
            for plan in plans:
                manifest = self._open_folder(plan, stack, folders)
                if manifest is None:
                    continue
                state = self._scans[id(plan)] = ScanState(manifest, broken=bool(plan.refused))
                missing = self._files_to_fetch(plan, state)
                if missing:
                    routes.append(self._route(plan, manifest, missing))
                else:
                    self._scan_done(plan)
            self.progress.refresh()
            pool = WorkerPool(self._work, self.workers, self.fetch_context.cancel)
            for chosen in choose_routes(routes, self.workers, self.network, self.transfer):
                log.debug("scan %s: %d files %s", chosen.plan.scan.id, len(chosen.files),
                          "as one zip" if chosen.by_zip else "one by one")
                self._submit(pool, chosen)
            fatal = None
            # Outcomes are counted here, in one thread, as the workers hand them over.
            for task, outcome in pool.outcomes():
                if isinstance(outcome, ZipOutcome):
                    self._zip_done(pool, task, outcome)
                elif isinstance(outcome, int):
                    self.progress.file_landed()   # a zip's entries count on the bar as they land
                    self._landed(task.route.plan, outcome)
                elif isinstance(outcome, FileFailed):
                    self._failed(task.route.plan, task.planned, outcome)
                elif isinstance(outcome, Interrupted):
                    continue   # a worker stopping because another one hit a fatal problem
                else:
                    fatal = fatal or outcome
                    self.fetch_context.cancel.set()
            if fatal:
                raise fatal

    def _open_folder(self, plan: ScanPlan, stack: contextlib.ExitStack,
                     folders: dict[tuple, ScanPlan]) -> Manifest | None:
        """Make the scan's folders, take its lock, and read what an earlier run verified there.
        None, with the reason in the summary, if the folder is not this scan's to write into."""
        if plan.former:
            adopt_former_folder(plan.former, plan.folder, plan.source)
        make_folder(plan.folder, self.output_dir)
        # Folder names are distinct by construction; this catches what construction cannot (names
        # that differ only in case on a disk that ignores case, or a name made to match a tag),
        # since a wait for our own lock would never end.
        try:
            info = plan.folder.stat()
        except OSError as error:
            raise DiskProblem(describe_disk_error(error, plan.folder)) from None
        other = folders.setdefault((info.st_dev, info.st_ino), plan)
        if other is not plan:
            self.summary.scans_refused.append(
                f"{plan.folder.relative_to(self.output_dir)}: scan {plan.scan.id} would share this "
                f"folder with scan {other.scan.id} (their names differ only in case, or were made "
                f"to look alike); it was not downloaded: fetch it on its own with --scans "
                f"{plan.scan.id} and another --output-dir")
            return None
        for name, why in plan.refused:
            self.summary.failed.append(f"scan {plan.scan.id} file {name}: {why}")
            self.summary.needs_attention += 1
        # Every folder once here, rather than a check per file as it is written.
        for folder in sorted({f.target.parent for f in plan.files} - {plan.folder}):
            make_folder(folder, self.output_dir)
        stack.enter_context(folder_lock(plan.folder))
        manifest = Manifest(plan.folder, plan.source)
        try:
            manifest.load()
        except ForeignFolder as refusal:   # an older layout's, say: the other scans still come
            self.summary.scans_refused.append(str(refusal))
            return None
        stack.callback(manifest.save)
        return manifest

    def _files_to_fetch(self, plan: ScanPlan, state: ScanState) -> list[PlannedFile]:
        """The scan's files to fetch; those verified already are counted, others' files reported."""
        on_disk = check_on_disk(plan.files, state.manifest)
        for planned in on_disk.present:
            self.summary.present += 1
            self.summary.present_bytes += max(planned.remote.size, 0)   # -1: the listing gave no size
        self.progress.already_present(len(on_disk.present))   # named on the bar, not its speed
        for planned in on_disk.theirs:   # not ours to replace
            state.broken = True
            self.summary.failed.append(
                f"{planned.target.relative_to(self.output_dir)}: a different file of "
                f"this name was already there, not from these scripts; it was left "
                f"untouched: move it away to download this one")
            self.summary.needs_attention += 1
        self.progress.expect(sum(max(planned.remote.size, 0) for planned in on_disk.to_fetch),
                             len(on_disk.to_fetch))
        state.remaining = len(on_disk.to_fetch)
        return on_disk.to_fetch

    def _route(self, plan: ScanPlan, manifest: Manifest, files: list[PlannedFile]) -> Route:
        return route(plan, manifest, files, self.network, self.transfer)

    def _submit(self, pool: WorkerPool, chosen: Route, zip_attempts: int = 0) -> None:
        if chosen.by_zip:
            pool.submit(ZipTask(chosen, zip_attempts))
        else:
            for planned in chosen.files:
                pool.submit(FileTask(chosen, planned))

    def _work(self, task: ZipTask | FileTask) -> object:
        if isinstance(task, ZipTask):
            attempts_left = self.client.retry_rule.tries - task.attempts_used
            return fetch_zip(self.fetch_context, task.route.plan, task.route.files, task.route.manifest,
                             attempts_left)
        return fetch_file(self.fetch_context, task.planned, task.route.manifest)

    def _zip_done(self, pool: WorkerPool, task: ZipTask, outcome: ZipOutcome) -> None:
        """Count what the zip landed; send on what it left: a cut-off zip's rest by a new zip if
        that is still the cheaper way, otherwise (and always for a wrong entry) file by file."""
        chosen, attempts_used = task.route, task.attempts_used
        if outcome.abandoned:
            self.summary.abandoned.append(f"{chosen.plan.folder.relative_to(self.output_dir)} (zip): "
                                          f"{outcome.abandoned}; its files came one by one")
        for _planned, size in outcome.landed:
            self._landed(chosen.plan, size)
        for planned, failure in outcome.failed:
            self._failed(chosen.plan, planned, failure)
        attempts_used += outcome.attempts
        if outcome.left:
            rest = self._route(chosen.plan, chosen.manifest, outcome.left)
            rest.by_zip = (rest.by_zip and outcome.cut
                           and attempts_used < self.client.retry_rule.tries)
            self._submit(pool, rest, attempts_used)
        for planned in outcome.singly:
            pool.submit(FileTask(chosen, planned))

    def _landed(self, plan: ScanPlan, size: int) -> None:
        self.summary.downloaded += 1
        self.summary.downloaded_bytes += size
        self._one_file_less(plan)

    def _failed(self, plan: ScanPlan, planned: PlannedFile, failure: FileFailed) -> None:
        self.summary.failed.append(f"{planned.target.relative_to(self.output_dir)}: {failure}")
        if isinstance(failure, Overflow):   # the server's listing and bytes disagree: a rerun won't help
            self.summary.needs_attention += 1
        self._scans[id(plan)].broken = True
        self._one_file_less(plan)

    def _one_file_less(self, plan: ScanPlan) -> None:
        state = self._scans[id(plan)]
        state.remaining -= 1
        if state.remaining == 0:
            self._scan_done(plan)

    def _scan_done(self, plan: ScanPlan) -> None:
        """Hand on a scan whose every file is verified (not one with a file that failed)."""
        state = self._scans[id(plan)]
        if self.on_scan_ready and not state.broken:
            self.on_scan_ready(plan, state.manifest)


@dataclass
class ZipTask:
    """A worker's task: the route's files by one zip, after `attempts_used` zips of them before."""
    route: Route
    attempts_used: int = 0


@dataclass
class FileTask:
    """A worker's task: one file of the route, by its own request."""
    route: Route
    planned: PlannedFile


@dataclass
class ScanState:
    """A scan of the session being downloaded: its manifest, and how many files are still due."""
    manifest: Manifest
    remaining: int = 0
    broken: bool = False   # a file failed or was refused: the scan is not complete

