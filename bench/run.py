"""Benchmarks: our scripts against what users would use instead, on one sandbox, in one run.

Prints every figure as `NAME VALUE UNIT` on stdout as soon as it is measured, then a table of
targets (see the shared benchmarks.md); progress goes to stderr. Times are best of --runs, and a
run counts only if its files match the listing's MD5s. Absolute times on a shared machine are
noise: read the ratios.

Example:  python bench/run.py                      (everything, about 10 minutes on 2 cores)
          python bench/run.py --only download resume
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import harness
from harness import LAN, MiB, PYTHON, WAN, Profile, Report, Sandbox, Scale, at_least, at_most, note

# Issue 6's session: 8 scans x 50 files x 256 KiB, about 100 MiB.
SESSION_SCALE = Scale(subjects=1, sessions_per_subject=1, scans_per_session=8, files_per_scan=50,
                      file_size=256 * 1024)
# The session shapes of the shared benchmarks.md: even, uneven (one scan holds 302 of 400 files,
# a long fMRI run beside short anatomical scans) and small (per-file round trips dominate).
SHAPES = {
    "even": SESSION_SCALE,
    "uneven": Scale(subjects=1, sessions_per_subject=1, scans_per_session=8, files_per_scan=14,
                    file_size=256 * 1024, first_scan_files=302),
    "small": Scale(subjects=1, sessions_per_subject=1, scans_per_session=8, files_per_scan=250,
                   file_size=32 * 1024),
}
WORKER_COUNTS = (1, 4, 8, 16)
DEFAULT_WORKERS = 8  # common.WORKERS, the figure the targets are about
CURL_PARALLEL = 8
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


# --- 1. session download ----------------------------------------------------------------------

def our_download(subject: str, session: str, workers: int, output: Path) -> list[str]:
    return [PYTHON, "4_download_session.py", "--project", "BIG", "--subject", subject, "--session", session,
            "--workers", str(workers), "--output-dir", str(output), "-q"]


def template_download(subject: str, session: str, output: Path) -> list[str]:
    return [PYTHON, str(harness.BENCH / "template_download.py"), "--project", "BIG", "--subject", subject,
            "--session", session, "--output-dir", str(output)]


def curl_config(sb: Sandbox, config: Path, transfers: list[tuple[str, Path]]) -> list[str]:
    """curl fetching (URL, output) pairs 8 at once; the secret goes in a 0600 config file, never in
    argv. --parallel-immediate: without it curl opens its second connection only when the first
    transfer ends."""
    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["parallel", "parallel-immediate", f"parallel-max = {CURL_PARALLEL}", "create-dirs",
             "silent", "show-error", "fail", 'noproxy = "*"', f"user = {quoted(f'{sb.user}:{sb.password}')}"]
    for url, output in transfers:
        lines += [f"url = {quoted(url)}", f"output = {quoted(str(output))}"]
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return ["curl", "--config", str(config)]


def curl_download(sb: Sandbox, listing: list[harness.ListedFile], output: Path, config: Path) -> list[str]:
    """curl on the file URLs of the listing."""
    return curl_config(sb, config, [(file.url, output / file.scan_id / file.name) for file in listing])


def curl_zips(sb: Sandbox, session, output: Path, config: Path) -> list[str]:
    """curl on one zip URL per scan, then unzip each: a power user's fastest way (verifies nothing)."""
    zips = [(f"{sb.url}/data/experiments/{session.id}/scans/{scan.id}/resources/DICOM/files?format=zip",
             output / f"{scan.id}.zip") for scan in session.scans]
    fetch = curl_config(sb, config, zips)
    unzip = " && ".join(f"unzip -q -o {shlex.quote(str(path))} -d {shlex.quote(str(output / 'unzipped'))} "
                        f"&& rm {shlex.quote(str(path))}" for _, path in zips)
    return ["sh", "-c", f"{shlex.join(fetch)} && {unzip}"]


def bench_download(report: Report, scratch: Path, runs: int) -> None:
    for shape, scale in SHAPES.items():
        bench_download_shape(report, scratch, runs, shape, scale)


def bench_download_shape(report: Report, scratch: Path, runs: int, shape: str, scale: Scale) -> None:
    with Sandbox(scale=scale) as sb:
        harness.warm_caches(sb)
        subject, session = harness.big_session(sb)
        listing = harness.list_session_files(sb, session.id)
        mebibytes = sum(file.size for file in listing) / MiB
        note(f"{shape} session {session.label}: {len(listing)} files, {mebibytes:.1f} MiB in "
             f"{len(session.scans)} scans")
        env = harness.client_environment(sb)
        config = scratch / "curl.conf"
        worker_counts = WORKER_COUNTS if shape == "even" else (DEFAULT_WORKERS,)
        tools: dict[str, Callable[[Path], list[str]]] = {
            f"ours_w{workers}": (lambda output, workers=workers:
                                 our_download(subject.label, session.label, workers, output))
            for workers in worker_counts}
        tools["curl"] = lambda output: curl_download(sb, listing, output, config)
        tools["curl_zips"] = lambda output: curl_zips(sb, session, output, config)
        tools["template"] = lambda output: template_download(subject.label, session.label, output)

        for profile in (WAN, LAN):
            harness.apply_profile(sb, profile)
            times: dict[str, list[float]] = {name: [] for name in tools}
            data_requests: dict[str, int] = {}
            # Rounds interleave the tools, so a slow spell on the machine hits all of them alike.
            for round_number in range(1, runs + 1):
                for name, command in tools.items():
                    sb.clear_log()
                    seconds = timed_download(name, command, env, listing, scratch)
                    data_requests[name] = len(sb.file_requests()) + len(sb.zip_requests())
                    note(f"{shape} {profile.name} round {round_number} {name}: "
                         f"{'not counted' if seconds is None else f'{seconds:.2f} s'}, "
                         f"{data_requests[name]} data requests")
                    if seconds is not None:
                        times[name].append(seconds)
            best = {name: min(values) if values else math.nan for name, values in times.items()}
            report_download(report, profile, shape, best, mebibytes, data_requests, worker_counts)
            if shape == "even":
                # What ours spends before its first file (start-up, login, listings): --dry-run stops there.
                setup = harness.best_of(runs, lambda: timed_dry_run(subject.label, session.label, env, scratch))
                report.figure(f"download_{profile.name}_ours_setup_seconds", setup, "s")
        config.unlink(missing_ok=True)


def timed_download(name: str, command: Callable[[Path], list[str]], env: dict[str, str],
                   listing: list[harness.ListedFile], scratch: Path) -> float | None:
    """One run into a fresh folder; its time counts only if every file's MD5 is right."""
    with harness.scratch_folder(scratch, name) as output:
        outcome = harness.run_timed(command(output), env)
        if outcome.returncode != 0:
            note(f"  {name} failed (exit {outcome.returncode}): {outcome.stderr.strip()[-300:]}")
            return None
        problem = harness.check_files(output, listing)
        if problem:
            note(f"  {name} not counted: {problem}")
            return None
        return outcome.seconds


def timed_dry_run(subject: str, session: str, env: dict[str, str], scratch: Path) -> float | None:
    with harness.scratch_folder(scratch, "dry-run") as output:
        outcome = harness.run_timed(our_download(subject, session, DEFAULT_WORKERS, output) + ["--dry-run"], env)
        return outcome.seconds if outcome.returncode == 0 else None


def report_download(report: Report, profile: Profile, shape: str, best: dict[str, float],
                    mebibytes: float, data_requests: dict[str, int], worker_counts: tuple[int, ...]) -> None:
    prefix = f"download_{profile.name}_{shape}"
    for name, seconds in best.items():
        report.figure(f"{prefix}_{name}_seconds", seconds, "s")
        report.figure(f"{prefix}_{name}_throughput", mebibytes / seconds, "MiB/s")
        report.figure(f"{prefix}_{name}_data_requests", data_requests.get(name, math.nan), "requests")
    # Throughput ratios: above 1 means ours is faster.
    for workers in worker_counts:
        ours = best[f"ours_w{workers}"]
        for peer in ("curl", "curl_zips", "template"):
            report.figure(f"{prefix}_ratio_ours_w{workers}_to_{peer}", best[peer] / ours, "x")
    ours = best[f"ours_w{DEFAULT_WORKERS}"]
    to_curl, to_zips, to_template = best["curl"] / ours, best["curl_zips"] / ours, best["template"] / ours
    better_curl = min(best["curl"], best["curl_zips"]) / ours
    what = f"{profile.name} {shape}: ours ({DEFAULT_WORKERS} workers)"
    if profile is WAN and shape == "even":
        report.target(f"{what} / curl per-file", ">= 1.2 x", f"{to_curl:.2f} x", at_least(to_curl, 1.2))
        report.target(f"{what} / curl zips", ">= 0.85 x", f"{to_zips:.2f} x", at_least(to_zips, 0.85))
        report.target(f"{what} / template way", ">= 6 x", f"{to_template:.2f} x", at_least(to_template, 6))
    elif profile is WAN:
        bound = 0.85 if shape == "uneven" else 0.75
        report.target(f"{what} / better curl way", f">= {bound} x", f"{better_curl:.2f} x",
                      at_least(better_curl, bound))
    else:
        report.target(f"{what} / template way", ">= 1 x", f"{to_template:.2f} x", at_least(to_template, 1.0))
        if shape in ("even", "small"):
            report.target(f"{what} / better curl way", ">= 0.35 x", f"{better_curl:.2f} x",
                          at_least(better_curl, 0.35))


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


# --- 6. --bids -----------------------------------------------------------------------------------

# 8 scans of 128 real DICOM slices, 128 x 128 pixels: 1,024 slices, 33 MiB.
BIDS_SCALE = Scale(subjects=1, sessions_per_subject=1, scans_per_session=8, files_per_scan=128,
                   file_size=0, dicom_matrix=128)
BIDS_TARGET = 0.8
DCM2NIIX_FLAGS = ["-b", "y", "-z", "y", "-1"]   # what --bids runs: sidecars, gzip at its fastest
# A dcm2bids configuration that gives each of the 8 scan types a name, so that all 8 convert.
BIDS_CONFIG = {"descriptions": [
    {"datatype": datatype, "suffix": suffix, "criteria": {"SeriesDescription": description},
     **({"custom_entities": entities} if entities else {})}
    for description, datatype, suffix, entities in (
        ("t1_mprage_sag", "anat", "T1w", ""), ("t2_space", "anat", "T2w", ""),
        ("bold_rest_ap", "func", "bold", "task-rest"), ("dwi_64dir", "dwi", "dwi", ""),
        ("gre_field_mapping", "fmap", "magnitude1", ""), ("t2_flair_tra", "anat", "FLAIR", ""),
        ("swi_tra", "anat", "T2starw", "acq-swi"), ("pcasl", "perf", "asl", ""))]}


def bench_bids(report: Report, scratch: Path, runs: int) -> None:
    """--bids against the same download followed by dcm2niix on each scan folder in turn (wan)."""
    from xnat_download.bids import find_dcm2niix

    dcm2niix = find_dcm2niix()
    config = scratch / "dcm2bids_config.json"
    config.write_text(json.dumps(BIDS_CONFIG))
    with Sandbox(scale=BIDS_SCALE) as sb:
        harness.warm_caches(sb)
        subject, session = harness.big_session(sb)
        listing = harness.list_session_files(sb, session.id)
        env = harness.client_environment(sb)
        harness.apply_profile(sb, WAN)
        note(f"bids session {session.label}: {len(listing)} slices in {len(session.scans)} scans")

        def ours() -> float | None:
            with harness.scratch_folder(scratch, "bids") as output:
                command = our_download(subject.label, session.label, DEFAULT_WORKERS, output / "data")
                outcome = harness.run_timed(command + ["--bids", str(output / "bids"), "--bids-config",
                                                       str(config)], env)
                images = list((output / "bids").rglob("*.nii.gz"))
                if outcome.returncode or harness.check_files(output / "data", listing) or len(images) != 8:
                    note(f"  --bids not counted: exit {outcome.returncode}, {len(images)} images "
                         f"{outcome.stderr.strip()[-300:]}")
                    return None
                return outcome.seconds

        def download_then_convert() -> float | None:
            with harness.scratch_folder(scratch, "sequence") as output:
                outcome = harness.run_timed(
                    our_download(subject.label, session.label, DEFAULT_WORKERS, output / "data"), env)
                if outcome.returncode or harness.check_files(output / "data", listing):
                    return None
                seconds = outcome.seconds
                for number, folder in enumerate(sorted((output / "data").glob("*/scan-*"))):
                    target = output / "nifti" / str(number)
                    target.mkdir(parents=True)
                    step = harness.run_timed([dcm2niix, *DCM2NIIX_FLAGS, "-o", str(target), str(folder)], env)
                    if step.returncode:
                        return None
                    seconds += step.seconds
                return seconds

        times: dict[str, list[float]] = {"bids": [], "sequence": []}
        for round_number in range(1, runs + 1):
            for name, attempt in (("bids", ours), ("sequence", download_then_convert)):
                seconds = attempt()
                note(f"bids wan round {round_number} {name}: "
                     f"{'not counted' if seconds is None else f'{seconds:.2f} s'}")
                if seconds is not None:
                    times[name].append(seconds)
    best = {name: min(values) if values else math.nan for name, values in times.items()}
    report.figure("bids_wan_ours_seconds", best["bids"], "s")
    report.figure("bids_wan_download_then_dcm2niix_seconds", best["sequence"], "s")
    ratio = report.figure("bids_wan_ratio_ours_to_sequence", best["bids"] / best["sequence"], "x")
    report.target("bids (wan, 8 scans, 1,024 slices): ours / download then dcm2niix",
                  f"<= {BIDS_TARGET} x", f"{ratio:.2f} x", at_most(ratio, BIDS_TARGET))


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
