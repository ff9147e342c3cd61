"""Run a command and print its peak resident memory in bytes (the largest of its processes).

A fresh wrapper per measurement, because RUSAGE_CHILDREN keeps the maximum over every child a
process ever waited for: in the benchmark runner it would still remember earlier clients.

Example:  python bench/peak_rss.py python 4_download_session.py ...
"""

from __future__ import annotations

import resource
import subprocess
import sys


def main(argv: list[str]) -> int:
    completed = subprocess.run(argv, stdout=subprocess.DEVNULL)
    # Linux reports ru_maxrss in KiB.
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
