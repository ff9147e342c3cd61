"""--bids: what was downloaded becomes a valid BIDS dataset, incrementally and safely; dcm2niix
really runs on the sandbox's real DICOM."""
from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess

import pydicom
import pytest

from cli import data_files_below, find_session, run_script, script_env
from sandbox import File

SESSION_SCRIPT = "4_download_session.py"
SCAN_SCRIPT = "3_download_single_scan.py"
DEMO_TREE = {   # the default session sub-2_ses-1: T1, T2, two resting-state runs, diffusion
    "sub-2/ses-1/anat/sub-2_ses-1_T1w": (64, 64, 5),
    "sub-2/ses-1/anat/sub-2_ses-1_T2w": (32, 32, 4),
    "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-1_bold": (32, 32, 8),
    "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-2_bold": (32, 32, 8),
    "sub-2/ses-1/dwi/sub-2_ses-1_dwi": (32, 32, 4, 3),
}


def dataset_files(folder) -> dict[str, object]:
    """Every file of the dataset that BIDS sees (our hidden record aside)."""
    return {name: path for name, path in data_files_below(folder).items() if not name.startswith(".")}


def nifti_shape(path) -> tuple[int, ...]:
    with gzip.open(path, "rb") as handle:
        header = handle.read(348)
    dims = struct.unpack("<8h", header[40:56])
    return tuple(dims[1:1 + dims[0]])


def assert_valid_bids(folder) -> list[dict]:
    """The official BIDS validator (bids-validator-deno, as BIDS apps run it) finds no error in
    the dataset; returns its warnings."""
    result = subprocess.run(["bids-validator-deno", "--json", str(folder)], capture_output=True,
                            text=True, timeout=120)
    issues = json.loads(result.stdout)["issues"]["issues"]
    errors = [issue for issue in issues if issue.get("severity") == "error"]
    assert not errors, errors
    return [issue for issue in issues if issue.get("severity") == "warning"]


def bids_run(sandbox, tmp_path, *args, script=SESSION_SCRIPT):
    return run_script(script, "--bids", "bids", *args, cwd=tmp_path, sandbox=sandbox)


def test_a_session_becomes_a_valid_bids_dataset(sandbox, tmp_path):
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "BIDS: 5 scan(s) converted, 0 already converted, 0 failed -> bids" in result.stderr
    bids = tmp_path / "bids"
    files = dataset_files(bids)
    expected = {f"{stem}{ext}" for stem in DEMO_TREE for ext in (".nii.gz", ".json")}
    expected |= {"sub-2/ses-1/dwi/sub-2_ses-1_dwi.bval", "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bvec",
                 "dataset_description.json", "participants.tsv"}
    assert set(files) == expected
    for stem, shape in DEMO_TREE.items():
        assert nifti_shape(bids / f"{stem}.nii.gz") == shape
    for run in (1, 2):
        sidecar = json.loads((bids / f"sub-2/ses-1/func/sub-2_ses-1_task-rest_run-{run}_bold.json").read_text())
        assert sidecar["TaskName"] == "rest" and sidecar["SeriesDescription"] == "bold_rest_ap"
    # Run numbers follow the scan IDs: run 1 is scan 3, run 2 is scan 5.
    first = json.loads((bids / "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-1_bold.json").read_text())
    assert first["SeriesNumber"] == 3
    assert (bids / "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bval").read_text().split() == ["0", "1000", "1000"]
    description = json.loads((bids / "dataset_description.json").read_text())
    assert description["Name"] == "DEMO" and description["DatasetType"] == "raw" and description["BIDSVersion"]
    assert (bids / "participants.tsv").read_text() == "participant_id\nsub-2\n"
    assert_valid_bids(bids)
    assert not (bids / ".xnat-bids-work").exists()


def test_labels_are_cleaned_across_subjects_and_sessions(sandbox, tmp_path):
    result = bids_run(sandbox, tmp_path, "--all-sessions")
    assert result.returncode == 0, result.stderr
    bids = tmp_path / "bids"
    names = set(dataset_files(bids))
    assert {"sub-10/ses-1/anat/sub-10_ses-1_T1w.nii.gz", "sub-10/ses-2/anat/sub-10_ses-2_T2w.nii.gz",
            "sub-3/ses-1/anat/sub-3_ses-1_T1w.nii.gz"} <= names
    # sub-10_ses-1 has resting-state scans 3 and 11: natural order makes 3 the first run.
    run_1 = json.loads((bids / "sub-10/ses-1/func/sub-10_ses-1_task-rest_run-1_bold.json").read_text())
    run_2 = json.loads((bids / "sub-10/ses-1/func/sub-10_ses-1_task-rest_run-2_bold.json").read_text())
    assert (run_1["SeriesNumber"], run_2["SeriesNumber"]) == (3, 11)
    assert (bids / "participants.tsv").read_text() == "participant_id\nsub-10\nsub-2\nsub-3\n"
    assert_valid_bids(bids)


def test_a_rerun_converts_nothing_and_touches_no_file(sandbox, tmp_path):
    assert bids_run(sandbox, tmp_path).returncode == 0
    before = {name: (path.read_bytes(), path.stat().st_mtime_ns)
              for name, path in dataset_files(tmp_path / "bids").items()}
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "BIDS: 0 scan(s) converted, 5 already converted, 0 failed" in result.stderr
    after = {name: (path.read_bytes(), path.stat().st_mtime_ns)
             for name, path in dataset_files(tmp_path / "bids").items()}
    assert after == before


def replace_dicom(sandbox, scan_id: str, change) -> None:
    """Give one scan of the default session new DICOM files on the server."""
    resource = next(s for s in find_session(sandbox, "sub-2_ses-1").scans if s.id == scan_id).find_resource("DICOM")
    resource.files[:] = [File.from_bytes(f.name, change(f.data())) for f in resource.files]


def brighter(data: bytes) -> bytes:
    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.SeriesDescription = "t2_space_repeated"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_scan_whose_files_changed_is_converted_again(sandbox, tmp_path):
    assert bids_run(sandbox, tmp_path).returncode == 0
    bids = tmp_path / "bids"
    t1, t2 = (bids / f"sub-2/ses-1/anat/sub-2_ses-1_{s}.json" for s in ("T1w", "T2w"))
    t1_mtime = t1.stat().st_mtime_ns
    replace_dicom(sandbox, "2", brighter)
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "BIDS: 1 scan(s) converted, 4 already converted" in result.stderr
    assert json.loads(t2.read_text())["SeriesDescription"] == "t2_space_repeated"
    assert t1.stat().st_mtime_ns == t1_mtime


def test_a_file_these_scripts_did_not_write_is_never_overwritten(sandbox, tmp_path):
    theirs = tmp_path / "bids" / "sub-2" / "ses-1" / "anat" / "sub-2_ses-1_T1w.nii.gz"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"a lab's own conversion")
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 1
    assert theirs.read_bytes() == b"a lab's own conversion"
    assert "a file these scripts did not write is there; it was left untouched" in result.stderr
    assert "BIDS: 4 scan(s) converted, 0 already converted, 1 failed" in result.stderr
    assert (tmp_path / "bids" / "sub-2/ses-1/anat/sub-2_ses-1_T2w.nii.gz").is_file()
    assert result.stderr.splitlines()[-1] == (
        f"{SESSION_SCRIPT}: error: 1 scan(s) could not be converted to BIDS (listed above); every "
        f"download is kept")


def test_a_scan_of_broken_dicom_fails_alone_and_its_download_is_kept(sandbox, tmp_path):
    replace_dicom(sandbox, "2", lambda data: b"not a DICOM file at all " + data[:100])
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("  failed: ")]
    assert len(failed) == 1 and "scan-2_T2: dcm2niix could not convert it" in failed[0]
    assert len(data_files_below(tmp_path / "downloaded_data" / "session-sub-2_ses-1" / "scan-2_T2")) == 4
    names = set(dataset_files(tmp_path / "bids"))
    assert "sub-2/ses-1/anat/sub-2_ses-1_T1w.nii.gz" in names
    assert not any("T2w" in name for name in names)


DCM2BIDS_CONFIG = {
    "descriptions": [
        {"datatype": "anat", "suffix": "T1w", "criteria": {"SeriesDescription": "t1_*"}},
        {"datatype": "func", "suffix": "bold", "custom_entities": "task-rest",
         "criteria": {"SeriesDescription": "*rest*", "ImageOrientationPatientDICOM": [1, 0, 0, 0, 1, "*"]},
         "sidecar_changes": {"TaskName": "rest"}},
        {"id": "dwi", "datatype": "dwi", "suffix": "dwi",
         "criteria": {"SeriesDescription": {"any": ["dwi_*", "dti_*"]}}},
    ]
}


def test_a_dcm2bids_configuration_names_the_scans(sandbox, tmp_path):
    config = tmp_path / "dcm2bids_config.json"
    config.write_text(json.dumps(DCM2BIDS_CONFIG))
    result = bids_run(sandbox, tmp_path, "--bids-config", str(config))
    assert result.returncode == 0, result.stderr
    names = {name for name in dataset_files(tmp_path / "bids") if name.endswith(".nii.gz")}
    assert names == {"sub-2/ses-1/anat/sub-2_ses-1_T1w.nii.gz",
                     "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-01_bold.nii.gz",
                     "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-02_bold.nii.gz",
                     "sub-2/ses-1/dwi/sub-2_ses-1_dwi.nii.gz"}
    # The scan no description matches is named in one note.
    notes = [line for line in result.stderr.splitlines() if line.startswith("no BIDS name for")]
    assert notes == ["no BIDS name for (not converted): scan 2 (T2) of sub-2_ses-1: no description matches"]
    assert_valid_bids(tmp_path / "bids")


def test_dry_run_prints_each_scans_bids_name_and_writes_nothing(sandbox, tmp_path):
    result = bids_run(sandbox, tmp_path, "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("bids:")]
    assert lines == [
        "bids: scan 1 (T1) -> bids/sub-2/ses-1/anat/sub-2_ses-1_T1w.nii.gz",
        "bids: scan 2 (T2) -> bids/sub-2/ses-1/anat/sub-2_ses-1_T2w.nii.gz",
        "bids: scan 3 (func_rest) -> bids/sub-2/ses-1/func/sub-2_ses-1_task-rest_run-1_bold.nii.gz",
        "bids: scan 5 (func_rest) -> bids/sub-2/ses-1/func/sub-2_ses-1_task-rest_run-2_bold.nii.gz",
        "bids: scan 6 (dwi) -> bids/sub-2/ses-1/dwi/sub-2_ses-1_dwi.nii.gz"]
    assert "bids names planned from XNAT's types and descriptions" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_single_scan_script_converts_its_scan_into_the_default_folder(sandbox, tmp_path):
    result = run_script(SCAN_SCRIPT, "--scan", "6", "--bids", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert set(dataset_files(tmp_path / "bids")) == {
        "dataset_description.json", "participants.tsv", "sub-2/ses-1/dwi/sub-2_ses-1_dwi.nii.gz",
        "sub-2/ses-1/dwi/sub-2_ses-1_dwi.json", "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bval",
        "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bvec"}


@pytest.mark.parametrize("dcm2niix", ["missing", "broken"])
def test_without_a_working_dcm2niix_one_line_says_how_to_install_it_before_any_download(
        sandbox, tmp_path, dcm2niix):
    program = tmp_path / "dcm2niix"
    if dcm2niix == "broken":
        program.write_text("#!/bin/sh\nexit 1\n")
        program.chmod(0o755)
    env = script_env(tmp_path, sandbox, DCM2NIIX=str(program))
    result = run_script(SESSION_SCRIPT, "--bids", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"{SESSION_SCRIPT}: error: --bids needs dcm2niix, which was not found or does not run: "
        f"pip install dcm2niix (or pip install -r requirements.txt)")
    assert sandbox.log == [] and not (tmp_path / "downloaded_data").exists()
    assert "Traceback" not in result.stderr


def test_the_demo_converts_out_of_the_box(tmp_path):
    result = run_script(SESSION_SCRIPT, "--demo", "--bids", cwd=tmp_path, env=script_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {f"{stem}.nii.gz" for stem in DEMO_TREE} <= set(dataset_files(tmp_path / "bids"))
