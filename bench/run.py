"""Benchmarks: our scripts against what users would use instead, on one sandbox, in one run.

Prints every figure as `NAME VALUE UNIT` on stdout as soon as it is measured, then a table of
targets (see the shared benchmarks.md); progress goes to stderr. Times are best of --runs, and a
run counts only if its files match the listing's MD5s. Absolute times on a shared machine are
noise: read the ratios.

Example:  python bench/run.py                      (everything, about 8 minutes on 2 cores)
          python bench/run.py --only download resume
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import harness
from bids_conversion import bench_bids
from harness import MiB, PYTHON, WAN, Report, Sandbox, Scale, at_least, at_most, note
from session_download import DEFAULT_WORKERS, SESSION_SCALE, bench_download, our_download

# A project of 200 subjects, 400 sessions and 4,000 scans.
LISTING_SCALE = Scale(subjects=200, sessions_per_subject=2, scans_per_session=10, files_per_scan=1,
                      file_size=1024)
MEMORY_FILE_SIZES = (64 * MiB, 512 * MiB)
MEMORY_LIMIT_MB = 100
MEMORY_GROWTH_TOLERANCE_MB = 5  # allocator noise; a buffered file would grow by hundreds
RESUME_LIMIT_SECONDS = 1.5
MB = 1_000_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--runs", type=int, default=3, help="best of this many timed runs (default 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    report = Report()
    started = time.perf_counter()
    with harness.scratch_folder(Path(tempfile.gettempdir()), "xnat-bench") as scratch:
        for name in args.only or list(BENCHMARKS):
            note(f"--- {name}")
            BENCHMARKS[name](report, scratch, args.runs)
    print()
    print(report.table())
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s, best of {args.runs}, "
          f"on {os.cpu_count()} cores")
    return 0 if all(item.met is not False for item in report.targets) else 1


# --- 2. resume no-op --------------------------------------------------------------------------

def bench_resume(report: Report, scratch: Path, runs: int) -> None:
    with Sandbox(scale=SESSION_SCALE) as sb:
        harness.warm_caches(sb)
        subject, session = harness.big_session(sb)
        listing = harness.list_session_files(sb, session.id)
        env = harness.client_environment(sb)
        harness.apply_profile(sb, WAN)
        with harness.scratch_folder(scratch, "resume") as output:
            command = our_download(subject.label, session.label, DEFAULT_WORKERS, output)
            first = harness.run_timed(command, env)
            if first.returncode != 0 or harness.check_files(output, listing):
                note(f"  the first download failed: {first.stderr.strip()[-300:]}")
                report.target("resume: data requests", "0", "first download failed", False)
                return
            times, file_requests, requests = [], [], []
            for round_number in range(1, runs + 1):
                sb.clear_log()
                outcome = harness.run_timed(command, env)
                file_requests.append(len(sb.file_requests()) + len(sb.zip_requests()))
                requests.append(len(sb.log))
                problem = "" if outcome.returncode == 0 else f"exit {outcome.returncode}"
                problem = problem or harness.check_files(output, listing)
                note(f"wan round {round_number} resume: {outcome.seconds:.2f} s, "
                     f"{file_requests[-1]} data requests{', ' + problem if problem else ''}")
                if not problem:
                    times.append(outcome.seconds)
    seconds = report.figure("resume_wan_seconds", min(times) if times else math.nan, "s")
    most_files = report.figure("resume_wan_data_requests", max(file_requests), "requests")
    report.figure("resume_wan_requests", max(requests), "requests")
    report.target(f"resume no-op ({len(listing)} files): data requests (files, zips)", "0", str(most_files),
                  most_files == 0)
    report.target("resume no-op: time (wan)", f"< {RESUME_LIMIT_SECONDS} s", f"{seconds:.2f} s",
                  at_most(seconds, RESUME_LIMIT_SECONDS))


# --- 3. memory --------------------------------------------------------------------------------

def bench_memory(report: Report, scratch: Path, runs: int) -> None:
    """Peak RSS of one download of a single big file, and of a 60 MiB scan as one zip, unpaced
    (the client's worst case)."""
    peaks: dict[str, float] = {}
    cases = [(f"{size // MiB}MiB_file", Scale(subjects=1, sessions_per_subject=1, scans_per_session=1,
                                               files_per_scan=1, file_size=size), [])
             for size in MEMORY_FILE_SIZES]
    cases.append(("60MiB_scan_by_zip", Scale(subjects=1, sessions_per_subject=1, scans_per_session=1,
                                             files_per_scan=60, file_size=MiB), ["--transfer", "zip"]))
    for label, scale, extra in cases:
        with Sandbox(scale=scale) as sb:
            harness.warm_caches(sb)
            subject, session = harness.big_session(sb)
            listing = harness.list_session_files(sb, session.id)
            env = harness.client_environment(sb)
            with harness.scratch_folder(scratch, "memory") as output:
                command = [PYTHON, str(harness.BENCH / "peak_rss.py"),
                           *our_download(subject.label, session.label, DEFAULT_WORKERS, output), *extra]
                outcome = harness.run_timed(command, env)
                problem = (f"exit {outcome.returncode}: {outcome.stderr.strip()[-300:]}"
                           if outcome.returncode else harness.check_files(output, listing))
                zips = len(sb.zip_requests())
        if problem or (extra and zips != 1):
            note(f"  {label} download not counted: {problem or f'{zips} zip requests'}")
            peaks[label] = math.nan
        else:
            note(f"{label}: {outcome.seconds:.1f} s")
            peaks[label] = int(outcome.stdout.split()[-1]) / MB
        report.figure(f"memory_peak_rss_{label}", peaks[label], "MB")
    small, large = (peaks[f"{size // MiB}MiB_file"] for size in MEMORY_FILE_SIZES)
    by_zip = peaks["60MiB_scan_by_zip"]
    growth = report.figure("memory_growth_64MiB_to_512MiB", large - small, "MB")
    report.target("memory: peak RSS, one 512 MiB file", f"<= {MEMORY_LIMIT_MB} MB", f"{large:.1f} MB",
                  at_most(large, MEMORY_LIMIT_MB))
    report.target("memory: growth 64 -> 512 MiB", f"none (<= {MEMORY_GROWTH_TOLERANCE_MB} MB)",
                  f"{growth:+.1f} MB", at_most(growth, MEMORY_GROWTH_TOLERANCE_MB))
    report.target("memory: peak RSS, a 60 MiB scan by zip", f"<= {MEMORY_LIMIT_MB} MB",
                  f"{by_zip:.1f} MB", at_most(by_zip, MEMORY_LIMIT_MB))


# --- 4. listing a big project -----------------------------------------------------------------

def bench_listing(report: Report, scratch: Path, runs: int) -> None:
    with Sandbox(scale=LISTING_SCALE) as sb:
        env = harness.client_environment(sb)
        expected_scans = sum(len(session.scans) for session in sb.catalog.sessions("BIG"))
        harness.apply_profile(sb, WAN)
        tools = {
            "ours": [PYTHON, "2_list_subjects.py", "--all", "--project", "BIG", "--csv"],
            "naive": [PYTHON, str(harness.BENCH / "naive_listing.py"), "--project", "BIG"],
        }
        times: dict[str, list[float]] = {name: [] for name in tools}
        requests: dict[str, tuple[int, int]] = {}
        for round_number in range(1, runs + 1):
            for name, command in tools.items():
                sb.clear_log()
                outcome = harness.run_timed(command, env)
                requests[name] = (len(sb.log), harness.requests_after_login(sb))
                scans = count_scan_rows(outcome.stdout)
                note(f"wan round {round_number} listing {name}: {outcome.seconds:.2f} s, "
                     f"{requests[name][0]} requests, {scans} scans")
                if outcome.returncode == 0 and scans == expected_scans:
                    times[name].append(outcome.seconds)
                else:
                    note(f"  not counted: exit {outcome.returncode}, {outcome.stderr.strip()[-300:]}")
    best = {name: min(values) if values else math.nan for name, values in times.items()}
    for name in tools:
        report.figure(f"listing_wan_{name}_seconds", best[name], "s")
        report.figure(f"listing_wan_{name}_requests", requests[name][0], "requests")
        report.figure(f"listing_wan_{name}_requests_after_login", requests[name][1], "requests")
    speedup = report.figure("listing_wan_ratio_naive_to_ours", best["naive"] / best["ours"], "x")
    after_login = requests["ours"][1]
    report.target(f"listing {expected_scans} scans: our requests after login", "<= 5", str(after_login),
                  after_login <= 5)
    report.target("listing: ours / naive walk speed (20 ms)", ">= 20 x", f"{speedup:.1f} x",
                  at_least(speedup, 20))


def count_scan_rows(csv_text: str) -> int:
    """Distinct (session, scan) rows of a CSV with a header; a short or doubled listing shows."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    distinct = {(row.get("session"), row.get("scan")) for row in rows}
    return len(rows) if len(distinct) == len(rows) else -1


# --- 5. start-up ------------------------------------------------------------------------------

def xnatpy_schema_requests() -> int:
    """Schema requests xnatpy's build_model makes: /xapi/schemas, then one per schema it lists.
    A stock XNAT 1.8 lists at least xnatpy's own fallback list, DEFAULT_SCHEMAS."""
    from xnat.constants import DEFAULT_SCHEMAS

    return 1 + len(DEFAULT_SCHEMAS)


def bench_startup(report: Report, scratch: Path, runs: int) -> None:
    with Sandbox() as sb:
        env = harness.client_environment(sb)
        project_count = len(harness.get_json(sb, "/data/projects?format=json")["ResultSet"]["Result"])
        harness.apply_profile(sb, WAN)
        probe = [PYTHON, str(harness.BENCH / "xnatpy_startup.py")]
        tools = {"ours": [PYTHON, "1_list_projects.py", "--json"], "xnatpy_no_model": probe}
        times: dict[str, list[float]] = {name: [] for name in tools}
        requests: dict[str, int] = {}
        for round_number in range(1, runs + 1):
            for name, command in tools.items():
                sb.clear_log()
                outcome = harness.run_timed(command, env)
                requests[name] = len(sb.log)
                listed = listed_projects(name, outcome.stdout)
                note(f"wan round {round_number} start-up {name}: {outcome.seconds:.2f} s, "
                     f"{requests[name]} requests, {listed} projects")
                if outcome.returncode == 0 and listed == project_count:
                    times[name].append(outcome.seconds)
        # The real thing: connect() building the model. On a server without XML schemas it fails.
        sb.clear_log()
        modelled = harness.run_timed(probe + ["--parse-model"], env)
        model_log = [f"{entry.method} {entry.path} {entry.status}" for entry in sb.log]
    best = {name: min(values) if values else math.nan for name, values in times.items()}
    report.figure("startup_wan_ours_seconds", best["ours"], "s")
    report.figure("startup_wan_ours_requests", requests["ours"], "requests")
    report.figure("startup_wan_xnatpy_no_model_seconds", best["xnatpy_no_model"], "s")
    report.figure("startup_wan_xnatpy_no_model_requests", requests["xnatpy_no_model"], "requests")
    if modelled.returncode == 0:
        model_requests, model_seconds, how = len(model_log), modelled.seconds, "measured"
    else:
        last_line = (modelled.stderr.strip().splitlines() or ["?"])[-1]
        note(f"xnat.connect() with the model failed here ({last_line}); its requests: {model_log}")
        # Counted: what the no-model probe made (connect, version, listing, logout) plus the schema
        # requests; its time adds only their latency, not fetching or parsing the XSDs.
        model_requests = requests["xnatpy_no_model"] + xnatpy_schema_requests()
        model_seconds = best["xnatpy_no_model"] + xnatpy_schema_requests() * WAN.latency
        how = "counted"
    report.figure("startup_wan_xnatpy_model_seconds", model_seconds, "s")
    report.figure("startup_wan_xnatpy_model_requests", model_requests, "requests")
    report.figure("startup_wan_ratio_xnatpy_model_to_ours_requests", model_requests / requests["ours"], "x")
    report.figure("startup_wan_ratio_xnatpy_model_to_ours_time", model_seconds / best["ours"], "x")
    report.target("start-up: our requests vs xnatpy with its model", f"fewer than {model_requests} ({how})",
                  str(requests["ours"]), requests["ours"] < model_requests)
    report.target("start-up: our time vs xnatpy with its model", f"under {model_seconds:.2f} s ({how})",
                  f"{best['ours']:.2f} s", at_most(best["ours"], model_seconds))


def listed_projects(tool: str, stdout: str) -> int:
    """How many projects a start-up client printed; -1 if its output is not what it should be."""
    try:
        if tool == "ours":
            return len(json.loads(stdout))
        return int(stdout.split(":")[1].split()[0])
    except (ValueError, IndexError):
        return -1


BENCHMARKS: dict[str, Callable[[Report, Path, int], None]] = {
    "download": bench_download,
    "resume": bench_resume,
    "memory": bench_memory,
    "listing": bench_listing,
    "startup": bench_startup,
    "bids": bench_bids,
}

if __name__ == "__main__":
    sys.exit(main())
