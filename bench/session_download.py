"""Benchmark 1, session download: ours against curl per file, curl on per-scan zips, and the
template scripts' way, on the even, uneven and small shapes, wan and lan (see run.py)."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Callable
from pathlib import Path

import harness
from harness import LAN, MiB, PYTHON, WAN, Profile, Report, Sandbox, Scale, at_least, note

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
