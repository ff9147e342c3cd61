"""--bids: what was downloaded becomes a valid BIDS dataset, incrementally and safely; dcm2niix
really runs on the sandbox's real DICOM."""
from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
import subprocess
import sys

import pydicom
import pytest

from cli import data_files_below, find_session, run_script, script_env
from sandbox import File, Sandbox
from sandbox.dicom_maker import dicom_bytes

SESSION_SCRIPT = "4_download_session.py"
SCAN_SCRIPT = "3_download_single_scan.py"
DEMO_TREE = {   # the default session sub-2_ses-1: T1, T2, two resting-state runs, diffusion, and a
                # GRE field map: scan 7 holds both echoes' magnitudes, scan 8 the phase difference
    "sub-2/ses-1/anat/sub-2_ses-1_T1w": (64, 64, 5),
    "sub-2/ses-1/anat/sub-2_ses-1_T2w": (32, 32, 4),
    "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-1_bold": (32, 32, 4, 2),
    "sub-2/ses-1/func/sub-2_ses-1_task-rest_run-2_bold": (32, 32, 4, 2),
    "sub-2/ses-1/dwi/sub-2_ses-1_dwi": (32, 32, 4, 3),
    "sub-2/ses-1/fmap/sub-2_ses-1_magnitude1": (32, 32, 3),
    "sub-2/ses-1/fmap/sub-2_ses-1_magnitude2": (32, 32, 3),
    "sub-2/ses-1/fmap/sub-2_ses-1_phasediff": (32, 32, 3),
}
DEMO_SCANS = 7   # scan 4, the localizer, has no DICOM
DERIVED_NOTE = ("no BIDS name for (not converted): scan 6 (dwi) of sub-2_ses-1, image "
                "006_session-sub-2_ses-1_dwi_64dir_20240115101500.nii.gz: a derived image")


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


@pytest.fixture(scope="module")
def converted_session(tmp_path_factory):
    """The default session converted once, by a server of its own: (folder, result of the run,
    server). Read by the test of what it gives, run again by the test of a rerun, and copied by the
    test of a changed scan."""
    with Sandbox() as server:
        root = tmp_path_factory.mktemp("converted")
        yield root, bids_run(server, root), server


# The two tests of one conversion go to one worker, so that it runs once.
@pytest.mark.xdist_group("bids_converted_session")
def test_a_session_becomes_a_valid_bids_dataset(converted_session):
    tmp_path, result, _ = converted_session
    assert result.returncode == 0, result.stderr
    assert f"BIDS: {DEMO_SCANS} scan(s) converted, 0 already converted, 0 failed -> bids" in result.stderr
    assert DERIVED_NOTE in result.stderr.splitlines()   # the DWI series' TRACEW image
    bids = tmp_path / "bids"
    files = dataset_files(bids)
    expected = {f"{stem}{ext}" for stem in DEMO_TREE for ext in (".nii.gz", ".json")}
    expected |= {"sub-2/ses-1/dwi/sub-2_ses-1_dwi.bval", "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bvec",
                 "dataset_description.json", "participants.tsv", "participants.json", "README",
                 "sub-2/ses-1/sub-2_ses-1_scans.tsv"}
    assert set(files) == expected
    scans = (bids / "sub-2/ses-1/sub-2_ses-1_scans.tsv").read_text().splitlines()
    assert scans[0] == "filename\tacq_time"
    assert sorted(line.split("\t")[0] for line in scans[1:]) == sorted(
        f"{stem.split('/', 2)[2]}.nii.gz" for stem in DEMO_TREE)
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
    magnitude1 = json.loads((bids / "sub-2/ses-1/fmap/sub-2_ses-1_magnitude1.json").read_text())
    phasediff = json.loads((bids / "sub-2/ses-1/fmap/sub-2_ses-1_phasediff.json").read_text())
    assert (magnitude1["SeriesNumber"], magnitude1["EchoNumber"], phasediff["SeriesNumber"]) == (7, 1, 8)
    assert phasediff["IntendedFor"] == [
        "bids::sub-2/ses-1/dwi/sub-2_ses-1_dwi.nii.gz",
        "bids::sub-2/ses-1/func/sub-2_ses-1_task-rest_run-1_bold.nii.gz",
        "bids::sub-2/ses-1/func/sub-2_ses-1_task-rest_run-2_bold.nii.gz"]
    warnings = {issue["code"] for issue in assert_valid_bids(bids)}
    assert not warnings & {"README_FILE_MISSING", "B0_FIELD_IDENTIFIER_RECOMMENDED", "INTENDED_FOR"}
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


@pytest.mark.xdist_group("bids_converted_session")
def test_a_rerun_converts_nothing_and_touches_no_file(converted_session):
    tmp_path, first, sandbox = converted_session
    assert first.returncode == 0, first.stderr
    before = {name: (path.read_bytes(), path.stat().st_mtime_ns)
              for name, path in dataset_files(tmp_path / "bids").items()}
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"BIDS: 0 scan(s) converted, {DEMO_SCANS} already converted, 0 failed" in result.stderr
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
    return dicom_bytes(dataset)


@pytest.mark.xdist_group("bids_converted_session")
def test_a_scan_whose_files_changed_is_converted_again(sandbox, converted_session, tmp_path):
    converted, first, _ = converted_session
    assert first.returncode == 0, first.stderr
    for folder in ("bids", "downloaded_data"):   # as if converted here; copytree keeps the mtimes
        shutil.copytree(converted / folder, tmp_path / folder)
    bids = tmp_path / "bids"
    t1, t2 = (bids / f"sub-2/ses-1/anat/sub-2_ses-1_{s}.json" for s in ("T1w", "T2w"))
    t1_mtime = t1.stat().st_mtime_ns
    replace_dicom(sandbox, "2", brighter)
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"BIDS: 1 scan(s) converted, {DEMO_SCANS - 1} already converted" in result.stderr
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
    assert f"BIDS: {DEMO_SCANS - 1} scan(s) converted, 0 already converted, 1 failed" in result.stderr
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


def raw_data(data: bytes) -> bytes:
    """The same file as a scanner's raw data series exports it (the XA tensor series, say):
    valid DICOM of SOP class Raw Data Storage, with no pixel data."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    del dataset.PixelData
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66"
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_a_series_of_valid_dicom_that_holds_no_image_is_left_out_with_a_note_not_failed(sandbox, tmp_path):
    replace_dicom(sandbox, "2", raw_data)
    result = bids_run(sandbox, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "scan 2 (T2) of sub-2_ses-1: valid DICOM that holds no image (Raw Data Storage)" \
        in result.stderr
    assert "0 failed -> bids" in result.stderr
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
         "criteria": {"SeriesDescription": {"any": ["dwi_*", "dti_*"]},
                      "ImageType": ["ORIGINAL", "*", "*", "*", "*"]}},
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
    assert notes == ["no BIDS name for (not converted): " + "; ".join([
        "scan 2 (T2) of sub-2_ses-1: no description matches",
        "scan 6 (dwi) of sub-2_ses-1, image 006_session-sub-2_ses-1_dwi_64dir_20240115101500.nii.gz: "
        "no description matches",
        "scan 7 (fmap) of sub-2_ses-1, image 007_session-sub-2_ses-1_gre_field_mapping_20240115101500_e1.nii.gz: "
        "no description matches",
        "scan 7 (fmap) of sub-2_ses-1, image 007_session-sub-2_ses-1_gre_field_mapping_20240115101500_e2.nii.gz: "
        "no description matches",
        "scan 8 (fmap) of sub-2_ses-1: no description matches"])]
    assert_valid_bids(tmp_path / "bids")


def test_dry_run_prints_each_scans_bids_name_and_writes_nothing(sandbox, tmp_path, in_process):
    result = in_process(SESSION_SCRIPT, "--bids", "bids", "--dry-run", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    # In process, the run's folder is a parameter: the paths it prints are below it.
    lines = [line.strip().replace(f"{tmp_path}/", "") for line in result.stdout.splitlines()
             if line.strip().startswith("bids:")]
    # Which images a field map's series holds only its sidecars tell: the plan shows the choices.
    field_map = "bids/sub-2/ses-1/fmap/sub-2_ses-1_<magnitude1|magnitude2|phasediff|fieldmap|magnitude>.nii.gz"
    assert lines == [
        "bids: scan 1 (T1) -> bids/sub-2/ses-1/anat/sub-2_ses-1_T1w.nii.gz",
        "bids: scan 2 (T2) -> bids/sub-2/ses-1/anat/sub-2_ses-1_T2w.nii.gz",
        "bids: scan 3 (func_rest) -> bids/sub-2/ses-1/func/sub-2_ses-1_task-rest_run-1_bold.nii.gz",
        "bids: scan 5 (func_rest) -> bids/sub-2/ses-1/func/sub-2_ses-1_task-rest_run-2_bold.nii.gz",
        "bids: scan 6 (dwi) -> bids/sub-2/ses-1/dwi/sub-2_ses-1_dwi.nii.gz",
        f"bids: scan 7 (fmap) -> {field_map}", f"bids: scan 8 (fmap) -> {field_map}"]
    assert "bids names planned from XNAT's types and descriptions" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_single_scan_script_converts_its_scan_into_the_default_folder(sandbox, tmp_path):
    result = run_script(SCAN_SCRIPT, "--scan", "6", "--bids", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert set(dataset_files(tmp_path / "bids")) == {
        "dataset_description.json", "participants.tsv", "participants.json", "README",
        "sub-2/ses-1/dwi/sub-2_ses-1_dwi.nii.gz",
        "sub-2/ses-1/dwi/sub-2_ses-1_dwi.json", "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bval",
        "sub-2/ses-1/dwi/sub-2_ses-1_dwi.bvec", "sub-2/ses-1/sub-2_ses-1_scans.tsv"}


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
        f"{SESSION_SCRIPT}: error: --bids needs dcm2niix: $DCM2NIIX names {program}, which was "
        f"not found or does not run: point $DCM2NIIX at a working dcm2niix, or unset it to use the "
        f"one pip installs (pip install dcm2niix)")
    assert sandbox.log == [] and not (tmp_path / "downloaded_data").exists()
    assert "Traceback" not in result.stderr


def test_the_demo_converts_out_of_the_box(tmp_path):
    result = run_script(SESSION_SCRIPT, "--demo", "--bids", cwd=tmp_path, env=script_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {f"{stem}.nii.gz" for stem in DEMO_TREE} <= set(dataset_files(tmp_path / "bids"))


# --- real scanners' series (the sandbox's VENDOR project) ----------------------------------------

@pytest.fixture(scope="module")
def vendor_sandbox():
    with Sandbox(vendor=True) as started:
        yield started


def vendor_run(vendor_sandbox, tmp_path, *args):
    env = script_env(tmp_path, vendor_sandbox, XNAT_PROJECT="VENDOR")
    return run_script(SESSION_SCRIPT, "--subject", "siemens", *args, cwd=tmp_path, env=env)


def test_a_real_siemens_session_gets_its_field_map_images_each_named_with_intended_for(
        vendor_sandbox, tmp_path):
    # The field maps first, alone: nothing to be intended for yet.
    first = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_xa30", "--scans", "8", "9",
                       "--bids", "bids")
    assert first.returncode == 0, first.stderr
    bids = tmp_path / "bids"
    session = "sub-siemens/ses-xa30"
    phasediff_image = bids / session / "fmap/sub-siemens_ses-xa30_phasediff.nii.gz"
    before = phasediff_image.stat().st_mtime_ns
    phasediff_sidecar = bids / session / "fmap/sub-siemens_ses-xa30_phasediff.json"
    assert "IntendedFor" not in json.loads(phasediff_sidecar.read_text())
    # The whole session: the BOLD joins, and the field maps' sidecars now point at it.
    result = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_xa30", "--bids", "bids")
    assert result.returncode == 0, result.stderr
    assert "BIDS: 2 scan(s) converted, 2 already converted, 0 failed" in result.stderr
    assert phasediff_image.stat().st_mtime_ns == before
    assert set(dataset_files(bids / session)) == {
        f"{folder}/sub-siemens_ses-xa30_{suffix}{ext}" for folder, suffix in (
            ("func", "task-fa_run-1_bold"), ("fmap", "magnitude1"), ("fmap", "magnitude2"), ("fmap", "phasediff"))
        for ext in (".nii.gz", ".json")} | {"sub-siemens_ses-xa30_scans.tsv"}
    # Scan 8 holds both echoes' magnitudes, scan 9 the phase difference.
    magnitude2 = json.loads((bids / session / "fmap/sub-siemens_ses-xa30_magnitude2.json").read_text())
    phasediff = json.loads((bids / session / "fmap/sub-siemens_ses-xa30_phasediff.json").read_text())
    assert (magnitude2["SeriesNumber"], magnitude2["EchoNumber"]) == (8, 2)
    assert phasediff["SeriesNumber"] == 9 and phasediff["EchoTime2"] > phasediff["EchoTime1"]
    assert phasediff["IntendedFor"] == magnitude2["IntendedFor"] == [
        "bids::sub-siemens/ses-xa30/func/sub-siemens_ses-xa30_task-fa_run-1_bold.nii.gz"]
    # The ADC series is derived: left out, and named.
    assert ("no BIDS name for (not converted): scan 11 (DWI_dir80_PA_ADC) of siemens_xa30: "
            "a derived image") in result.stderr
    warnings = {issue["code"] for issue in assert_valid_bids(bids)}
    assert "INTENDED_FOR" not in warnings


def test_a_session_where_nothing_is_named_exits_0_and_says_so(vendor_sandbox, tmp_path):
    result = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_xa30", "--scans", "11", "--bids", "bids")
    assert result.returncode == 0, result.stderr
    assert ("no BIDS name for (not converted): scan 11 (DWI_dir80_PA_ADC) of siemens_xa30: a derived image"
            ) in result.stderr
    assert "0 failed -> bids" in result.stderr
    assert not list((tmp_path / "bids").glob("sub-*"))


def test_dry_run_previews_reproin_names_and_says_which_scans_only_their_images_can_name(vendor_sandbox, tmp_path):
    result = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_xa30", "--bids", "bids", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert ("bids: scan 7 (func-bold_task-fa_run-1) -> "
            "bids/sub-siemens/ses-xa30/func/sub-siemens_ses-xa30_task-fa_run-1_bold.nii.gz") in result.stdout
    result = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_epi", "--bids", "bids", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "bids: scan 3 (EPI PE=AP) -> named by what its images are, once converted" in result.stdout
    assert not (tmp_path / "bids").exists()


LAB_CONFIG = {   # as a lab writes one for dcm2bids 3: lists, numbers, any, an id for IntendedFor, runs
    "descriptions": [
        {"id": "id_bold", "datatype": "func", "suffix": "bold", "custom_entities": "task-fa",
         "criteria": {"SeriesDescription": "func-bold*",
                      "ImageType": ["ORIGINAL", "PRIMARY", "FMRI", "NONE", "MAGNITUDE"]},
         "sidecar_changes": {"TaskName": "fa"}},
        {"id": "id_epi", "datatype": "func", "suffix": "bold", "custom_entities": ["task-pe", "acq-epi"],
         # dcm2niix's file name as dcm2bids makes it, given the session's download folder
         "criteria": {"SeriesDescription": "EPI PE=*", "SidecarFilename": "00?_session-siemens_epi_*"},
         "sidecar_changes": {"TaskName": "pe"}},
        {"datatype": "fmap", "suffix": "magnitude1",
         "criteria": {"SeriesDescription": "gre_field*", "EchoNumber": 1,
                      "ImageType": {"any": [["ORIGINAL", "PRIMARY", "M", "NONE", "MAGNITUDE"],
                                            ["ORIGINAL", "PRIMARY", "M", "ND", "MAGNITUDE"]]}},
         "sidecar_changes": {"IntendedFor": ["id_bold", "id_epi"]}},
        {"datatype": "fmap", "suffix": "magnitude2",
         "criteria": {"SeriesDescription": "gre_field*", "EchoNumber": 2,
                      "ImageType": ["ORIGINAL", "PRIMARY", "M", "*", "MAGNITUDE"]}},
        {"datatype": "fmap", "suffix": "phasediff", "criteria": {"SidecarFilename": "*_ph*"},
         "sidecar_changes": {"IntendedFor": "id_bold"}},
    ]
}


def test_a_lab_configuration_gives_the_tree_and_sidecars_dcm2bids_gives(vendor_sandbox, tmp_path):
    config = tmp_path / "dcm2bids_config.json"
    config.write_text(json.dumps(LAB_CONFIG))
    result = vendor_run(vendor_sandbox, tmp_path, "--all-sessions", "--bids", "bids",
                        "--bids-config", str(config))
    assert result.returncode == 0, result.stderr
    ours = tmp_path / "bids"
    theirs = tmp_path / "dcm2bids"
    # One dcm2bids per session, each into a folder of its own, side by side (one shared output
    # folder would make them race on its participants.tsv): the subject folders are compared.
    runs = {}
    for session in sorted((tmp_path / "downloaded_data").iterdir()):   # session-siemens_epi ...
        label = session.name.removeprefix("session-siemens_")
        runs[label] = subprocess.Popen(
            [sys.executable, "-m", "dcm2bids.cli.dcm2bids", "-d", str(session), "-p", "siemens",
             "-s", label, "-c", str(config), "-o", str(theirs / label)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for label, run in runs.items():
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output
        if (theirs / label / "sub-siemens").is_dir():   # a session where nothing matched has none
            shutil.copytree(theirs / label / "sub-siemens", theirs / "sub-siemens", dirs_exist_ok=True)
    names = set(dataset_files(ours / "sub-siemens"))
    assert names == set(dataset_files(theirs / "sub-siemens"))
    assert {"ses-epi/func/sub-siemens_ses-epi_task-pe_acq-epi_run-04_bold.nii.gz",
            "ses-xa30/fmap/sub-siemens_ses-xa30_phasediff.json"} <= names
    for name in names:
        mine, reference = ours / "sub-siemens" / name, theirs / "sub-siemens" / name
        if name.endswith(".json"):
            expected = json.loads(reference.read_text())
            expected.pop("Dcm2bidsVersion")
            assert json.loads(mine.read_text()) == expected, name
        elif name.endswith(".nii.gz"):
            assert gzip.decompress(mine.read_bytes()) == gzip.decompress(reference.read_bytes()), name
    intended = json.loads((ours / "sub-siemens/ses-xa30/fmap/sub-siemens_ses-xa30_magnitude1.json").read_text())
    assert intended["IntendedFor"] == "bids::sub-siemens/ses-xa30/func/sub-siemens_ses-xa30_task-fa_bold.nii.gz"


def test_scans_added_later_renumber_the_runs_and_update_intended_for_without_converting_again(
        vendor_sandbox, tmp_path):
    config = tmp_path / "dcm2bids_config.json"
    config.write_text(json.dumps(LAB_CONFIG))
    first = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_epi", "--scans", "4", "5",
                       "--bids", "bids", "--bids-config", str(config))
    assert first.returncode == 0, first.stderr
    func = tmp_path / "bids/sub-siemens/ses-epi/func"
    stem = "sub-siemens_ses-epi_task-pe_acq-epi_run-0{}_bold"
    scan_4 = (func / f"{stem.format(1)}.nii.gz").read_bytes()
    assert json.loads((func / f"{stem.format(1)}.json").read_text())["SeriesNumber"] == 4
    second = vendor_run(vendor_sandbox, tmp_path, "--session", "siemens_epi", "--bids", "bids",
                        "--bids-config", str(config))
    assert second.returncode == 0, second.stderr
    assert "BIDS: 2 scan(s) converted, 2 already converted, 0 failed" in second.stderr
    # dcm2bids's order is the acquisition's: scans 3, 4, 5, 6 are runs 1 to 4 now; scan 4's run
    # moved from run-01 to run-02 without a new conversion (its bytes are the same).
    assert [json.loads((func / f"{stem.format(run)}.json").read_text())["SeriesNumber"]
            for run in (1, 2, 3, 4)] == [3, 4, 5, 6]
    assert (func / f"{stem.format(2)}.nii.gz").read_bytes() == scan_4
    assert len(list(func.iterdir())) == 8
