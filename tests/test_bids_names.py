"""xnat_download.bids_names: labels, tasks, the default map, dcm2bids criteria, run numbers."""
from __future__ import annotations

import pytest

import common
from xnat_download.bids_names import (BidsName, criteria_match, default_name, number_runs, session_label,
                                      subject_label, task_of)
from xnat_download.catalog import Scan, Session


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
    ("fMRI", "interest", "task"),
])
def test_the_task_comes_from_the_type_or_description(scan_type, description, task):
    assert task_of(Scan(id="3", type=scan_type, series_description=description)) == task


@pytest.mark.parametrize("scan_type, description, expected", [
    ("T1", "t1_mprage_sag", "anat/sub-1_ses-1_T1w"),
    ("flair", "t2_flair_tra", "anat/sub-1_ses-1_FLAIR"),
    ("T2", "t2_space", "anat/sub-1_ses-1_T2w"),
    ("dwi", "dwi_64dir", "dwi/sub-1_ses-1_dwi"),
    ("func_rest", "bold_rest_ap", "func/sub-1_ses-1_task-rest_bold"),
    ("localizer", "t1_localizer", None),
    ("swi", "swi_tra", None),
])
def test_the_default_map_first_match_wins(scan_type, description, expected):
    session = Session(id="E1", label="sub-1_ses-1", subject_label="sub-1")
    name = default_name(session, Scan(id="1", type=scan_type, series_description=description), common.BIDS_MAP)
    assert (name.path().split("/", 2)[2] if name else None) == expected


def test_runs_are_numbered_in_natural_scan_order_only_where_names_clash():
    bold = BidsName("1", "1", "func", "bold", (("task", "rest"),))
    t1 = BidsName("1", "1", "anat", "T1w")
    numbered = number_runs({"11": bold, "3": bold, "2": t1})
    assert numbered["3"].stem() == "sub-1_ses-1_task-rest_run-1_bold"
    assert numbered["11"].stem() == "sub-1_ses-1_task-rest_run-2_bold"
    assert numbered["2"].stem() == "sub-1_ses-1_T1w"
    assert BidsName("1", "1", "anat", "T1w", (("acq", "fast"),), 2).stem() == "sub-1_ses-1_acq-fast_run-2_T1w"


def test_dcm2bids_criteria_wildcards_lists_and_any():
    sidecar = {"SeriesDescription": "bold_rest_ap", "EchoTime": 0.03, "ImageType": ["ORIGINAL", "PRIMARY", "M"]}
    assert criteria_match({"SeriesDescription": "*rest*"}, sidecar)
    assert not criteria_match({"SeriesDescription": "*REST*"}, sidecar)   # case counts, as in dcm2bids
    assert criteria_match({"EchoTime": 0.03, "ImageType": ["ORIGINAL", "*", "M"]}, sidecar)
    assert not criteria_match({"ImageType": ["ORIGINAL", "PRIMARY"]}, sidecar)
    assert criteria_match({"SeriesDescription": {"any": ["t1*", "bold*"]}}, sidecar)
    assert not criteria_match({"ProtocolName": "*"}, sidecar)   # a field the sidecar lacks
