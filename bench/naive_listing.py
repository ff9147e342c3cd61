"""The baseline for listing a project: walk it the way the object model does, one request per
subject (its sessions) and one per session (its scans). Prints one CSV row per scan.

Example:  python bench/naive_listing.py --project BIG > scans.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

import requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", required=True)
    args = parser.parse_args(argv)
    server = os.environ["XNAT_HOST"].rstrip("/")
    http = requests.Session()
    http.auth = (os.environ["XNAT_USER"], os.environ["XNAT_PASS"])

    def rows(path: str) -> list[dict]:
        response = http.get(server + path, params={"format": "json"}, timeout=60)
        response.raise_for_status()
        return response.json()["ResultSet"]["Result"]

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["subject", "session", "scan", "type", "series_description", "quality"])
    project_uri = f"/data/projects/{args.project}"
    for subject in rows(f"{project_uri}/subjects"):
        subject_uri = f"{project_uri}/subjects/{subject['ID']}"
        for session in rows(f"{subject_uri}/experiments"):
            for scan in rows(f"{subject_uri}/experiments/{session['ID']}/scans"):
                writer.writerow([subject["label"], session["label"], scan["ID"], scan["type"],
                                 scan["series_description"], scan["quality"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
