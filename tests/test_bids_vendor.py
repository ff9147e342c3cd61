"""--bids on real scanners' DICOM: the sandbox's VENDOR project (GE, Siemens and Philips QA series,
tests/data/README.md), downloaded and converted as a lab would, checked against dcm2niix run
directly on the same folders, against the official BIDS validator, and against dcm2bids itself.

Each module-scoped fixture runs its programs once; the tests only read what they left."""
from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel
import numpy
import pydicom
import pytest

from cli import run_script
from sandbox import Sandbox

SESSION_SCRIPT = "4_download_session.py"
SESSIONS = {"siemens_xa30": "siemens", "siemens_gre": "siemens", "siemens_epi": "siemens", "ge_1": "ge",
            "philips_1": "philips"}

# What the default rules make of the VENDOR sessions: each BIDS image (path without extension) and
# the image dcm2niix makes of the same scan (session, scan ID, the suffix dcm2niix adds). The XA30
# BOLD is named by ReproIn (func-bold_task-fa_run-1: its entities as written); the Siemens "EPI PE=.."
# series and the Philips EPI_asc, which no name or map row names, are identified as BOLD by their
# sidecars (EPI, more than one volume), the four directions of one session each getting dir-.
# Left out, and only named in the note: the derived images (siemens_xa30's ADC series, the
# Philips DTI's ADC).
DEFAULT_TREE = {
    "sub-siemens/ses-xa30/func/sub-siemens_ses-xa30_task-fa_run-1_bold": ("siemens_xa30", "7", ""),
    "sub-siemens/ses-xa30/fmap/sub-siemens_ses-xa30_magnitude1": ("siemens_xa30", "8", "_e1"),
    "sub-siemens/ses-xa30/fmap/sub-siemens_ses-xa30_magnitude2": ("siemens_xa30", "8", "_e2"),
    "sub-siemens/ses-xa30/fmap/sub-siemens_ses-xa30_phasediff": ("siemens_xa30", "9", "_e2_ph"),
    "sub-siemens/ses-gre/fmap/sub-siemens_ses-gre_magnitude1": ("siemens_gre", "2", "_e1"),
    "sub-siemens/ses-gre/fmap/sub-siemens_ses-gre_magnitude2": ("siemens_gre", "2", "_e2"),
    "sub-siemens/ses-gre/fmap/sub-siemens_ses-gre_phasediff": ("siemens_gre", "3", "_e2_ph"),
    "sub-siemens/ses-epi/func/sub-siemens_ses-epi_task-epipe_dir-AP_bold": ("siemens_epi", "3", ""),
    "sub-siemens/ses-epi/func/sub-siemens_ses-epi_task-epipe_dir-PA_bold": ("siemens_epi", "4", ""),
    "sub-siemens/ses-epi/func/sub-siemens_ses-epi_task-epipe_dir-RL_bold": ("siemens_epi", "5", ""),
    "sub-siemens/ses-epi/func/sub-siemens_ses-epi_task-epipe_dir-LR_bold": ("siemens_epi", "6", ""),
    "sub-ge/ses-1/dwi/sub-ge_ses-1_dwi": ("ge_1", "1", ""),
    "sub-ge/ses-1/fmap/sub-ge_ses-1_fieldmap": ("ge_1", "6", "_fieldmaphz"),
    "sub-ge/ses-1/fmap/sub-ge_ses-1_magnitude": ("ge_1", "6", ""),
    "sub-philips/ses-1/func/sub-philips_ses-1_task-asc_bold": ("philips_1", "201", ""),
    "sub-philips/ses-1/dwi/sub-philips_ses-1_dwi": ("philips_1", "601", ""),
    "sub-philips/ses-1/fmap/sub-philips_ses-1_fieldmap": ("philips_1", "801", "_e2_fieldmaphz"),
    "sub-philips/ses-1/fmap/sub-philips_ses-1_magnitude": ("philips_1", "801", "_e1"),
}
SIDECAR_FIELDS = ("EchoTime", "EchoTime1", "EchoTime2", "EchoNumber", "RepetitionTime", "PhaseEncodingDirection",
                  "ImageType", "SeriesNumber", "SeriesDescription", "Manufacturer")

# A lab's dcm2bids 3.x configuration for these sessions: criteria on sidecar fields, lists
# compared item by item with wildcards, numbers, ids that field maps' IntendedFor name, and one
# description that matches four series (runs).
LAB_CONFIG = {"descriptions": [
    {"id": "task_fa", "datatype": "func", "suffix": "bold", "custom_entities": "task-fa",
     "criteria": {"SeriesDescription": "func-bold_task-fa*",
                  "ImageType": ["ORIGINAL", "PRIMARY", "FMRI", "NONE", "MAGNITUDE"]}},
    {"datatype": "fmap", "suffix": "magnitude1",
     "criteria": {"SeriesDescription": "gre_field_*", "EchoNumber": 1,
                  "ImageType": ["ORIGINAL", "PRIMARY", "M", "*", "MAGNITUDE"]},
     "sidecar_changes": {"IntendedFor": ["task_fa"]}},
    {"datatype": "fmap", "suffix": "magnitude2",
     "criteria": {"SeriesDescription": "gre_field_*", "EchoNumber": 2,
                  "ImageType": ["ORIGINAL", "PRIMARY", "M", "*", "MAGNITUDE"]},
     "sidecar_changes": {"IntendedFor": ["task_fa"]}},
    {"datatype": "fmap", "suffix": "phasediff",
     "criteria": {"SeriesDescription": "gre_field_*", "ImageType": ["ORIGINAL", "PRIMARY", "P", "*", "PHASE"]},
     "sidecar_changes": {"IntendedFor": "task_fa"}},
    {"id": "pe", "datatype": "func", "suffix": "bold", "custom_entities": "task-pe",
     "criteria": {"SeriesDescription": "EPI PE=*"}},
    {"id": "asc", "datatype": "func", "suffix": "bold", "custom_entities": "task-asc",
     "criteria": {"SeriesDescription": "EPI_asc"}},
    {"id": "dti", "datatype": "dwi", "suffix": "dwi", "criteria": {"SeriesDescription": "dti_ax"}},
    {"datatype": "fmap", "suffix": "fieldmap",
     "criteria": {"SeriesDescription": "B0*", "ImageType": ["ORIGINAL", "PRIMARY", "*", "*", "FIELDMAPHZ"]},
     "sidecar_changes": {"IntendedFor": ["asc", "dti"]}},
    {"datatype": "fmap", "suffix": "magnitude", "criteria": {"SeriesDescription": "B0 NS", "EchoNumber": 1},
     "sidecar_changes": {"IntendedFor": ["asc", "dti"]}},
]}
# The sessions dcm2bids converts for the parity test: GRE field maps by echo and image type with
# IntendedFor, four runs of one description, a direct field map naming two ids.
PARITY_SESSIONS = ("siemens_xa30", "siemens_epi", "philips_1")
# The fixtures below download, convert and run dcm2bids for tens of seconds: one worker runs them all.
pytestmark = pytest.mark.xdist_group("bids_vendor")


@pytest.fixture(scope="module")
def vendor_sandbox():
    with Sandbox(vendor=True) as started:
        yield started


@pytest.fixture(scope="module")
def converted(vendor_sandbox, tmp_path_factory):
    """Every VENDOR session downloaded and converted by the default map into one dataset."""
    root = tmp_path_factory.mktemp("vendor")
    result = run_script(SESSION_SCRIPT, "--project", "VENDOR", "--all-sessions", "--bids", "bids",
                        cwd=root, sandbox=vendor_sandbox, timeout=180)
    return result, root


@pytest.fixture(scope="module")
def direct(converted, tmp_path_factory):
    """dcm2niix run directly on each downloaded scan folder the default tree names."""
    _, root = converted
    out_root = tmp_path_factory.mktemp("dcm2niix")

    def convert(session_and_scan: tuple[str, str]) -> None:
        session, scan_id = session_and_scan
        folder = scan_folder(root, session, scan_id)
        out = out_root / session / scan_id
        out.mkdir(parents=True)
        subprocess.run(["dcm2niix", "-z", "y", "-b", "y", "-f", "image", "-o", str(out), str(folder)],
                       check=True, capture_output=True, timeout=60)

    wanted = sorted({(session, scan_id) for session, scan_id, _ in DEFAULT_TREE.values()})
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(convert, wanted))
    return out_root


def scan_folder(root: Path, session: str, scan_id: str) -> Path:
    (folder,) = (root / "downloaded_data" / f"session-{session}").glob(f"scan-{scan_id}_*")
    return folder


def dataset_files(bids: Path) -> set[str]:
    """Every file of the dataset's subject folders."""
    return {path.relative_to(bids).as_posix() for path in bids.glob("sub-*/**/*") if path.is_file()}


def expected_files(stems) -> set[str]:
    endings = {"nii.gz", "json"}
    return {f"{stem}.{ending}" for stem in stems
            for ending in (endings | {"bval", "bvec"} if stem.endswith("_dwi") else endings)}


def test_every_vendor_session_converts_every_image_the_default_map_names(converted):
    result, root = converted
    assert result.returncode == 0, result.stderr
    scans_tables = {f"{stem.rsplit('/', 2)[0]}/{stem.rsplit('/', 2)[0].replace('/', '_')}_scans.tsv"
                    for stem in DEFAULT_TREE}
    assert dataset_files(root / "bids") == expected_files(DEFAULT_TREE) | scans_tables
    assert "Traceback" not in result.stderr
    for scan in ("11 (DWI_dir80_PA_ADC) of siemens_xa30: a derived image",
                 "601 (dti_ax) of philips_1, image 601_session-philips_1_WIP_dti_ax_20180517113239_ADC.nii.gz: "
                 "a derived image"):
        assert f"scan {scan}" in result.stderr   # named in the note of what was left out


def test_each_image_is_what_dcm2niix_makes_of_the_same_folder(converted, direct):
    _, root = converted
    for stem, (session, scan_id, suffix) in DEFAULT_TREE.items():
        ours = root / "bids" / f"{stem}.nii.gz"
        theirs = direct / session / scan_id / f"image{suffix}.nii.gz"
        our_image, their_image = nibabel.load(ours), nibabel.load(theirs)
        assert our_image.shape == their_image.shape, stem
        assert numpy.array_equal(our_image.get_fdata(), their_image.get_fdata()), stem
        assert numpy.allclose(our_image.affine, their_image.affine), stem
        our_sidecar = json.loads((root / "bids" / f"{stem}.json").read_text())
        their_sidecar = json.loads(theirs.with_name(f"image{suffix}.json").read_text())
        for field in SIDECAR_FIELDS:
            assert our_sidecar.get(field) == their_sidecar.get(field), (stem, field)
        if stem.endswith("_dwi"):
            for ending in ("bval", "bvec"):
                our_values = (root / "bids" / f"{stem}.{ending}").read_text().split()
                assert our_values == theirs.with_name(f"image.{ending}").read_text().split(), (stem, ending)


def test_the_real_series_carry_what_bids_apps_need(converted):
    """Both echo times on every phase difference, a 4D BOLD with its TR and task, Hz on direct
    field maps."""
    _, root = converted
    bids = root / "bids"
    for stem in DEFAULT_TREE:
        sidecar = json.loads((bids / f"{stem}.json").read_text())
        if stem.endswith("_phasediff"):
            assert 0 < sidecar["EchoTime1"] < sidecar["EchoTime2"], stem
        if stem.endswith("_fieldmap"):
            assert sidecar["Units"] == "Hz", stem
        if stem.endswith("_bold"):
            assert nibabel.load(bids / f"{stem}.nii.gz").ndim == 4 and sidecar["RepetitionTime"] > 0
            assert sidecar["TaskName"] == stem.split("task-")[1].split("_")[0]


def first_dicom(root: Path, session: str, scan_id: str):
    folder = scan_folder(root, session, scan_id)
    return pydicom.dcmread(next(path for path in sorted(folder.rglob("*")) if path.is_file()
                                and not path.name.startswith(".")), stop_before_pixels=True)


def test_each_session_lists_its_images_with_acq_time_and_participants_have_age_and_sex(converted):
    _, root = converted
    bids = root / "bids"
    for stem, (session, scan_id, suffix) in DEFAULT_TREE.items():
        folder = stem.rsplit("/", 2)[0]
        table = (bids / folder / f"{folder.replace('/', '_')}_scans.tsv").read_text().splitlines()
        assert table[0] == "filename\tacq_time"
        rows = dict(line.split("\t") for line in table[1:])
        sidecar = json.loads((bids / f"{stem}.json").read_text())
        dicom = first_dicom(root, session, scan_id)
        date = next(str(dicom.get(key)) for key in ("AcquisitionDate", "SeriesDate", "StudyDate") if dicom.get(key))
        # the DICOM's date, the sidecar's time (n/a where dcm2niix found none)
        expected = f"{date[:4]}-{date[4:6]}-{date[6:]}T{sidecar['AcquisitionTime']}" \
            if "AcquisitionTime" in sidecar else "n/a"
        assert rows[stem.split("/", 2)[2] + ".nii.gz"] == expected, stem
    participants = [line.split("\t") for line in (bids / "participants.tsv").read_text().splitlines()]
    assert participants[0] == ["participant_id", "age", "sex"]
    for label, age, sex in participants[1:]:
        # a subject of several sessions: as one of its sessions' DICOM says
        dicoms = [first_dicom(root, session, scan_id) for stem, (session, scan_id, _) in DEFAULT_TREE.items()
                  if stem.startswith(label + "/")]
        assert sex in {dicom.get("PatientSex") or "n/a" for dicom in dicoms}, label
        assert age in {str(int(dicom.PatientAge[:3])) if str(dicom.get("PatientAge", "")).strip("0Y") else "n/a"
                       for dicom in dicoms}, label
    assert any(row[1:] != ["n/a", "n/a"] for row in participants[1:])   # the vendor data hold some
    assert {"age", "sex"} <= set(json.loads((bids / "participants.json").read_text()))


def test_field_maps_are_intended_for_the_session_s_func_and_dwi_images(converted):
    _, root = converted
    bids = root / "bids"
    for session_folder in bids.glob("sub-*/ses-*"):
        targets = {f"bids::{path.relative_to(bids).as_posix()}"
                   for datatype in ("func", "dwi") for path in session_folder.glob(f"{datatype}/*.nii.gz")}
        for sidecar_path in session_folder.glob("fmap/*.json"):
            intended = json.loads(sidecar_path.read_text()).get("IntendedFor", [])
            intended = [intended] if isinstance(intended, str) else intended
            assert set(intended) == targets, sidecar_path.name
    # the sessions with a field map and something to correct, and what the field maps name
    assert json.loads((bids / "sub-siemens/ses-xa30/fmap/sub-siemens_ses-xa30_phasediff.json").read_text())[
        "IntendedFor"] == ["bids::sub-siemens/ses-xa30/func/sub-siemens_ses-xa30_task-fa_run-1_bold.nii.gz"]
    assert sorted(json.loads((bids / "sub-philips/ses-1/fmap/sub-philips_ses-1_fieldmap.json").read_text())[
        "IntendedFor"]) == ["bids::sub-philips/ses-1/dwi/sub-philips_ses-1_dwi.nii.gz",
                            "bids::sub-philips/ses-1/func/sub-philips_ses-1_task-asc_bold.nii.gz"]
    assert sorted(json.loads((bids / "sub-ge/ses-1/fmap/sub-ge_ses-1_fieldmap.json").read_text())[
        "IntendedFor"]) == ["bids::sub-ge/ses-1/dwi/sub-ge_ses-1_dwi.nii.gz"]


def test_the_official_validator_finds_no_error_in_the_vendor_dataset(converted):
    _, root = converted
    result = subprocess.run(["bids-validator-deno", "--format", "json", str(root / "bids")],
                            capture_output=True, text=True, timeout=120)
    issues = json.loads(result.stdout)["issues"]["issues"]
    assert [issue for issue in issues if issue.get("severity") == "error"] == []


# --- parity with dcm2bids ---------------------------------------------------------------------
# Compared: every file below the subject folders, and every field map's IntendedFor. Not
# compared: what each tool writes at the dataset root (dcm2bids: participants.tsv, code/ and
# tmp_dcm2bids/; we: dataset_description.json, participants.tsv and .json, README), which is
# bookkeeping, not the conversion.

@pytest.fixture(scope="module")
def parity(vendor_sandbox, converted, tmp_path_factory):
    """The lab's configuration through dcm2bids (one run per session, each into a folder of its
    own, side by side) and through --bids-config, on the same downloaded folders."""
    _, root = converted
    work = tmp_path_factory.mktemp("parity")
    config = work / "config.json"
    config.write_text(json.dumps(LAB_CONFIG, indent=2))
    theirs = {}
    for session in PARITY_SESSIONS:
        subject = SESSIONS[session]
        theirs[session] = subprocess.Popen(
            ["dcm2bids", "-d", str(root / "downloaded_data" / f"session-{session}"), "-p", subject,
             "-s", session.removeprefix(f"{subject}_"), "-c", str(config), "-o", str(work / session)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work)
    ours = [run_script(SESSION_SCRIPT, "--project", "VENDOR", "--subject", SESSIONS[session],
                       "--session", session, "--bids-config", str(config), "--bids", str(work / "ours"),
                       cwd=root, sandbox=vendor_sandbox)
            for session in PARITY_SESSIONS]
    for session, run in theirs.items():
        output, _ = run.communicate(timeout=180)
        assert run.returncode == 0, output
    return ours, work


def test_bids_config_names_what_dcm2bids_names(parity):
    ours, work = parity
    for result in ours:
        assert result.returncode == 0, result.stderr
    theirs = set().union(*(dataset_files(work / session) for session in PARITY_SESSIONS))
    assert dataset_files(work / "ours") == theirs
    # the configuration's four runs of one description, numbered as dcm2bids numbers them
    assert {name for name in theirs if "task-pe_run-" in name and name.endswith(".nii.gz")} == \
        {f"sub-siemens/ses-epi/func/sub-siemens_ses-epi_task-pe_run-0{run}_bold.nii.gz" for run in range(1, 5)}


def test_bids_config_writes_the_intended_for_dcm2bids_writes(parity):
    _, work = parity
    compared = 0
    for session in PARITY_SESSIONS:
        for sidecar in (work / session).glob("sub-*/ses-*/fmap/*.json"):
            name = sidecar.relative_to(work / session)
            expected = json.loads(sidecar.read_text()).get("IntendedFor")
            assert json.loads((work / "ours" / name).read_text()).get("IntendedFor") == expected, name
            compared += expected is not None
    assert compared == 5   # three GRE field map images, the Philips field map and its magnitude
