"""List the XNAT projects you can access: ID, name and description, sorted by ID.

Example:  python 1_list_projects.py            (a table)
          python 1_list_projects.py --csv > projects.csv
          python 1_list_projects.py --demo     (the bundled sandbox, no account needed)
"""
from __future__ import annotations

import argparse
import csv
import json
import sys

import common
from xnat_download.catalog import list_projects
from xnat_download.cli import (Environment, base_parser, connection_settings, print_columns, run,
                               setup_logging, terminal_width)
from xnat_download.config import SiteDefaults, demo_sandbox
from xnat_download.connection import XnatClient
from xnat_download.errors import ExitStatus
from xnat_download.output import note

SITE = SiteDefaults.from_module(common)   # the server, project and other defaults: edit common.py


def build_parser(env: Environment) -> argparse.ArgumentParser:
    parser = base_parser(__doc__, SITE, env)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print a JSON array")
    output.add_argument("--csv", action="store_true", help="print CSV with a header row")
    return parser


def main(env: Environment) -> int:
    args = build_parser(env).parse()
    setup_logging(args, env)
    with demo_sandbox(args.demo) as demo:
        config = connection_settings(args, SITE, env, demo)
        with XnatClient(config) as client:
            rows = list_projects(client)
    projects = [{"id": row.get("ID", ""), "name": row.get("name", ""),
                 "description": " ".join(row.get("description", "").split()),
                 "secondary_id": row.get("secondary_ID", ""),
                 "pi": " ".join(filter(None, [row.get("pi_firstname", ""), row.get("pi_lastname", "")]))}
                for row in rows]
    if args.json:
        json.dump(projects, env.stdout, indent=2)
        print(file=env.stdout)
    elif args.csv:
        writer = csv.DictWriter(env.stdout, fieldnames=["id", "name", "description", "secondary_id", "pi"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(projects)
    else:
        print_table(projects, env)
    return ExitStatus.OK


def print_table(projects: list[dict], env: Environment) -> None:
    if not projects:
        note("no projects are visible to this user")
        return
    rows = [["ID", "NAME", "DESCRIPTION"]] + [[p["id"], p["name"], p["description"]] for p in projects]
    # Cut long descriptions to the terminal's width only when a person is reading.
    width = terminal_width(env) if env.stdout_isatty else None
    print_columns(rows, env.stdout, width=width)


if __name__ == "__main__":
    sys.exit(run(main))
