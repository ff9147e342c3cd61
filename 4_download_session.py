"""Download a session's scans into downloaded_data/session-<label>/scan-<ID>_<type>/.

Every scan with a DICOM resource (or --resource) is fetched, optionally filtered by type or
series description (--scan-types 'T1*' func_rest) or by ID (--scans 1 3). Files come several at
once, each checked against the server's size and MD5. Running the same command again resumes.
--all-sessions takes every session of --subject, or of the whole project, and --shard K/N splits
them across cluster jobs. --bids also converts what was downloaded into a BIDS dataset with
dcm2niix, each scan as soon as its files are verified.

Example:  python 4_download_session.py --subject sub-01 --session sub-01_ses-1 --scan-types T1 T2
          python 4_download_session.py --all-sessions --shard 1/4
          python 4_download_session.py --demo --bids
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterator

import common
from xnat_download.catalog import (Scan, Session, Subject, describe_scans, filter_scans,
    find_subject, list_project, list_session_files, natural_key, parse_shard, passes_filters,
    pick_session, scans_with_files, shard, some)
from xnat_download.cli import add_download_options, base_parser, run, setup_logging
from xnat_download.config import Config, SiteDefaults, demo_sandbox, resolve_config
from xnat_download.connection import XnatClient
from xnat_download.download import DownloadOptions, download_jobs
from xnat_download.errors import XnatError
from xnat_download.output import note
from xnat_download.plan import Job

SITE = SiteDefaults.from_module(common)   # the server, project and other defaults: edit common.py
SUBJECT = None      # label or ID; None takes the first subject (natural order)
SESSION = None      # label or ID; None takes the subject's first session with the resource
SCAN_TYPES = []     # e.g. ["T1", "func*"]: types or series descriptions; [] keeps every scan
SCANS = []          # e.g. ["1", "3"]: scan IDs; [] keeps every scan
BIDS_MAP = common.BIDS_MAP   # --bids: how scan types become BIDS names (see common.py)


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__, SITE)
    which = parser.add_argument_group("which session and scans")
    which.add_argument("--subject", default=SUBJECT, metavar="LABEL")
    which.add_argument("--session", default=SESSION, metavar="LABEL")
    which.add_argument("--scan-types", nargs="+", default=SCAN_TYPES, metavar="TYPE",
                       help="keep scans whose type or series description matches (wildcards allowed)")
    which.add_argument("--scans", nargs="+", default=SCANS, metavar="ID", help="keep these scan IDs")
    which.add_argument("--all-sessions", action="store_true",
                       help="every session of --subject, or of the whole project")
    which.add_argument("--shard", type=parse_shard, metavar="K/N",
                       help="with --all-sessions: only the K-th of N slices of the sessions")
    add_download_options(parser, SITE)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.shard and not args.all_sessions:
        parser.error("--shard works with --all-sessions")
    if args.session and args.all_sessions:
        parser.error("--session and --all-sessions exclude each other")
    setup_logging(args)
    options = DownloadOptions.from_args(args, parser, BIDS_MAP)
    with demo_sandbox(args) as demo:
        config = resolve_config(args, SITE, demo)
        with XnatClient(config) as client:
            subjects = list_project(client, config.project)
            if args.all_sessions:
                skipped: list[str] = []
                jobs = all_session_jobs(client, subjects, args, config, skipped)
            else:
                job, skipped = one_session_job(client, subjects, args, config)
                jobs = [job]
            return download_jobs(client, config, jobs, options, skipped)


def one_session_job(client: XnatClient, subjects: list[Subject], args: argparse.Namespace,
                    config: Config) -> tuple[Job, list[str]]:
    """The session asked for (or the first with the resource) and its scans that pass the filters."""
    # Without --subject, a session is looked up (or the first one taken) across the project.
    subject = find_subject(subjects, args.subject, config.project) if args.subject else None
    session, files = pick_session(client, subjects, subject, args.session, args.resource,
                                  config.project)
    scans = scans_with_files(session, files)
    if not scans:
        raise XnatError(f"session {session.label} has no scan with a {args.resource} "
                        f"resource; scans there: {describe_scans(session.scans)}")
    chosen = filter_scans(session, scans, args.scan_types, args.scans, strict=True)
    if not chosen:
        raise XnatError(f"nothing to download in session {session.label}: the scans "
                        f"chosen have no {args.resource} resource")
    skipped = report_without_resource(session, scans, args)
    return session_job(session, chosen, files, config), skipped


def all_session_jobs(client: XnatClient, subjects: list[Subject], args: argparse.Namespace,
                     config: Config, skipped: list[str]) -> Iterator[Job]:
    """A job per session of the subject or project (this shard's share), each listed only when its
    turn comes. Sessions where nothing passes the filters are skipped; nothing anywhere is an error."""
    if args.subject:
        subject = find_subject(subjects, args.subject, config.project)
        sessions, where = subject.sessions, f"subject {subject.label} in project {config.project}"
    else:
        sessions = [session for subject in subjects for session in subject.sessions]
        where = f"project {config.project}"
    if not sessions:
        raise XnatError(f"{where} has no session to download")
    sessions = shard(sessions, args.shard)
    if not sessions:
        note(f"shard {args.shard[0]}/{args.shard[1]} has no session to download")
        return
    found_any = False
    for session in sessions:
        files = list_session_files(client, session, args.resource)
        with_files = scans_with_files(session, files)
        skipped += report_without_resource(session, with_files, args)
        scans = filter_scans(session, with_files, args.scan_types, args.scans, strict=False)
        if scans:
            found_any = True
            yield session_job(session, scans, files, config)
        else:
            skipped.append(f"session {session.label}")
            note(f"skipped session {session.label}: no scan with a {args.resource} resource "
                 f"passes the filters")
    if not found_any:
        types = sorted({scan.type for session in sessions for scan in session.scans if scan.type},
                       key=natural_key)
        raise XnatError(f"no scan in {len(sessions)} session(s) has a {args.resource} "
                        f"resource and passes the filters{describe_filters(args)}; types "
                        f"there: {some(types)}")


def session_job(session: Session, scans: list[Scan], files: dict,
                config: Config) -> Job:
    return Job(session, scans, files,
               lambda scan: common.session_scan_folder(config.output_dir, session, scan))


def report_without_resource(session: Session, scans: list[Scan],
                            args: argparse.Namespace) -> list[str]:
    """Scans the filters chose that lack the resource are skipped, not errors: say which."""
    having = {scan.id for scan in scans}
    skipped = []
    for scan in session.scans:
        if scan.id not in having and passes_filters(scan, args.scan_types, args.scans):
            skipped.append(f"scan {scan.id} of {session.label}")
            note(f"skipped scan {scan.id} ({scan.type}) of {session.label}: no "
                 f"{args.resource} resource")
    return skipped


def describe_filters(args: argparse.Namespace) -> str:
    parts = []
    if args.scan_types:
        parts.append("--scan-types " + " ".join(args.scan_types))
    if args.scans:
        parts.append("--scans " + " ".join(args.scans))
    return f" ({'; '.join(parts)})" if parts else ""


if __name__ == "__main__":
    sys.exit(run(main))
