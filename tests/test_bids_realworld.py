"""--bids with no configuration on real sessions of the kinds that broke it (issue 24): the sandbox
serves tests/data/realworld_dicom.tar.xz as project REALWORLD (what each series is:
tests/data/README.md), and 4_download_session.py --all-sessions --bids runs on it as a lab would.

The expected names are what a careful person writes by hand, decided from the DICOM headers,
dcm2niix's sidecars and the source repositories' documentation (not from this tool's output). For
the ReproIn-named series they are the entities heudiconv's reproin heuristic gives: heudiconv 1.5.1,
`heudiconv --files <session folder> -s <subject> -f reproin -c dcm2niix -b`, wrote
`fmap/sub-reproin_dir-AP_epi`, `fmap/sub-reproin_dir-PA_epi`, `dwi/sub-reproin_dir-AP_dwi`,
`dwi/sub-reproin_dir-PA_dwi` for the reproin session (run per source study, as its reproin
heuristic wants one study per run), and `anat/sub-xa30i_acq-tfl_T1w`,
`func/sub-xa30i_task-fa_run-01_bold` (+ `__dup-01`... for the other one-volume series) for
xa30i_interop. heudiconv names no session when the series names give none; ours come from XNAT's
session labels. heudiconv is not needed to run these tests.

One module-scoped fixture downloads and converts everything once; the tests only read what it left.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import nibabel
import pytest

from cli import REPO, run_script
from sandbox import Sandbox

SESSION_SCRIPT = "4_download_session.py"
ARCHIVE = REPO / "tests" / "data" / "realworld_dicom.tar.xz"

# Every image a person names, by session: BIDS path (no extension) -> the scan (SeriesNumber) it
# comes from. Runs: images of one name are numbered in scan order.
NAMED = {
    "xa30i_interop": {
        "sub-xa30i/ses-interop/anat/sub-xa30i_ses-interop_acq-tfl_T1w": "5001",           # ReproIn
        "sub-xa30i/ses-interop/fmap/sub-xa30i_ses-interop_magnitude1": "9001",  # TE 10 ms, no EchoNumber
        "sub-xa30i/ses-interop/fmap/sub-xa30i_ses-interop_magnitude2": "9002",             # TE 12.46 ms
        "sub-xa30i/ses-interop/fmap/sub-xa30i_ses-interop_phasediff": "10001",
    },
    "uih_dti134434": {  # UIH writes no phase encoding direction: dir- from the names _PA / _AP
        "sub-uih/ses-dti134434/dwi/sub-uih_ses-dti134434_dir-PA_dwi": "6",
        "sub-uih/ses-dti134434/dwi/sub-uih_ses-dti134434_dir-AP_dwi": "9",
    },
    "uhp_pepolar": {  # spin-echo EPI field maps; dcm2niix gives the reversed half SeriesNumber 1006
        "sub-uhp/ses-pepolar/fmap/sub-uhp_ses-pepolar_dir-AP_epi": "1006",                 # PE j-
        "sub-uhp/ses-pepolar/fmap/sub-uhp_ses-pepolar_dir-PA_run-1_epi": "6",             # PE j
        "sub-uhp/ses-pepolar/fmap/sub-uhp_ses-pepolar_dir-PA_run-2_epi": "9",             # PE j
    },
    "elition_1": {
        "sub-elition/ses-1/anat/sub-elition_ses-1_T1w": "1301",                          # T1TFE, TI 0.9 s
        "sub-elition/ses-1/fmap/sub-elition_ses-1_magnitude1": "2001",
        "sub-elition/ses-1/fmap/sub-elition_ses-1_magnitude2": "2001",
        "sub-elition/ses-1/fmap/sub-elition_ses-1_phase1": "2001",
        "sub-elition/ses-1/fmap/sub-elition_ses-1_phase2": "2001",
        "sub-elition/ses-1/func/sub-elition_ses-1_task-rest_bold": "2101",              # "fcMRI"
    },
    "reproin_1": {  # heudiconv's reproin entities (see above)
        "sub-reproin/ses-1/fmap/sub-reproin_ses-1_dir-AP_epi": "7",
        "sub-reproin/ses-1/fmap/sub-reproin_ses-1_dir-PA_epi": "9",
        "sub-reproin/ses-1/dwi/sub-reproin_ses-1_dir-PA_dwi": "16",
        "sub-reproin/ses-1/dwi/sub-reproin_ses-1_dir-AP_dwi": "19",
    },
}
# The BOLD run exported as one series per volume (7001-7004 here): merged into this 4D run, or
# left out with every one of its series in the note; never 3D _bold images.
SPLIT_BOLD = "sub-xa30i/ses-interop/func/sub-xa30i_ses-interop_task-fa_run-1_bold"
SPLIT_BOLD_SCANS = ("7001", "7002", "7003", "7004")
# Left out and named in the note: valid DICOM that holds no image, and a derived scout reformat.
LEFT_OUT = {"16": "DWI_dir80_AP_TENSOR", "99": "PhoenixZIPReport", "2001": "AAHead_Scout_MPR_sag"}
SESSION_FOLDERS = {session: Path(next(iter(images))).parts[:2] for session, images in NAMED.items()}

# The fixture downloads and converts for tens of seconds: one worker runs the module.
pytestmark = pytest.mark.xdist_group("bids_realworld")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every REALWORLD session downloaded and converted by the default rules into one dataset."""
    root = tmp_path_factory.mktemp("realworld")
    with Sandbox(dicom_tree=ARCHIVE) as sandbox:
        result = run_script(SESSION_SCRIPT, "--project", "REALWORLD", "--all-sessions", "--bids", "bids",
                            cwd=root, sandbox=sandbox, timeout=300)
    return result, root / "bids"


def images(bids: Path) -> dict[str, dict]:
    """Each image of the dataset (path without .nii.gz) -> its sidecar."""
    found = {}
    for image in sorted(bids.glob("sub-*/**/*.nii.gz")):
        stem = image.relative_to(bids).as_posix()[:-len(".nii.gz")]
        sidecar = bids / f"{stem}.json"
        found[stem] = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    return found


def note(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_every_session_converts_and_the_run_exits_0(converted):
    result, _ = converted
    assert result.returncode == 0, note(result)[-3000:]
    assert "Traceback" not in result.stderr
    assert "failed:" not in note(result)


@pytest.mark.parametrize("session", sorted(NAMED))
def test_each_image_a_person_would_name_gets_that_name(converted, session):
    _, bids = converted
    written = {stem: sidecar for stem, sidecar in images(bids).items()
               if Path(stem).parts[:2] == SESSION_FOLDERS[session] and stem != SPLIT_BOLD}
    assert set(written) == set(NAMED[session])
    for stem, scan in NAMED[session].items():
        assert str(written[stem].get("SeriesNumber")) == scan, stem  # the image of the scan it names


def test_series_that_give_no_image_and_derived_series_are_left_out_and_named_in_the_note(converted):
    result, bids = converted
    written_series = {str(sidecar.get("SeriesNumber")) for stem, sidecar in images(bids).items()
                      if stem.startswith("sub-xa30i/")}
    for scan, description in LEFT_OUT.items():
        assert scan not in written_series, scan
        assert f"scan {scan} ({description})" in note(result), scan


def test_a_bold_exported_one_volume_per_series_is_merged_or_left_out_never_3d(converted):
    result, bids = converted
    bolds = {stem for stem in images(bids) if stem.endswith("_bold")}
    for stem in bolds:
        assert nibabel.load(bids / f"{stem}.nii.gz").ndim == 4, stem
    split = {stem for stem in bolds if stem.startswith("sub-xa30i/")}
    if split:
        assert split == {SPLIT_BOLD}
        assert nibabel.load(bids / f"{SPLIT_BOLD}.nii.gz").shape == (64, 64, 33, len(SPLIT_BOLD_SCANS))
    else:
        for scan in SPLIT_BOLD_SCANS:
            assert f"scan {scan} (func-bold_task-fa_run-1)" in note(result), scan


def test_the_images_carry_what_their_names_claim(converted):
    """Phase encoding agrees with dir- where the scanner states it; the BOLD runs name their task;
    the DWIs have their gradient tables; the phase difference both echo times."""
    _, bids = converted
    written = images(bids)
    directions = {"AP": "j-", "PA": "j"}
    for stem, sidecar in written.items():
        match = re.search(r"_dir-(AP|PA)_", stem)
        if match and "PhaseEncodingDirection" in sidecar:
            assert sidecar["PhaseEncodingDirection"] == directions[match.group(1)], stem
        if stem.endswith("_dwi"):
            for ending in ("bval", "bvec"):
                assert (bids / f"{stem}.{ending}").is_file(), stem
    assert written["sub-elition/ses-1/func/sub-elition_ses-1_task-rest_bold"]["TaskName"] == "rest"
    phasediff = written["sub-xa30i/ses-interop/fmap/sub-xa30i_ses-interop_phasediff"]
    assert phasediff["EchoTime1"] == 0.01 and phasediff["EchoTime2"] == 0.01246


def test_field_maps_are_intended_for_the_bold_they_correct(converted):
    _, bids = converted
    for fmap in ("magnitude1", "magnitude2", "phase1", "phase2"):
        sidecar = json.loads((bids / f"sub-elition/ses-1/fmap/sub-elition_ses-1_{fmap}.json").read_text())
        intended = sidecar.get("IntendedFor", [])
        intended = [intended] if isinstance(intended, str) else intended
        assert "bids::sub-elition/ses-1/func/sub-elition_ses-1_task-rest_bold.nii.gz" in intended, fmap


def test_each_session_lists_its_images_with_their_acquisition_time(converted):
    _, bids = converted
    for session in NAMED:
        subject, visit = SESSION_FOLDERS[session]
        table = bids / subject / visit / f"{subject}_{visit}_scans.tsv"
        with table.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        listed = {row["filename"]: row["acq_time"] for row in rows}
        session_images = {Path(stem).relative_to(Path(subject, visit)).as_posix() + ".nii.gz"
                          for stem in images(bids) if Path(stem).parts[:2] == (subject, visit)}
        assert set(listed) == session_images, session
        assert all(listed.values()), session


def test_the_official_validator_finds_no_error(converted):
    _, bids = converted
    result = subprocess.run(["bids-validator-deno", "--format", "json", str(bids)],
                            capture_output=True, text=True, timeout=120, check=False)
    issues = json.loads(result.stdout)["issues"]["issues"]
    assert [issue for issue in issues if issue.get("severity") == "error"] == []
