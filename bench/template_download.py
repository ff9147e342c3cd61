"""The baseline: a session downloaded the way the original template scripts did it.

Scan after scan, the scan's DICOM resource comes as one zip (`.../files?format=zip`), is saved,
unzipped, and only its `.dcm` files are kept in a folder per scan. One connection, one request at
a time, no verification: faithful to that pattern, not improved. Credentials come from
XNAT_HOST, XNAT_USER and XNAT_PASS.

Example:  python bench/template_download.py --project BIG --subject sub-1 --session sub-1_ses-1 --output-dir out
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import requests

CHUNK_SIZE = 1024 * 1024


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--resource", default="DICOM")
    parser.add_argument("--output-dir", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = os.environ["XNAT_HOST"].rstrip("/")
    http = requests.Session()
    http.auth = (os.environ["XNAT_USER"], os.environ["XNAT_PASS"])
    session_uri = (f"{server}/data/projects/{args.project}/subjects/{args.subject}"
                   f"/experiments/{args.session}")
    listing = http.get(f"{session_uri}/scans", params={"format": "json"}, timeout=60)
    listing.raise_for_status()
    scans = listing.json()["ResultSet"]["Result"]
    session_folder = args.output_dir / args.session
    for scan in scans:
        scan_folder = session_folder / f"{scan['ID']}-{scan['type']}"
        download_scan_zip(http, f"{session_uri}/scans/{scan['ID']}/resources/{args.resource}/files",
                          scan_folder)
    return 0


def download_scan_zip(http: requests.Session, files_uri: str, scan_folder: Path) -> None:
    """Save the resource's zip, unpack it next to it, keep the .dcm files, drop the rest."""
    scan_folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scan_folder.parent) as unpack_dir:
        zip_path = Path(unpack_dir) / "scan.zip"
        with http.get(files_uri, params={"format": "zip"}, stream=True, timeout=60) as response:
            response.raise_for_status()
            with open(zip_path, "wb") as handle:
                for chunk in response.iter_content(CHUNK_SIZE):
                    handle.write(chunk)
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(unpack_dir)
        for dicom in Path(unpack_dir).rglob("*.dcm"):
            shutil.move(str(dicom), scan_folder / dicom.name)


if __name__ == "__main__":
    sys.exit(main())
