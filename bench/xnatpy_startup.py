"""Start-up of a plain xnatpy client, from launch to its first listing (the projects).

By default it connects as our scripts do (no data model) and then asks what building the model
asks first, the server's version; --parse-model lets `xnat.connect()` build the model, which
needs the server's XML schemas (`/xapi/schemas/...`). Credentials come from XNAT_HOST,
XNAT_USER and XNAT_PASS.

Example:  python bench/xnatpy_startup.py --parse-model
"""

from __future__ import annotations

import argparse
import os
import sys

import xnat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parse-model", action="store_true", help="let connect() build the data model")
    args = parser.parse_args(argv)
    session = xnat.connect(os.environ["XNAT_HOST"], user=os.environ["XNAT_USER"],
                           password=os.environ["XNAT_PASS"], no_parse_model=not args.parse_model)
    try:
        version = session.xnat_version  # with the model already asked for (and cached) by connect()
        projects = session.get_json("/data/projects")["ResultSet"]["Result"]
        print(f"XNAT {version}: {len(projects)} projects")
    finally:
        session.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
