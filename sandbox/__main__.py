"""Serve the sandbox XNAT on this machine until Ctrl-C.

Example: python -m sandbox --port 8080 --prefix /xnat --latency-ms 20 --pace-kibps 10240

It serves the demo projects (DEMO, OPEN, PRIVATE) to the user "demo" with the password
"demo-password"; the alias token 5a9d6e1c-0d2b-4c5e-9f3a-7b8c9d0e1f2a with the secret
"demo-alias-secret" logs in as the same user. Fault options make the first N matching requests
misbehave (N = -1: every one); by default they match single-file downloads only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from types import FrameType
from typing import TextIO

from .demo_data import Scale
from .faults import LISTING_KINDS, Faults
from .server import LogEntry, Sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    serving = parser.add_argument_group("serving")
    serving.add_argument("--host", metavar="ADDRESS", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serving.add_argument("--port", metavar="PORT", type=int, default=0, help="port to listen on (default: a free one)")
    serving.add_argument("--prefix", metavar="PATH", default="", help="site path prefix, for example /xnat")
    serving.add_argument("--scale", nargs=5, type=int, metavar=("SUBJECTS", "SESSIONS", "SCANS", "FILES", "BYTES"),
                         help="add project BIG: subjects, sessions per subject, scans per session, "
                              "files per scan, bytes per file")
    serving.add_argument("--hostile", action="store_true", help="add project HOSTILE with dangerous names")
    serving.add_argument("--vendor", action="store_true",
                         help="add project VENDOR: real GE, Siemens and Philips QA DICOM (tests/data)")
    serving.add_argument("--dicom-tree", metavar="DIR",
                         help="add a project per folder of DIR (a folder or a .tar.xz of one), laid out as "
                              "<PROJECT>/<subject>/<session>/<series folder>/<DICOM files>")
    serving.add_argument("--ignore-columns", action="store_true",
                         help="ignore columns= on /data/experiments, as some servers do")
    serving.add_argument("--tls-cert", metavar="FILE", help="serve https with this certificate (PEM)")
    serving.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    serving.add_argument("--log", metavar="FILE", help="append one JSON line per request to FILE")

    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency-ms", metavar="MS", type=float, default=0, help="delay added before every answer")
    faults.add_argument("--pace-kibps", metavar="KIBPS", type=float, default=0,
                        help="cap every response body at this many KiB/s (the WAN model)")
    faults.add_argument("--match", metavar="TEXT", default=Faults.match,
                        help="which requests count-based faults hit: a substring of path and query "
                             "(default: single-file downloads)")
    faults.add_argument("--fail-status", type=int, choices=(500, 502, 503, 504), help="answer with this status")
    faults.add_argument("--fail-count", metavar="N", type=int, default=-1, help="... for this many requests (default: all)")
    faults.add_argument("--fail-rate", metavar="P", type=float, default=1.0, help="... each with this probability")
    faults.add_argument("--throttle-count", metavar="N", type=int, default=0, help="answer 429 Too Many Requests")
    faults.add_argument("--retry-after", metavar="SECONDS", type=float, default=1, help="Retry-After seconds sent with 429")
    faults.add_argument("--reset-count", metavar="N", type=int, default=0, help="reset the connection halfway through")
    faults.add_argument("--short-count", metavar="N", type=int, default=0, help="send half the body, then close")
    faults.add_argument("--corrupt-count", metavar="N", type=int, default=0, help="flip some bytes of the body")
    faults.add_argument("--stall-count", metavar="N", type=int, default=0, help="stop sending halfway for a while")
    faults.add_argument("--stall-seconds", metavar="SECONDS", type=float, default=30.0, help="how long a stall lasts")
    faults.add_argument("--expire-after", metavar="N", type=int, help="end every server session after N cookie requests")
    faults.add_argument("--listing", choices=[kind for kind in LISTING_KINDS if kind],
                        help="spoil JSON listings: an HTML page, an empty body, cut JSON, or no ResultSet")
    faults.add_argument("--listing-count", metavar="N", type=int, default=-1, help="... this many of them (default: all)")
    faults.add_argument("--redirect-count", metavar="N", type=int, default=0, help="answer 302 to the login page")
    faults.add_argument("--redirect-to", metavar="URL", default="", help="... or to this server, same path")
    faults.add_argument("--overlong-count", metavar="N", type=int, default=0,
                        help="a body, or a zip's first entry, runs on past its listed size")
    faults.add_argument("--endless-count", metavar="N", type=int, default=0,
                        help="a body chunked without end; a zip led by an unlisted entry without end")
    faults.add_argument("--bomb-count", metavar="N", type=int, default=0,
                        help="a zip's first entry deflated from far more than its listed size")
    faults.add_argument("--missing-count", metavar="N", type=int, default=0, help="answer 404 for files that are listed")
    faults.add_argument("--wrong-size", action="store_true", help="files listings report one byte too many")
    faults.add_argument("--no-digest", action="store_true", help="files listings give no MD5 digests")
    return parser


def faults_from(options: argparse.Namespace) -> Faults:
    return Faults(
        latency=options.latency_ms / 1000, pace=options.pace_kibps * 1024, match=options.match,
        status=options.fail_status or 0, status_count=options.fail_count, status_rate=options.fail_rate,
        throttle_count=options.throttle_count, retry_after=options.retry_after,
        reset_count=options.reset_count, short_count=options.short_count, corrupt_count=options.corrupt_count,
        stall_count=options.stall_count, stall_seconds=options.stall_seconds, expire_after=options.expire_after,
        listing=options.listing or "", listing_count=options.listing_count,
        redirect_count=options.redirect_count, missing_count=options.missing_count, wrong_size=options.wrong_size,
        no_digest=options.no_digest, redirect_to=options.redirect_to, overlong_count=options.overlong_count,
        endless_count=options.endless_count, bomb_count=options.bomb_count)


def json_lines_writer(stream: TextIO) -> Callable[[LogEntry], None]:
    lock = threading.Lock()

    def write(entry: LogEntry) -> None:
        with lock:
            stream.write(json.dumps(asdict(entry)) + "\n")
            stream.flush()
    return write


def stop_quietly(signal_number: int, frame: FrameType | None) -> None:
    """SIGTERM ends the server the same quiet way as Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if bool(options.tls_cert) != bool(options.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if options.dicom_tree is not None and not (os.path.isdir(options.dicom_tree) or
                                               options.dicom_tree.endswith(".tar.xz") and
                                               os.path.isfile(options.dicom_tree)):
        parser.error(f"--dicom-tree: no such folder or .tar.xz archive: {options.dicom_tree}")
    scale = Scale(*options.scale) if options.scale else None
    tls = (options.tls_cert, options.tls_key) if options.tls_cert else None
    sandbox = Sandbox(scale=scale, prefix=options.prefix, tls=tls, hostile=options.hostile,
                      vendor=options.vendor, dicom_tree=options.dicom_tree, ignore_columns=options.ignore_columns, host=options.host, port=options.port)
    sandbox.faults = faults_from(options)
    sandbox.keep_log = False  # a long-running server must not grow; --log writes entries out instead
    log_file = open(options.log, "a", encoding="utf-8") if options.log else None
    if log_file is not None:
        sandbox.log_listeners.append(json_lines_writer(log_file))

    signal.signal(signal.SIGTERM, stop_quietly)
    try:
        sandbox.start()
    except OSError as problem:
        print(f"python -m sandbox: error: cannot listen on {options.host}:{options.port}: {problem.strerror}",
              file=sys.stderr)
        return 1
    print(f"Sandbox XNAT serving at {sandbox.url}  user: {sandbox.user}  password: {sandbox.password}",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        if log_file is not None:
            log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
