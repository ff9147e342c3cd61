"""The download story shared by scripts 3 and 4: plan each session's scans, fetch them (or, with
--dry-run, show what would be fetched), convert them with --bids, then print the summary and
list what failed."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from xnat_download.bids import BidsOptions, BidsWriter
from xnat_download.bids_names import BidsName, Image, stand_in_sidecar
from xnat_download.bids_rules import name_images, rule_source, scan_rule
from xnat_download.catalog import Session
from xnat_download.config import Config
from xnat_download.connection import XnatClient
from xnat_download.errors import ExitStatus, XnatError
from xnat_download.manifest import Manifest, check_on_disk, former_is_this_scans
from xnat_download.output import always, human_size, note
from xnat_download.plan import SessionJob, ScanPlan, Skipped, plan_scan
from xnat_download.fetch_session import SessionFetcher


FIELD_MAP_PARTS = "<magnitude1|magnitude2|phasediff|fieldmap|magnitude>"


@dataclass(frozen=True)
class DownloadOptions:
    """The download options of scripts 3 and 4, as cli.download_options makes them (the number of
    connections is the Config's `workers`: one setting, one place)."""
    resource: str
    dry_run: bool = False
    transfer: str = "auto"          # --transfer: auto, zip or files
    bids: BidsOptions | None = None


def download_jobs(client: XnatClient, config: Config, jobs: Iterable[SessionJob],
                  options: DownloadOptions, out: TextIO) -> int:
    """Download (or, with dry_run, show on `out`, the run's stdout) each job as it comes, then report.

    `jobs` may be a generator that lists each session only when its turn comes, so that the first
    files of a project arrive without waiting for every session's listing; what each job skipped
    is noted as it comes. With --bids, each scan is converted as soon as its files are verified.
    """
    output_dir = config.output_dir
    if output_dir.exists() and not output_dir.is_dir():
        raise XnatError(f"the output folder {output_dir} exists and is a file; "
                        f"choose another with --output-dir")
    skipped: list[Skipped] = []
    jobs = noting_skips(jobs, skipped)
    if options.dry_run:
        return show_jobs(client, config, jobs, options, out)
    bids = BidsWriter(options.bids, config.project, output_dir) if options.bids else None
    fetcher = SessionFetcher(client, config.workers, output_dir, options.transfer,
                             on_scan_ready=bids.scan_ready if bids else None)
    try:
        for job in jobs:
            plans = plan_job(client, config, job, options)
            fetcher.fetch_session(plans)
            if bids:
                bids.finish_session(job.session)
    finally:
        fetcher.close()
        if bids:
            bids.close()
    summary = fetcher.summary
    summary.started = config.started
    summary.skipped = [skip.what for skip in skipped]
    note(summary.line(output_dir))
    if bids:
        report_bids(bids)
    failures = summary.scans_refused + summary.failed + (bids.failed if bids else [])
    # One refused scan and nothing else: the error line itself says which and what to do.
    alone = failures == summary.scans_refused and len(failures) == 1 and not summary.abandoned
    for failure in [] if alone else failures:
        always(f"  failed: {failure}")
    for abandoned in summary.abandoned:
        always(f"  abandoned: {abandoned}")
    problems = []
    if summary.failed:
        retryable = len(summary.failed) - summary.needs_attention
        advice = ("running the same command again retries them" if not summary.needs_attention else
                  "running again will not change them: each line above says why" if not retryable
                  else f"running the same command again retries the {retryable} that failed in "
                       f"transfer; each of the others says why it needs you")
        problems.append(f"{len(summary.failed)} file(s) could not be downloaded (listed above); "
                        f"{advice}")
    if alone:
        problems.append(f"1 scan was not downloaded: {summary.scans_refused[0]}")
    elif summary.scans_refused:
        problems.append(f"{len(summary.scans_refused)} scan(s) were not downloaded (listed above): "
                        f"each line says why")
    if summary.abandoned:
        problems.append(f"the server sent more than it listed in {len(summary.abandoned)} zip(s) "
                        f"(listed above): tell your XNAT admin")
    if bids and bids.failed:
        problems.append(f"{len(bids.failed)} scan(s) could not be converted to BIDS (listed above); "
                        f"every download is kept")
    if problems:
        raise XnatError("; and ".join(problems))
    return ExitStatus.OK


def noting_skips(jobs: Iterable[SessionJob], skipped: list[Skipped]) -> Iterator[SessionJob]:
    """The jobs with scans to fetch; what each skipped is noted (and kept for the summary)."""
    for job in jobs:
        for skip in job.skipped:
            note(f"skipped {skip.what}: {skip.why}")
        skipped.extend(job.skipped)
        if job.scans:
            yield job


def plan_job(client: XnatClient, config: Config, job: SessionJob, options: DownloadOptions) -> list[ScanPlan]:
    return [plan_scan(client, config.project, job.session, scan, options.resource,
                      job.files[scan.id], job.folder_of(scan), config.output_dir)
            for scan in job.scans]


def report_bids(bids: BidsWriter) -> None:
    if bids.skipped:
        note(f"no BIDS name for (not converted): {'; '.join(bids.skipped)}")
    note(f"BIDS: {bids.converted} scan(s) converted, {bids.unchanged} already converted, "
         f"{len(bids.failed)} failed -> {bids.folder}")


def show_jobs(client: XnatClient, config: Config, jobs: Iterable[SessionJob], options: DownloadOptions,
              out: TextIO) -> int:
    """--dry-run: what a real run would fetch (and, with --bids, the names it would write)."""
    would_fetch_files = would_fetch_bytes = already_present = 0
    for job in jobs:
        plans = plan_job(client, config, job, options)
        files, size, present = show_plans(plans, config.output_dir, out)
        would_fetch_files += files
        would_fetch_bytes += size
        already_present += present
        if options.bids:
            show_bids_names(job.session, plans, options.bids, out)
    print(f"would download {would_fetch_files} files ({human_size(would_fetch_bytes)}) "
          f"into {config.output_dir}, {already_present} already present; nothing was written", file=out)
    return ExitStatus.OK


def show_bids_names(session: Session, plans: list[ScanPlan], options: BidsOptions, out: TextIO) -> None:
    """The name each scan is planned to take, from what XNAT says of it, by the rules a real run
    names by: a real run names each image dcm2niix makes of a scan on its own sidecar (echoes,
    phase, field map parts), and identifies the series no name or map row names."""
    images = [Image(plan.scan, f"scan-{plan.scan.id}", stand_in_sidecar(plan.scan)) for plan in plans]
    named = name_images(session, images, options.rules)
    print("  bids names planned from XNAT's types and descriptions (each image dcm2niix makes "
          "is named on its own sidecar):", file=out)
    for plan, image, item in zip(plans, images, named):
        target = "no BIDS name (not converted)"
        source = rule_source(plan.scan, options.bids_map) if options.config is None else "config"
        if source == "identify":
            target = "named by what its images are, once converted"
        elif item.name is not None:
            name = item.name
            if source != "config" and scan_rule([image], options.bids_map)[0] == ("fmap", "fieldmap"):
                # which parts a field map's series holds only its images tell (nor are they runs)
                name = BidsName(name.subject, name.session, "fmap", FIELD_MAP_PARTS)
            target = f"{options.folder / name.path()}.nii.gz"
        print(f"  bids: scan {plan.scan.id} ({plan.scan.type}) -> {target}", file=out)


def show_plans(plans: list[ScanPlan], output_dir: Path, out: TextIO) -> tuple[int, int, int]:
    """--dry-run: what a real run would fetch for these scans, on stdout, writing nothing.
    Returns the files and bytes it would fetch, and the files already there."""
    files = size = present = 0
    for plan in plans:
        folder, planned_files = plan.folder, plan.files
        if plan.former and former_is_this_scans(plan.former, plan.folder, plan.source):
            # A real run renames an earlier version's folder of this scan (if it is this scan's).
            folder = plan.former
            planned_files = [replace(f, target=folder / f.relative) for f in plan.files]
        manifest = Manifest(folder, plan.source)
        manifest.load()   # another source's folder is the same error as in a real run
        on_disk = check_on_disk(planned_files, manifest, record=False)
        scan_bytes = sum(max(f.remote.size, 0) for f in on_disk.to_fetch)
        print(f"{plan.folder.relative_to(output_dir)}  {len(on_disk.to_fetch)} files  "
              f"{human_size(scan_bytes)}", file=out)
        for name, why in plan.refused:
            print(f"  would refuse {name!r}: {why}", file=out)
        for planned in on_disk.theirs:
            print(f"  would leave alone {planned.relative}: a different file of this name is there",
                  file=out)
        files += len(on_disk.to_fetch)
        size += scan_bytes
        present += len(on_disk.present)
    return files, size, present
