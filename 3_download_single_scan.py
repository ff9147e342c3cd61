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
from pathlib import Path

import common
from xnat_download.catalog import Scan, Session, list_project
from xnat_download.cli import (Environment, add_download_options, base_parser, connection_settings,
                               download_options, run, setup_logging)
from xnat_download.config import SiteDefaults, demo_sandbox
from xnat_download.connection import XnatClient
from xnat_download.download import download_jobs
from xnat_download.selection import Wanted, one_scan

SITE = SiteDefaults.from_module(common)   # the server, project and other defaults: edit common.py
SUBJECT = None      # label or ID; None takes the first subject (natural order)
SESSION = None      # label or ID; None takes the subject's first session with the resource
SCAN = None         # scan ID; None takes the session's first scan with the resource


def build_parser(env: Environment) -> argparse.ArgumentParser:
    parser = base_parser(__doc__, SITE, env)
    which = parser.add_argument_group("which scan")
    which.add_argument("--subject", default=SUBJECT, metavar="LABEL",
                       help="subject label or ID (default: the first subject with a session)")
    which.add_argument("--session", default=SESSION, metavar="LABEL",
                       help="session label or ID (default: the first session, of --subject if "
                            "given, with the resource)")
    which.add_argument("--scan", default=SCAN, metavar="ID",
                       help="scan ID (default: the session's first scan with the resource)")
    add_download_options(parser, SITE)
    return parser


def main(env: Environment) -> int:
    parser = build_parser(env)
    args = parser.parse()
    setup_logging(args, env)
    # --bids names scans by common.BIDS_MAP (in SITE), the one place to edit it.
    options = download_options(args, SITE, env)
    with demo_sandbox(args.demo) as demo:
        config = connection_settings(args, SITE, env, demo)
        wanted = Wanted(config.project, args.resource, args.subject, args.session, args.scan)

        def folder_of(session: Session, scan: Scan) -> Path:   # where the scan lands: see common.py
            return common.single_scan_folder(config.output_dir, scan)

        with XnatClient(config) as client:
            subjects = list_project(client, config.project)
            job = one_scan(client, subjects, wanted, folder_of)
            return download_jobs(client, config, [job], options, env.stdout)


if __name__ == "__main__":
    sys.exit(run(main))
