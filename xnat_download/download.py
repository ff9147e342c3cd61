"""The download story shared by scripts 3 and 4: plan each session's scans, fetch them (or, with
--dry-run, show what would be fetched), then print the summary and list what failed."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from xnat_download.cli import human_size, note
from xnat_download.config import Config
from xnat_download.connection import XnatClient
from xnat_download.errors import ExitStatus, XnatError
from xnat_download.manifest import Manifest, already_there, someone_elses
from xnat_download.plan import Job, ScanPlan, plan_scan
from xnat_download.transfer import Downloader



@dataclass
class DownloadOptions:
    """The download options of scripts 3 and 4 (cli.add_download_options)."""
    resource: str
    workers: int
    dry_run: bool
    transfer: str = "auto"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DownloadOptions:
        return cls(resource=args.resource, workers=args.workers, dry_run=args.dry_run,
                   transfer=args.transfer)


def download_jobs(client: XnatClient, config: Config, jobs: Iterable[Job], options: DownloadOptions,
                  skipped: list[str] | None = None) -> int:
    """Download (or, with dry_run, show) each job as it comes, then report.

    `jobs` may be a generator that lists each session only when its turn comes, so that the first
    files of a project arrive without waiting for every session's listing; it may add to
    `skipped` as it goes.
    """
    output_dir = config.output_dir
    if output_dir.exists() and not output_dir.is_dir():
        raise XnatError(f"the output folder {output_dir} exists and is a file; "
                        f"choose another with --output-dir")
    skipped = [] if skipped is None else skipped
    dry_run = options.dry_run
    downloader = None if dry_run else Downloader(client, options.workers, output_dir, config.quiet,
                                                 options.transfer)
    would_fetch_files = would_fetch_bytes = already_present = 0
    try:
        for job in jobs:
            plans = [plan_scan(client, config.project, job.session, scan, options.resource,
                               job.files[scan.id], job.folder_of(scan), output_dir)
                     for scan in job.scans]
            if dry_run:
                files, size, present = show_plans(plans, output_dir)
                would_fetch_files += files
                would_fetch_bytes += size
                already_present += present
            else:
                downloader.download_session(plans)
    finally:
        if downloader:
            downloader.close()
    if dry_run:
        print(f"would download {would_fetch_files} files ({human_size(would_fetch_bytes)}) "
              f"into {output_dir}, {already_present} already present; nothing was written")
        return ExitStatus.OK
    summary = downloader.summary
    summary.started = config.started
    summary.skipped = skipped
    note(summary.line(output_dir), config.quiet)
    if summary.failed:
        for failure in summary.failed:
            print(f"  failed: {failure}", file=sys.stderr)
        retryable = len(summary.failed) - summary.needs_attention
        advice = ("running the same command again retries them" if not summary.needs_attention else
                  "running again will not change them: each line above says why" if not retryable
                  else f"running the same command again retries the {retryable} that failed in "
                       f"transfer; each of the others says why it needs you")
        raise XnatError(f"{len(summary.failed)} file(s) could not be downloaded (listed above); "
                        f"{advice}")
    return ExitStatus.OK


def show_plans(plans: list[ScanPlan], output_dir: Path) -> tuple[int, int, int]:
    """--dry-run: what a real run would fetch for these scans, on stdout, writing nothing.
    Returns the files and bytes it would fetch, and the files already there."""
    files = size = present = 0
    for plan in plans:
        manifest = Manifest(plan.folder, plan.source)
        manifest.load()   # another source's folder is the same error as in a real run
        fetch, theirs = [], []
        for planned in plan.files:
            if already_there(planned, manifest, record=False):
                present += 1
            elif someone_elses(planned, manifest):
                theirs.append(planned)
            else:
                fetch.append(planned)
        scan_bytes = sum(max(f.remote.size, 0) for f in fetch)
        print(f"{plan.folder.relative_to(output_dir)}  {len(fetch)} files  {human_size(scan_bytes)}")
        for name, why in plan.refused:
            print(f"  would refuse {name!r}: {why}")
        for planned in theirs:
            print(f"  would leave alone {planned.relative}: a different file of this name is there")
        files += len(fetch)
        size += scan_bytes
    return files, size, present
