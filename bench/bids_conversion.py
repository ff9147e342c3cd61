"""Benchmark 6, --bids: the download with its conversions overlapped, against the same download
followed by dcm2niix on each scan folder in turn (wan; see run.py)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import harness
from harness import WAN, Report, Sandbox, Scale, at_most, note
from session_download import DEFAULT_WORKERS, our_download

# 8 scans of 128 real DICOM slices, 128 x 128 pixels: 1,024 slices, 33 MiB.
BIDS_SCALE = Scale(subjects=1, sessions_per_subject=1, scans_per_session=8, files_per_scan=128,
                   file_size=0, dicom_matrix=128)
BIDS_TARGET = 0.8
DCM2NIIX_FLAGS = ["-b", "y", "-ba", "y", "-z", "y", "-1"]   # what --bids runs: sidecars, gzip at its fastest
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
    from xnat_download.config import dcm2niix_setting

    dcm2niix = find_dcm2niix(dcm2niix_setting(os.environ))   # the one --bids runs, $DCM2NIIX honoured
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
