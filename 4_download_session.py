"""Download a session's scans into downloaded_data/session-<label>/scan-<ID>_<type>/.

Every scan with a DICOM resource (or --resource) is fetched, optionally filtered by type or
series description (--scan-types 'T1*' func_rest) or by ID (--scans 1 3). Files come several at
once, each checked against the server's size and MD5. Running the same command again resumes.
--all-sessions takes every session of --subject, or of the whole project, and --shard K/N splits
them across cluster jobs.

Example:  python 4_download_session.py --subject sub-01 --session sub-01_ses-1 --scan-types T1 T2
          python 4_download_session.py --all-sessions --shard 1/4
          python 4_download_session.py --demo
"""
from __future__ import annotations

import argparse
import sys
from typing import Iterator

import common

SUBJECT = None      # label or ID; None takes the first subject (natural order)
SESSION = None      # label or ID; None takes the subject's first session with the resource
SCAN_TYPES = []     # e.g. ["T1", "func*"]: types or series descriptions; [] keeps every scan
SCANS = []          # e.g. ["1", "3"]: scan IDs; [] keeps every scan


def build_parser() -> argparse.ArgumentParser:
    parser = common.base_parser(__doc__)
    which = parser.add_argument_group("which session and scans")
    which.add_argument("--subject", default=SUBJECT, metavar="LABEL")
    which.add_argument("--session", default=SESSION, metavar="LABEL")
    which.add_argument("--scan-types", nargs="+", default=SCAN_TYPES, metavar="TYPE",
                       help="keep scans whose type or series description matches (wildcards allowed)")
    which.add_argument("--scans", nargs="+", default=SCANS, metavar="ID", help="keep these scan IDs")
    which.add_argument("--all-sessions", action="store_true",
                       help="every session of --subject, or of the whole project")
    which.add_argument("--shard", type=common.parse_shard, metavar="K/N",
                       help="with --all-sessions: only the K-th of N slices of the sessions")
    common.add_download_options(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.shard and not args.all_sessions:
        parser.error("--shard works with --all-sessions")
    if args.session and args.all_sessions:
        parser.error("--session and --all-sessions exclude each other")
    common.setup_logging(args)
    with common.demo_sandbox(args):
        config = common.resolve_config(args)
        with common.XnatClient(config, args.workers, args.retries, args.timeout) as client:
            subjects = common.list_project(client, config.project)
            if args.all_sessions:
                skipped: list[str] = []
                jobs = all_session_jobs(client, subjects, args, config, skipped)
            else:
                job, skipped = one_session_job(client, subjects, args, config)
                jobs = [job]
            return common.download_jobs(client, config, jobs, args.resource, args.workers,
                                        args.dry_run, skipped)


def one_session_job(client: common.XnatClient, subjects: list[common.Subject], args: argparse.Namespace,
                    config: common.Config) -> tuple[common.Job, list[str]]:
    """The session asked for (or the first with the resource) and its scans that pass the filters."""
    # Without --subject, a session is looked up (or the first one taken) across the project.
    subject = common.find_subject(subjects, args.subject, config.project) if args.subject else None
    session, files = common.pick_session(client, subjects, subject, args.session, args.resource,
                                         config.project)
    scans = common.scans_with_files(session, files)
    if not scans:
        raise common.XnatError(f"session {session.label} has no scan with a {args.resource} "
                               f"resource; scans there: {common.describe_scans(session.scans)}")
    chosen = common.filter_scans(session, scans, args.scan_types, args.scans, strict=True)
    if not chosen:
        raise common.XnatError(f"nothing to download in session {session.label}: the scans "
                               f"chosen have no {args.resource} resource")
    skipped = report_without_resource(session, scans, args)
    return session_job(session, chosen, files, config), skipped


def all_session_jobs(client: common.XnatClient, subjects: list[common.Subject], args: argparse.Namespace,
                     config: common.Config, skipped: list[str]) -> Iterator[common.Job]:
    """A job per session of the subject or project (this shard's share), each listed only when its
    turn comes. Sessions where nothing passes the filters are skipped; nothing anywhere is an error."""
    if args.subject:
        subject = common.find_subject(subjects, args.subject, config.project)
        sessions, where = subject.sessions, f"subject {subject.label} in project {config.project}"
    else:
        sessions = [session for subject in subjects for session in subject.sessions]
        where = f"project {config.project}"
    if not sessions:
        raise common.XnatError(f"{where} has no session to download")
    sessions = common.shard(sessions, args.shard)
    if not sessions:
        common.note(f"shard {args.shard[0]}/{args.shard[1]} has no session to download", args.quiet)
        return
    found_any = False
    for session in sessions:
        files = common.list_session_files(client, session, args.resource)
        with_files = common.scans_with_files(session, files)
        skipped += report_without_resource(session, with_files, args)
        scans = common.filter_scans(session, with_files, args.scan_types, args.scans, strict=False)
        if scans:
            found_any = True
            yield session_job(session, scans, files, config)
        else:
            skipped.append(f"session {session.label}")
            common.note(f"skipped session {session.label}: no scan with a {args.resource} resource "
                        f"passes the filters", args.quiet)
    if not found_any:
        types = sorted({scan.type for session in sessions for scan in session.scans if scan.type},
                       key=common.natural_key)
        raise common.XnatError(f"no scan in {len(sessions)} session(s) has a {args.resource} "
                               f"resource and passes the filters{describe_filters(args)}; types "
                               f"there: {common.some(types)}")


def session_job(session: common.Session, scans: list[common.Scan], files: dict,
                config: common.Config) -> common.Job:
    folder = config.output_dir / common.session_folder_name(session)
    return common.Job(session, scans, files, lambda scan: folder / common.scan_folder_name(scan))


def report_without_resource(session: common.Session, scans: list[common.Scan],
                            args: argparse.Namespace) -> list[str]:
    """Scans the filters chose that lack the resource are skipped, not errors: say which."""
    having = {scan.id for scan in scans}
    skipped = []
    for scan in session.scans:
        if scan.id not in having and common.passes_filters(scan, args.scan_types, args.scans):
            skipped.append(f"scan {scan.id} of {session.label}")
            common.note(f"skipped scan {scan.id} ({scan.type}) of {session.label}: no "
                        f"{args.resource} resource", args.quiet)
    return skipped


def describe_filters(args: argparse.Namespace) -> str:
    parts = []
    if args.scan_types:
        parts.append("--scan-types " + " ".join(args.scan_types))
    if args.scans:
        parts.append("--scans " + " ".join(args.scans))
    return f" ({'; '.join(parts)})" if parts else ""


if __name__ == "__main__":
    sys.exit(common.run(main))
