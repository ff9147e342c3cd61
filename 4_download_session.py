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
from pathlib import Path

import common
from xnat_download.catalog import Scan, Session, list_project
from xnat_download.cli import (Environment, add_download_options, base_parser, connection_settings,
                               download_options, parse_shard, run, setup_logging)
from xnat_download.config import SiteDefaults, demo_sandbox
from xnat_download.connection import XnatClient
from xnat_download.download import download_jobs
from xnat_download.selection import Wanted, all_sessions, one_session

SITE = SiteDefaults.from_module(common)   # the server, project and other defaults: edit common.py
SUBJECT = None      # label or ID; None takes the first subject (natural order)
SESSION = None      # label or ID; None takes the subject's first session with the resource
SCAN_TYPES = []     # e.g. ["T1", "func*"]: types or series descriptions; [] keeps every scan
SCANS = []          # e.g. ["1", "3"]: scan IDs; [] keeps every scan


def build_parser(env: Environment) -> argparse.ArgumentParser:
    parser = base_parser(__doc__, SITE, env)
    which = parser.add_argument_group("which session and scans")
    which.add_argument("--subject", default=SUBJECT, metavar="LABEL",
                       help="subject label or ID (default: the first subject with a session)")
    which.add_argument("--session", default=SESSION, metavar="LABEL",
                       help="session label or ID (default: the first session, of --subject if "
                            "given, with the resource)")
    which.add_argument("--scan-types", nargs="+", default=SCAN_TYPES, metavar="TYPE",
                       help="keep scans whose type or series description matches (wildcards allowed)")
    which.add_argument("--scans", nargs="+", default=SCANS, metavar="ID", help="keep these scan IDs")
    which.add_argument("--all-sessions", action="store_true",
                       help="every session of --subject, or of the whole project")
    which.add_argument("--shard", type=parse_shard, metavar="K/N",
                       help="with --all-sessions: only the K-th of N slices of the sessions")
    add_download_options(parser, SITE)
    return parser


def main(env: Environment) -> int:
    parser = build_parser(env)
    args = parser.parse()
    if args.shard and not args.all_sessions:
        parser.error("--shard works with --all-sessions")
    if args.session and args.all_sessions:
        parser.error("--session and --all-sessions exclude each other")
    setup_logging(args, env)
    # --bids names scans by common.BIDS_MAP (in SITE), the one place to edit it.
    options = download_options(args, SITE, env)
    with demo_sandbox(args.demo) as demo:
        config = connection_settings(args, SITE, env, demo)
        wanted = Wanted(config.project, args.resource, args.subject, args.session,
                        scan_types=args.scan_types, scan_ids=args.scans, shard=args.shard)

        def folder_of(session: Session, scan: Scan) -> Path:   # where a scan lands: see common.py
            return common.session_scan_folder(config.output_dir, session, scan)

        with XnatClient(config) as client:
            subjects = list_project(client, config.project)
            if args.all_sessions:
                jobs = all_sessions(client, subjects, wanted, folder_of)
            else:
                jobs = [one_session(client, subjects, wanted, folder_of)]
            return download_jobs(client, config, jobs, options, env.stdout)


if __name__ == "__main__":
    sys.exit(run(main))
