"""Show a subject's sessions and scans, or (--all) every session of the project.

By default the first subject (natural order: sub-2 before sub-10) is shown in detail: each
session with its date and modality, and under it each scan with its type, series description,
quality, and the file count and size of its DICOM resource.

Example:  python 2_list_subjects.py --subject sub-01
          python 2_list_subjects.py --all --csv > scans.csv
          python 2_list_subjects.py --demo
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import TextIO

import common
from xnat_download.catalog import Subject, count_files, find_subject, list_project, natural_key
from xnat_download.cli import Environment, base_parser, connection_settings, print_columns, run, setup_logging
from xnat_download.config import SiteDefaults, demo_sandbox
from xnat_download.connection import XnatClient
from xnat_download.errors import ExitStatus
from xnat_download.output import human_size

SITE = SiteDefaults.from_module(common)   # the server, project and other defaults: edit common.py
SUBJECT = None      # a subject label or ID; None shows the first one


def build_parser(env: Environment) -> argparse.ArgumentParser:
    parser = base_parser(__doc__, SITE, env)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--subject", default=SUBJECT, metavar="LABEL", help="the subject to show")
    which.add_argument("--all", action="store_true", help="every subject: one line per session")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="nested JSON: subject, sessions, scans")
    output.add_argument("--csv", action="store_true", help="CSV, one row per scan")
    return parser


def main(env: Environment) -> int:
    args = build_parser(env).parse()
    setup_logging(args, env)
    with demo_sandbox(args.demo) as demo:
        config = connection_settings(args, SITE, env, demo)
        with XnatClient(config) as client:
            subjects = list_project(client, config.project)
            if not args.all:
                subject = find_subject(subjects, args.subject, config.project)
                # File counts cost one request per session: only for the subject shown in detail.
                for session in subject.sessions:
                    count_files(client, session, SITE.resource)
                subjects = [subject]
    if args.json:
        json.dump([subject_as_dict(subject) for subject in subjects], env.stdout, indent=2)
        print(file=env.stdout)
    elif args.csv:
        write_csv(subjects, env.stdout)
    elif args.all:
        print_sessions(subjects, env.stdout)
    else:
        print_subject(subjects[0], config.project, env.stdout)
    return ExitStatus.OK


def subject_as_dict(subject: Subject) -> dict:
    return {"id": subject.id, "label": subject.label, "sessions": [
        {"id": session.id, "label": session.label, "date": session.date,
         "modality": session.modality, "scans": [
             {"id": scan.id, "type": scan.type, "series_description": scan.series_description,
              "quality": scan.quality, "files": scan.files, "bytes": scan.bytes}
             for scan in session.scans]}
        for session in subject.sessions]}


def write_csv(subjects: list[Subject], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["subject", "session", "scan", "type", "series_description", "quality",
                     "files", "bytes"])
    for subject in subjects:
        for session in subject.sessions:
            for scan in session.scans:
                writer.writerow([subject.label, session.label, scan.id, scan.type,
                                 scan.series_description, scan.quality,
                                 "" if scan.files is None else scan.files,
                                 "" if scan.bytes is None else scan.bytes])


def print_subject(subject: Subject, project: str, out: TextIO) -> None:
    print(f"Subject {subject.label} ({subject.id}) in project {project}: "
          f"{len(subject.sessions)} session(s)", file=out)
    for session in subject.sessions:
        print(f"\nSession {session.label} ({session.id})  date {session.date or '-'}  "
              f"modality {session.modality or '-'}", file=out)
        rows = [["SCAN", "TYPE", "SERIES DESCRIPTION", "QUALITY", "FILES", "SIZE"]]
        rows += [[scan.id, scan.type, scan.series_description, scan.quality,
                  str(scan.files or 0), human_size(scan.bytes) if scan.files else "-"]
                 for scan in session.scans]
        print_columns(rows, out, indent="  ")


def print_sessions(subjects: list[Subject], out: TextIO) -> None:
    rows = [["SUBJECT", "SESSION", "DATE", "MODALITY", "SCANS", "TYPES"]]
    for subject in subjects:
        for session in subject.sessions:
            types = sorted({scan.type for scan in session.scans if scan.type}, key=natural_key)
            rows.append([subject.label, session.label, session.date, session.modality,
                         str(len(session.scans)), " ".join(types)])
        if not subject.sessions:
            rows.append([subject.label, "-", "", "", "0", ""])
    print_columns(rows, out)


if __name__ == "__main__":
    sys.exit(run(main))
