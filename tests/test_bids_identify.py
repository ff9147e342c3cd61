"""The default rules of --bids without a configuration: ReproIn names read as heudiconv's reproin
heuristic reads them, each image identified by its sidecar (fields as dcm2niix writes them for
real scanners: tests/data's vendor series), labels a person would choose, and 3D BOLD left out."""
from __future__ import annotations

import pytest

import common
from xnat_download.bids_identify import MAX_B, NAMING_FIELDS, RULES, VOLUMES, identify
from xnat_download.bids_names import Image
from xnat_download.bids_rules import name_images
from xnat_download.bids_reproin import parse_reproin
from xnat_download.catalog import Scan, Session

SESSION = Session(id="E1", label="s1", subject_label="p1")


@pytest.mark.parametrize("name, expected", [
    ("func-bold_task-rest_run-1", ("func", "bold", (("task", "rest"), ("run", "1")))),
    ("anat-T1w_acq-tfl", ("anat", "T1w", (("acq", "tfl"),))),
    ("fmap-epi_dir-AP", ("fmap", "epi", (("dir", "AP"),))),
    ("dwi_dir-PA", ("dwi", "dwi", (("dir", "PA"),))),
    ("func_task-nback__mb4 test", ("func", "bold", (("task", "nback"),))),   # after __: a comment
    ("PU:anat-T2w", ("anat", "T2w", ())),                                      # a scanner's prefix
    ("func-bold_task-two_words_acq-p2.5", ("func", "bold", (("task", "two"), ("acq", "p25")))),
    ("fmap_acq-3mm", ("fmap", None, (("acq", "3mm"),))),
    ("anat-mprage", ("anat", None, ())),   # not a BIDS suffix: the images decide
])
def test_reproin_names_give_the_datatype_suffix_and_entities(name, expected):
    parsed = parse_reproin(name)
    assert (parsed.datatype, parsed.suffix, parsed.entities) == expected


@pytest.mark.parametrize("name", ["t1_mprage_sag", "EPI PE=AP", "fMRI_rest", "DWI_dir80_AP", ""])
def test_other_names_are_not_reproin(name):
    assert parse_reproin(name) is None


# Sidecar fields as dcm2niix writes them for tests/data's vendor series (README there).
SIEMENS_BOLD = {"ImageType": ["ORIGINAL", "PRIMARY", "FMRI", "NONE", "MAGNITUDE"], "ScanningSequence": "EP",
                "SequenceVariant": "SK\\SS", "SequenceName": "epfid2d1_64", "MRAcquisitionType": "2D",
                "EchoTime": 0.03, "RepetitionTime": 1, "PhaseEncodingDirection": "j-", VOLUMES: 6}
PHILIPS_BOLD = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "FFE", "M", "FFE", "MAGNITUDE"], "ScanningSequence": "GR",
                "SequenceVariant": "SK", "SequenceName": "FEEPI", "MRAcquisitionType": "2D", "EchoTime": 0.03,
                "RepetitionTime": 2, VOLUMES: 3}
GE_DWI = {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "MAGNITUDE"], "ScanningSequence": "EP\\SE",
          "SequenceName": "epi2", "EchoTime": 0.1236, "RepetitionTime": 1, VOLUMES: 7, MAX_B: 1000}
SE_EPI = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"], "ScanningSequence": "EP",
          "SequenceVariant": "SK", "SequenceName": "epse2d1_86", "EchoTime": 0.066, "RepetitionTime": 8,
          "PhaseEncodingDirection": "j", "TotalReadoutTime": 0.05, VOLUMES: 3}
GE_B0 = {"ImageType": ["ORIGINAL", "PRIMARY", "OTHER", "FIELDMAPHZ"], "ScanningSequence": "RM",
         "SequenceName": "B0rf", "Units": "Hz", VOLUMES: 1}
MPRAGE = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"], "ScanningSequence": "GR\\IR",
          "SequenceVariant": "SK\\SP\\MP", "SequenceName": "*tfl3d1_16ns", "MRAcquisitionType": "3D",
          "EchoTime": 0.00293, "RepetitionTime": 2.3, "InversionTime": 0.9, VOLUMES: 1}
T2_TSE = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "ScanningSequence": "SE", "SequenceVariant": "SK\\SP",
          "SequenceName": "*spc_314ns", "MRAcquisitionType": "3D", "EchoTime": 0.408, "RepetitionTime": 3.2,
          VOLUMES: 1}
FLAIR = {**T2_TSE, "ScanningSequence": "SE\\IR", "InversionTime": 1.8, "EchoTime": 0.386, "RepetitionTime": 5}


@pytest.mark.parametrize("sidecar, expected", [
    (SIEMENS_BOLD, ("func", "bold")), (PHILIPS_BOLD, ("func", "bold")), (GE_DWI, ("dwi", "dwi")),
    (SE_EPI, ("fmap", "epi")), (GE_B0, ("fmap", "fieldmap")), (MPRAGE, ("anat", "T1w")),
    (T2_TSE, ("anat", "T2w")), (FLAIR, ("anat", "FLAIR")),
])
def test_an_image_is_identified_by_its_sidecar_not_its_name(sidecar, expected):
    assert identify(sidecar, "series 7", "") == expected


def test_a_localizer_and_an_unknown_image_are_left_out_with_the_reason():
    assert identify(MPRAGE, "AAHead_Scout_32ch", "") == "a localizer"
    assert "not an image" in identify({"ScanningSequence": "RM", VOLUMES: 1}, "spectro", "")


def test_every_field_a_rule_reads_is_kept_in_the_record():
    assert {field for rule in RULES for field in rule.reads} <= set(NAMING_FIELDS)


def image(scan_id: str, description: str, sidecar: dict, suffix: str = "") -> Image:
    sidecar = {**sidecar, "SeriesDescription": description, "ProtocolName": description,
               "SeriesNumber": int(scan_id)}
    return Image(Scan(id=scan_id, type=description, series_description=description),
                 f"{int(scan_id):03d}_{description}{suffix}", sidecar)


def names(images: list[Image]) -> list[str]:
    return [item.name.path().split("/", 2)[2] if item.name else item.why
            for item in name_images(SESSION, images, common.BIDS_MAP)]


def test_a_session_named_by_reproin_keeps_its_entities_and_repeats_become_runs():
    images = [image("2", "anat-T1w_acq-tfl", MPRAGE),
              image("3", "func-bold_task-rest_run-1", SIEMENS_BOLD),
              image("4", "func-bold_task-rest_run-2", SIEMENS_BOLD),
              image("5", "fmap-epi_dir-AP", SE_EPI), image("6", "fmap-epi_dir-PA", SE_EPI),
              image("7", "func-bold_task-faces", SIEMENS_BOLD), image("8", "func-bold_task-faces", SIEMENS_BOLD)]
    assert names(images) == [
        "anat/sub-p1_ses-s1_acq-tfl_T1w", "func/sub-p1_ses-s1_task-rest_run-1_bold",
        "func/sub-p1_ses-s1_task-rest_run-2_bold", "fmap/sub-p1_ses-s1_dir-AP_epi",
        "fmap/sub-p1_ses-s1_dir-PA_epi", "func/sub-p1_ses-s1_task-faces_run-1_bold",
        "func/sub-p1_ses-s1_task-faces_run-2_bold"]


GRE_MAGNITUDE = {"ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "ScanningSequence": "GR",
                 "SequenceName": "*fm2d2r", "EchoNumber": 1, VOLUMES: 1}
GRE_PHASE = {**GRE_MAGNITUDE, "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"], "EchoNumber": 2,
             "EchoTime1": 0.00492}


def test_heudiconv_run_markers_count_runs_across_the_session():
    """_run+ is the session's next run, but a phase series right after its magnitudes keeps theirs."""
    images = [image("3", "fmap_run+", GRE_MAGNITUDE, "_e1"), image("4", "fmap_run+", GRE_PHASE, "_ph"),
              image("5", "func_task-b_run+", SIEMENS_BOLD), image("6", "func_task-c_run=", SIEMENS_BOLD)]
    assert names(images) == ["fmap/sub-p1_ses-s1_run-1_magnitude1", "fmap/sub-p1_ses-s1_run-1_phasediff",
                             "func/sub-p1_ses-s1_task-b_run-2_bold", "func/sub-p1_ses-s1_task-c_run-2_bold"]


def test_unnamed_series_are_identified_and_labelled_as_a_person_would():
    images = [image("2", "Sag 3D", MPRAGE), image("3", "fcMRI", PHILIPS_BOLD),
              image("4", "mb6_faces_AP", SIEMENS_BOLD), image("5", "mb6_faces_PA", {**SIEMENS_BOLD,
                                                                                     "PhaseEncodingDirection": "j"}),
              image("6", "Ax Diffusion AP", GE_DWI), image("7", "Ax Diffusion PA", GE_DWI),
              image("8", "FM_cv12_2_3mm", {**SE_EPI, "PhaseEncodingDirection": "j-"}),
              image("9", "FM_cv12_2_3mm", SE_EPI), image("10", "GE B0", GE_B0, "_fieldmaphz")]
    assert names(images) == [
        "anat/sub-p1_ses-s1_T1w", "func/sub-p1_ses-s1_task-rest_bold", "func/sub-p1_ses-s1_task-faces_dir-AP_bold",
        "func/sub-p1_ses-s1_task-faces_dir-PA_bold", "dwi/sub-p1_ses-s1_dir-AP_dwi",
        "dwi/sub-p1_ses-s1_dir-PA_dwi", "fmap/sub-p1_ses-s1_dir-AP_epi", "fmap/sub-p1_ses-s1_dir-PA_epi",
        "fmap/sub-p1_ses-s1_fieldmap"]


def test_one_direction_in_the_session_gives_no_dir_and_a_3d_bold_is_left_out():
    images = [image("3", "rest_AP", SIEMENS_BOLD), image("6", "dwi_64_AP", GE_DWI),
              image("9", "rest_vol1", {**SIEMENS_BOLD, VOLUMES: 1})]
    found = names(images)
    assert found[:2] == ["func/sub-p1_ses-s1_task-rest_bold", "dwi/sub-p1_ses-s1_dwi"]
    assert found[2].startswith("one volume (3D) of a BOLD series")


def test_arterial_spin_labelling_is_left_out_with_the_reason():
    asl = {**SIEMENS_BOLD, "ImageType": ["ORIGINAL", "PRIMARY", "ASL", "NONE", "MAGNITUDE"], VOLUMES: 7}
    assert names([image("25", "asl_2d_tra", asl)])[0].startswith("arterial spin labelling")


def test_a_series_of_bold_phase_images_takes_part_phase_beside_its_magnitude_series():
    phase = {**SIEMENS_BOLD, "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND", "PHASE"]}
    assert names([image("5", "bold_faces", SIEMENS_BOLD), image("6", "bold_faces_Pha", phase, "_ph")]) == [
        "func/sub-p1_ses-s1_task-faces_bold", "func/sub-p1_ses-s1_task-faces_part-phase_bold"]


@pytest.mark.parametrize("description, task", [
    ("cmrr_mbep2d_bold_mb2_1p5mm_AP", "cmrrmbep2dboldmb21p5mm"),   # only settings: the description
    ("tfMRI_GAMBLING_AP", "gambling"),
    ("fMRI_stop_signal_3x3x3", "stopsignal"),
    ("Resting State fMRI", "rest"),
])
def test_a_task_label_is_made_from_the_description(description, task):
    assert names([image("3", description, SIEMENS_BOLD)]) == [f"func/sub-p1_ses-s1_task-{task}_bold"]


def test_a_field_map_named_only_as_one_is_told_gre_or_spin_echo_by_its_images():
    gre = {**GRE_MAGNITUDE, "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"]}
    assert names([image("5", "fmap_AP", SE_EPI), image("6", "fmap_gre", gre, "_e1")]) == [
        "fmap/sub-p1_ses-s1_dir-AP_epi", "fmap/sub-p1_ses-s1_magnitude1"]


def test_dicom_ages_and_acquisition_times_as_bids_writes_them():
    from xnat_download.bids_dicom import acq_time, age_in_years
    assert [age_in_years(text) for text in ("045Y", "018M", "000Y", "", "4Y")] == [45, 1.5, None, None, 4]
    assert acq_time("2024-01-15", "10:15:00.500000") == "2024-01-15T10:15:00.500000"
    assert acq_time(None, "10:15:00") == acq_time("2024-01-15", None) == "n/a"


def test_what_bids_requires_of_spin_echo_field_maps_and_dwi_leaves_out_an_image_without_it():
    no_readout = {key: value for key, value in SE_EPI.items() if key != "TotalReadoutTime"}
    no_bvalues = {key: value for key, value in GE_DWI.items() if key != MAX_B}
    assert names([image("5", "se_epi_AP", no_readout), image("6", "dwi_b0", no_bvalues)]) == [
        "a spin-echo field map without TotalReadoutTime in its sidecar, which BIDS requires of one",
        "a diffusion image without b-values (dcm2niix wrote no .bval), which BIDS requires"]


def test_a_multiband_run_and_its_sbref_share_their_task_and_directions():
    pa = {**SIEMENS_BOLD, "PhaseEncodingDirection": "j"}
    images = [image("3", "cmrr_mbep2d_bold_AP_SBRef", {**SIEMENS_BOLD, VOLUMES: 1}),
              image("4", "cmrr_mbep2d_bold_AP", SIEMENS_BOLD),
              image("5", "cmrr_mbep2d_bold_PA_SBRef", {**pa, VOLUMES: 1}), image("6", "cmrr_mbep2d_bold_PA", pa)]
    assert names(images) == [f"func/sub-p1_ses-s1_task-cmrrmbep2dbold_dir-{d}_{s}"
                             for d in ("AP", "PA") for s in ("sbref", "bold")]


def dicom_file(path, sop_class: str, pixels: bool) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = pydicom.Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    dataset.PatientAge, dataset.PatientSex, dataset.StudyDate = "031Y", "F", "20240115"
    if pixels:
        dataset.Rows = dataset.Columns = 2
        dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 16, 15, 0
        dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, "MONOCHROME2"
        dataset.PixelData = bytes(8)
    dataset.save_as(str(path), enforce_file_format=True)


def test_a_series_of_valid_dicom_without_images_is_told_from_a_broken_one(tmp_path):
    from xnat_download.bids_dicom import session_facts, why_no_image
    raw, image_series, broken = (tmp_path / name for name in ("raw", "image", "broken"))
    for folder in (raw, image_series, broken):
        folder.mkdir()
    dicom_file(raw / "1.dcm", "1.2.840.10008.5.1.4.1.1.66", pixels=False)
    dicom_file(raw / "2.dcm", "1.3.12.2.1107.5.9.1", pixels=False)   # a vendor's private non-image class
    dicom_file(image_series / "1.dcm", "1.2.840.10008.5.1.4.1.1.4", pixels=True)
    dicom_file(broken / "1.dcm", "1.2.840.10008.5.1.4.1.1.66", pixels=False)
    (broken / "2.dcm").write_bytes(b"not DICOM at all")
    assert why_no_image(raw) == "valid DICOM that holds no image (Raw Data Storage, no pixel data)"
    assert why_no_image(image_series) == why_no_image(broken) == ""   # then dcm2niix's failure stands
    assert session_facts(raw) == {"date": "2024-01-15", "age": 31, "sex": "F"}


@pytest.mark.parametrize("sidecar", [SIEMENS_BOLD, PHILIPS_BOLD, GE_DWI, SE_EPI, GE_B0, MPRAGE, T2_TSE, FLAIR])
def test_the_fields_the_record_keeps_identify_an_image_as_its_whole_sidecar_does(sidecar):
    """A rerun names recorded images from the fields kept (NAMING_FIELDS), unconverted."""
    whole = {**sidecar, "SeriesDescription": "series 7", "Manufacturer": "X", "SliceTiming": [0, 1]}
    kept = {key: value for key, value in whole.items() if key in NAMING_FIELDS}
    assert identify(kept) == identify(whole)
    assert names([image("7", "series 7", kept)]) == names([image("7", "series 7", whole)])
