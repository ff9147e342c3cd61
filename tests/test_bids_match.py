"""xnat_download.bids_match: dcm2bids 3.3's criteria, acquisition order, entity order, run and
dup numbers, and ids resolved in sidecar_changes."""
from __future__ import annotations

import pytest

from xnat_download.bids_match import (criteria_match, dcm2bids_stem, in_acquisition_order,
                                      numbered_duplicates, resolved_changes)

SIDECAR = {"SeriesDescription": "bold_rest_AP", "EchoTime": 0.03, "EchoNumber": 2,
           "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"], "SidecarFilename": "003_x_e2.json"}


@pytest.mark.parametrize("criteria, matches", [
    ({"SeriesDescription": "*rest*"}, True),
    ({"SeriesDescription": "*REST*"}, False),                # fnmatch keeps case by default
    ({"EchoTime": 0.03, "EchoNumber": 2}, True),             # numbers compare as their text
    ({"EchoNumber": "2"}, True),
    ({"EchoNumber": 2.0}, False),                            # "2.0" is not "2", as in dcm2bids
    ({"ImageType": ["ORIGINAL", "*", "M", "ND"]}, True),     # a list item by item
    ({"ImageType": ["ORIGINAL", "PRIMARY"]}, False),         # of the same length only
    ({"ImageType": "ORIGINAL*"}, False),                     # a list never matches a string
    ({"SeriesDescription": {"any": ["t1*", "bold*"]}}, True),
    ({"ImageType": {"any": [["DERIVED", "*", "*", "*"], ["ORIGINAL", "*", "*", "*"]]}}, True),
    ({"EchoTime": {"lt": 0.05}}, True),
    ({"EchoTime": {"gt": 0.05}}, False),
    ({"EchoTime": {"btwe": [0.03, 0.04]}}, True),
    ({"EchoTime": {"btw": [0.03, 0.04]}}, False),
    ({"SidecarFilename": "*_e2*"}, True),
    ({"ProtocolName": "*"}, False),                          # a missing field reads as ""...
    ({"ProtocolName": ""}, True),                            # ...which an empty pattern matches
    ({}, False),                                             # a description without criteria
])
def test_criteria_are_compared_as_dcm2bids_compares_them(criteria, matches):
    assert criteria_match(criteria, SIDECAR) is matches


def test_case_insensitive_fnmatch_and_regexes_matched_at_the_start():
    assert criteria_match({"SeriesDescription": "*REST*"}, SIDECAR, case_sensitive=False)
    assert criteria_match({"SeriesDescription": r"bold_(rest|task)_[AP]+$"}, SIDECAR, "re")
    assert not criteria_match({"SeriesDescription": r"rest"}, SIDECAR, "re")   # re.match, not search
    # dcm2bids ignores case_sensitive for regexes
    assert not criteria_match({"SeriesDescription": r"BOLD"}, SIDECAR, "re", case_sensitive=False)


def test_images_sort_by_acquisition_time_then_series_number_then_file_name():
    sidecars = [{"AcquisitionTime": "10:05:00.000000", "SeriesNumber": 3, "SidecarFilename": "c"},
                {"AcquisitionTime": "10:01:00", "SeriesNumber": 9, "SidecarFilename": "b"},
                {"AcquisitionTime": "100500", "SeriesNumber": 5, "SidecarFilename": "a_e2.json"},
                {"AcquisitionTime": "10:05:00", "SeriesNumber": 5, "SidecarFilename": "a_e1.json"}]
    assert in_acquisition_order(sidecars) == [1, 0, 3, 2]


def test_names_take_entities_in_the_entity_tables_order():
    assert dcm2bids_stem("sub-1_ses-1", ["run-01", "dir-AP", "task-rest"], "bold") == \
        "sub-1_ses-1_task-rest_dir-AP_run-01_bold"
    # an entity the table does not know goes after those it knows, as dcm2bids writes it
    assert dcm2bids_stem("sub-1_ses-1", ["dup-01", "acq-fast"], "T1w") == "sub-1_ses-1_acq-fast_dup-01_T1w"


def test_runs_number_every_image_of_a_name_and_dups_all_but_the_last():
    stems = ["func/bold", "anat/T1w", "func/bold", "func/bold"]
    assert numbered_duplicates(stems, "run") == ["run-01", None, "run-02", "run-03"]
    assert numbered_duplicates(stems, "dup") == ["dup-01", None, "dup-02", None]


def test_ids_become_bids_uris_or_paths_relative_to_the_subject():
    ids = {"rest": ["sub-1/ses-1/func/sub-1_ses-1_task-rest_run-01_bold.nii.gz",
                    "sub-1/ses-1/func/sub-1_ses-1_task-rest_run-02_bold.nii.gz"],
           "t1": ["sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz"]}
    changes = {"IntendedFor": ["rest", "missing"], "B0FieldIdentifier": "t1", "Sources": "t1",
               "TaskName": "rest", "SliceTiming": ""}
    assert resolved_changes(changes, ids, "sub-1", "URI") == {
        "IntendedFor": ["bids::sub-1/ses-1/func/sub-1_ses-1_task-rest_run-01_bold.nii.gz",
                        "bids::sub-1/ses-1/func/sub-1_ses-1_task-rest_run-02_bold.nii.gz"],
        "B0FieldIdentifier": "bids::sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz",   # any field's id
        "Sources": "bids::sub-1/ses-1/anat/sub-1_ses-1_T1w.nii.gz",
        # dcm2bids replaces an id wherever it appears, even as a TaskName
        "TaskName": ["bids::" + path for path in ids["rest"]],
        "SliceTiming": None}
    relative = resolved_changes({"IntendedFor": "t1"}, ids, "sub-1", "relative")
    assert relative == {"IntendedFor": "ses-1/anat/sub-1_ses-1_T1w.nii.gz"}
    assert resolved_changes({"IntendedFor": "missing"}, ids, "sub-1", "URI") == {}
