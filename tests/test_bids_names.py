"""xnat_download.bids_names: labels, tasks, the default map, dcm2bids criteria, run numbers."""
from __future__ import annotations

import pytest

import common
from xnat_download.bids_config import BidsConfig, Description
from xnat_download.bids_names import Image, session_label, subject_label, task_of
from xnat_download.bids_rules import name_images
from xnat_download.catalog import Scan, Session

SESSION = Session(id="E1", label="sub-1_ses-1", subject_label="sub-1")
MAGNITUDE = ["ORIGINAL", "PRIMARY", "M", "ND"]
PHASE = ["ORIGINAL", "PRIMARY", "P", "ND"]


@pytest.mark.parametrize("subject, session, expected", [
    ("sub-2", "sub-2_ses-1", ("2", "1")),
    ("sub-01", "sub-01_ses-pre", ("01", "pre")),
    ("P 7", "P 7 visit 2", ("P7", "visit2")),
    ("sub-x_y", "baseline", ("xy", "baseline")),
])
def test_subject_and_session_labels_are_cleaned(subject, session, expected):
    found = Session(id="E1", label=session, subject_label=subject)
    assert (subject_label(found), session_label(found)) == expected


@pytest.mark.parametrize("scan_type, description, task", [
    ("func_rest", "bold_rest_ap", "rest"),
    ("bold", "task-nback_run1", "nback"),
    ("func_faces", "", "faces"),
    ("fMRI", "resting state", "rest"),
    ("fMRI", "interest", "interest"),
    ("fcMRI", "", "rest"),
    ("rs_fMRI_AP", "", "rest"),
    ("cmrr_mbep2d_bold_faces_run1", "", "faces"),
])
def test_the_task_comes_from_the_type_or_description(scan_type, description, task):
    assert task_of(Scan(id="3", type=scan_type, series_description=description)) == task


def image(scan_id: str, scan_type: str, description: str = "", suffix: str = "", **sidecar) -> Image:
    sidecar.setdefault("ImageType", MAGNITUDE)
    sidecar.setdefault("SeriesNumber", int(scan_id))
    sidecar.setdefault("SeriesDescription", description or scan_type)
    stem = f"{int(scan_id):03d}_{scan_type}{suffix}"
    return Image(Scan(id=scan_id, type=scan_type, series_description=description), stem,
                 {**sidecar, "SidecarFilename": f"{stem}.json"})


def names(images: list[Image], rules=common.BIDS_MAP) -> list[str | None]:
    """Each image's path below the session folder, or why it has none."""
    return [item.name.path().split("/", 2)[2] if item.name else item.why
            for item in name_images(SESSION, images, rules)]


@pytest.mark.parametrize("scan_type, description, expected", [
    ("T1", "t1_mprage_sag", "anat/sub-1_ses-1_T1w"),
    ("flair", "t2_flair_tra", "anat/sub-1_ses-1_FLAIR"),
    ("T2", "t2_space", "anat/sub-1_ses-1_T2w"),
    ("dwi", "dwi_64dir", "dwi/sub-1_ses-1_dwi"),
    ("func_rest", "bold_rest_ap", "func/sub-1_ses-1_task-rest_bold"),
    ("SBRef", "rest_bold_SBRef", "func/sub-1_ses-1_task-rest_sbref"),
    ("SBRef", "dwi_AP_SBRef", "dwi/sub-1_ses-1_sbref"),
    ("localizer", "t1_localizer", "skipped by the default map"),
    # no row names it, and its sidecar says nothing of what it is: left out, with the reason
    ("swi", "swi_tra", "not an image BIDS names without a rule (T1w, T2w, FLAIR, BOLD, DWI or a field map)"),
])
def test_the_default_map_first_match_wins(scan_type, description, expected):
    assert names([image("1", scan_type, description)]) == [expected]


def test_a_siemens_gre_field_map_magnitudes_by_echo_and_the_phase_difference_intended_for_the_session():
    images = [image("7", "func_rest", "bold_rest"),
              image("8", "gre_field_mapping", suffix="_e1", EchoNumber=1),
              image("8", "gre_field_mapping", suffix="_e2", EchoNumber=2),
              image("9", "gre_field_mapping", suffix="_e2_ph", EchoNumber=2, ImageType=PHASE,
                    EchoTime1=0.00492, EchoTime2=0.00738),
              image("10", "dwi", "dwi_PA")]
    named = name_images(SESSION, images, common.BIDS_MAP)
    assert [item.name.stem() for item in named] == [
        "sub-1_ses-1_task-rest_bold", "sub-1_ses-1_magnitude1", "sub-1_ses-1_magnitude2",
        "sub-1_ses-1_phasediff", "sub-1_ses-1_dwi"]
    intended = ["bids::sub-1/ses-1/dwi/sub-1_ses-1_dwi.nii.gz",
                "bids::sub-1/ses-1/func/sub-1_ses-1_task-rest_bold.nii.gz"]
    assert [item.changes.get("IntendedFor") for item in named] == [None, intended, intended, intended, None]
    assert named[0].changes == {"TaskName": "rest"}


def test_direct_field_maps_spin_echo_field_maps_and_derived_images():
    images = [image("6", "B0map", suffix=""), image("6", "B0map", suffix="_fieldmaphz", Units="Hz"),
              image("12", "SpinEchoFieldMap_AP"), image("13", "se_epi", PhaseEncodingDirection="j"),
              image("14", "ep2d_diff", suffix="_ADC", ImageType=["DERIVED", "PRIMARY", "ADC"]),
              image("15", "dwi"), image("15", "dwi", suffix="_ADC", ImageType=[])]
    assert names(images) == ["fmap/sub-1_ses-1_magnitude", "fmap/sub-1_ses-1_fieldmap",
                             "fmap/sub-1_ses-1_dir-AP_epi", "fmap/sub-1_ses-1_dir-PA_epi",
                             "a derived image", "dwi/sub-1_ses-1_dwi", "a derived image"]


def test_multi_echo_bold_and_a_series_of_magnitude_and_phase():
    images = [image("3", "func_task-nback", suffix=f"_e{echo}", EchoNumber=echo) for echo in (1, 2, 3)]
    images += [image("4", "bold_rest", suffix="_ph", ImageType=PHASE), image("4", "bold_rest")]
    assert names(images) == [f"func/sub-1_ses-1_task-nback_echo-{echo}_bold" for echo in (1, 2, 3)] + [
        "func/sub-1_ses-1_task-rest_part-phase_bold", "func/sub-1_ses-1_task-rest_part-mag_bold"]


def test_with_the_default_map_runs_follow_natural_scan_order_and_pair_field_map_parts():
    images = [image("11", "func_rest"), image("3", "func_rest"), image("2", "T1"),
              image("20", "fmap", suffix="_e1", EchoNumber=1), image("21", "fmap", suffix="_ph", ImageType=PHASE),
              image("5", "fmap", suffix="_e1", EchoNumber=1), image("6", "fmap", suffix="_ph", ImageType=PHASE)]
    assert names(images) == ["func/sub-1_ses-1_task-rest_run-2_bold", "func/sub-1_ses-1_task-rest_run-1_bold",
                             "anat/sub-1_ses-1_T1w", "fmap/sub-1_ses-1_run-2_magnitude1",
                             "fmap/sub-1_ses-1_run-2_phasediff", "fmap/sub-1_ses-1_run-1_magnitude1",
                             "fmap/sub-1_ses-1_run-1_phasediff"]


CONFIG = BidsConfig(descriptions=(
    Description("fmap", "magnitude1", {"SeriesDescription": "gre_field*", "EchoNumber": 1}),
    Description("fmap", "phasediff", {"ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]},
                sidecar_changes={"IntendedFor": ["id_rest"]}),
    Description("func", "bold", {"SeriesDescription": "*rest*"}, ("task-rest",), {"TaskName": "rest"},
                id="id_rest"),
    Description("anat", "T1w", {"SeriesDescription": "t1*"}),
    Description("anat", "T1w", {"SeriesDescription": "*mprage*"}, ("acq-x",)),
))


def test_a_configuration_names_each_image_as_dcm2bids_does():
    images = [image("8", "x", "gre_field_mapping", "_e1", EchoNumber=1, AcquisitionTime="10:00:00"),
              image("8", "x", "gre_field_mapping", "_e2", EchoNumber=2, AcquisitionTime="10:00:00"),
              image("9", "x", "gre_field_mapping", "_ph", ImageType=PHASE, AcquisitionTime="10:00:01"),
              image("11", "x", "bold_rest", AcquisitionTime="10:20:00"),
              image("3", "x", "bold_rest", AcquisitionTime="10:10:00"),
              image("2", "x", "t1_mprage"), image("12", "x", "t1_fast"),
              Image(Scan(id="13", type="dwi"), "013_dwi_ADC", {})]
    named = name_images(SESSION, images, CONFIG)
    assert [item.name.path().split("/", 2)[2] if item.name else item.why for item in named] == [
        "fmap/sub-1_ses-1_magnitude1", "no description matches", "fmap/sub-1_ses-1_phasediff",
        "func/sub-1_ses-1_task-rest_run-02_bold", "func/sub-1_ses-1_task-rest_run-01_bold",
        "2 descriptions match", "anat/sub-1_ses-1_T1w", "dcm2niix wrote no sidecar for it"]
    assert named[2].changes == {"IntendedFor": [
        "bids::sub-1/ses-1/func/sub-1_ses-1_task-rest_run-01_bold.nii.gz",
        "bids::sub-1/ses-1/func/sub-1_ses-1_task-rest_run-02_bold.nii.gz"]}
    assert named[3].changes == {"TaskName": "rest"}


def test_a_configurations_dup_method_relative_uris_and_case():
    config = BidsConfig(CONFIG.descriptions, dup_method="dup", bids_uri="relative", case_sensitive=False)
    images = [image("3", "x", "BOLD_REST", AcquisitionTime="10:10:00"),
              image("4", "x", "bold_rest", AcquisitionTime="10:20:00"),
              image("9", "x", "gre_field_mapping", "_ph", ImageType=PHASE, AcquisitionTime="10:30:00")]
    named = name_images(SESSION, images, config)
    assert [item.name.stem() for item in named] == [
        "sub-1_ses-1_task-rest_dup-01_bold", "sub-1_ses-1_task-rest_bold", "sub-1_ses-1_phasediff"]
    assert named[2].changes == {"IntendedFor": ["ses-1/func/sub-1_ses-1_task-rest_dup-01_bold.nii.gz",
                                                "ses-1/func/sub-1_ses-1_task-rest_bold.nii.gz"]}
