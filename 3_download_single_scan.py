"""Download one scan's files into downloaded_data/scan-<ID>_<type>/.

Every file of the scan's DICOM resource (or --resource) is fetched, several at once, checked
against the server's size and MD5, and kept under its server name. Running the same command
again resumes: verified files are not fetched twice.

With --bids, the scan is also converted into a BIDS dataset with dcm2niix.

Example:  python 3_download_single_scan.py --subject sub-01 --session sub-01_ses-1 --scan 2
          python 3_download_single_scan.py --scan 2 --bids
          python 3_download_single_scan.py --demo
"""
from __future__ import annotations

import argparse
import sys

import common
from xnat_download.catalog import (Scan, Session, describe_scans, find_subject, list_project,
    pick_session, scans_with_files)
from xnat_download.cli import add_download_options, base_parser, run, setup_logging
from xnat_download.config import SiteDefaults, demo_sandbox, resolve_config
from xnat_download.connection import XnatClient
from xnat_download.download import DownloadOptions, download_jobs
from xnat_download.errors import XnatError
from xnat_download.plan import Job

SITE = SiteDefaults.from_module(common)   # the server, project and other defaults: edit common.py
SUBJECT = None      # label or ID; None takes the first subject (natural order)
SESSION = None      # label or ID; None takes the subject's first session with the resource
SCAN = None         # scan ID; None takes the session's first scan with the resource
BIDS_MAP = common.BIDS_MAP   # --bids: how scan types become BIDS names (see common.py)


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser(__doc__, SITE)
    which = parser.add_argument_group("which scan")
    which.add_argument("--subject", default=SUBJECT, metavar="LABEL")
    which.add_argument("--session", default=SESSION, metavar="LABEL")
    which.add_argument("--scan", default=SCAN, metavar="ID")
    add_download_options(parser, SITE)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args)
    options = DownloadOptions.from_args(args, parser, BIDS_MAP)
    with demo_sandbox(args) as demo:
        config = resolve_config(args, SITE, demo)
        with XnatClient(config) as client:
            subjects = list_project(client, config.project)
            # Without --subject, a session is looked up (or the first one taken) across the project.
            subject = find_subject(subjects, args.subject, config.project) if args.subject else None
            session, files = pick_session(client, subjects, subject, args.session,
                                          args.resource, config.project)
            scan = pick_scan(session, files, args.scan, args.resource)
            job = Job(session, [scan], files,
                      lambda scan: common.single_scan_folder(config.output_dir, scan))
            return download_jobs(client, config, [job], options)


def pick_scan(session: Session, files: dict, wanted: str | None, resource: str) -> Scan:
    """The scan asked for, or the first (natural order) with the resource."""
    with_files = scans_with_files(session, files)
    if wanted is None:
        if not with_files:
            raise XnatError(f"no scan of session {session.label} has a {resource} resource; "
                            f"scans there: {describe_scans(session.scans)}")
        return with_files[0]
    for scan in with_files:
        if scan.id == wanted:
            return scan
    if any(scan.id == wanted for scan in session.scans):
        raise XnatError(f"scan {wanted} of session {session.label} has no {resource} "
                        f"resource; scans with one: {describe_scans(with_files)}")
    raise XnatError(f"scan {wanted} not found in session {session.label}; scans there: "
                    f"{describe_scans(session.scans)}")


if __name__ == "__main__":
    sys.exit(run(main))
