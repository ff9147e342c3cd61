"""common.py: the downloaded_data layout; names.py: the cleaning of server names."""
from __future__ import annotations

from pathlib import Path

import pytest

import common
from xnat_download import names
from xnat_download.catalog import Scan, Session


@pytest.mark.parametrize("name, expected", [
    ("1.3.12.2-4-1-abc.dcm", "1.3.12.2-4-1-abc.dcm"),
    ("a b.dcm", "a_b.dcm"),
    ("résumé.dcm", "r_sum_.dcm"),
    ("a?b*c.dcm", "a_b_c.dcm"),
    (".xnat-manifest.json", "_.xnat-manifest.json"),
    ("scan.part", "scan.part_"),
])
def test_safe_component_keeps_only_safe_characters(name, expected):
    assert names.safe_component(name) == expected


@pytest.mark.parametrize("name", ["../evil.dcm", "/etc/passwd", "a/../../b", "", "a//b", ".", "C:\\x.dcm",
                                  "\\\\server\\share"])
def test_unsafe_paths_are_refused(name):
    with pytest.raises(names.UnsafeName):
        names.safe_relative_path(name)


def test_sub_folders_are_kept():
    assert names.safe_relative_path("secondary/x y.dcm") == "secondary/x_y.dcm"


def test_long_names_are_cut_and_stay_unique():
    first, second = "a" * 300 + "1.dcm", "a" * 300 + "2.dcm"
    safe_first, safe_second = names.safe_component(first), names.safe_component(second)
    assert len(safe_first) <= names.MAX_NAME_BYTES and safe_first.endswith(".dcm")
    assert safe_first != safe_second


def test_ordinary_folder_names_stay_as_they_were():
    assert common.scan_folder_name(Scan(id="3", type="T1w")) == "scan-3_T1w"
    assert common.scan_folder_name(Scan(id="3", type="")) == "scan-3"
    assert common.scan_folder_name(Scan(id="11", type="func-rest_run.1")) == "scan-11_func-rest_run.1"
    assert common.session_folder_name(Session(id="E1", label="sub-01_ses-1", subject_label="s")) \
        == "session-sub-01_ses-1"


def test_a_scan_folder_carries_a_tag_only_where_its_id_needs_one():
    # Scan IDs are unique in a session: a clean one keeps the folder apart whatever the type.
    assert common.scan_folder_name(Scan(id="2", type="T1 w/fs")) == "scan-2_T1_w_fs"
    assert common.scan_folder_name(Scan(id="3", type="EPI PE=AP")) == "scan-3_EPI_PE_AP"
    assert common.scan_folder_name(Scan(id="1_T1", type="")) == f"scan-1_T1_{names.name_tag(repr(('1_T1', '')))}"
    assert common.scan_folder_name(Scan(id="3 b", type="T1")) == f"scan-3_b_T1_{names.name_tag(repr(('3 b', 'T1')))}"


def test_folder_names_that_cleaning_changes_carry_a_tag_of_the_raw_name():
    assert common.session_folder_name(Session(id="E1", label="ses 1/x", subject_label="s")) \
        == "session-ses_1_x_0fd2adee"


@pytest.mark.parametrize("first, second", [
    (Scan(id="1", type="T1"), Scan(id="1_T1", type="")),
    (Scan(id="1", type="a b"), Scan(id="1_a", type="b")),
    (Scan(id="1 a", type="b"), Scan(id="1", type="a b")),
    (Scan(id="1/a", type="b"), Scan(id="1", type="a/b")),
])
def test_scans_whose_names_clean_up_alike_get_folders_of_their_own(first, second):
    assert common.scan_folder_name(first) != common.scan_folder_name(second)


def test_sessions_whose_labels_clean_up_alike_get_folders_of_their_own():
    plain, spaced = (common.session_folder_name(Session(id="E", label=label, subject_label="s"))
                     for label in ("S1_MR1", "S1 MR1"))
    assert plain == "session-S1_MR1" and spaced.startswith("session-S1_MR1_") and spaced != plain


def test_inside_rejects_paths_that_escape(tmp_path: Path):
    assert names.inside(tmp_path, tmp_path / "a" / "b")
    assert not names.inside(tmp_path, tmp_path / ".." / "x")
    (tmp_path / "link").symlink_to("/")
    assert not names.inside(tmp_path, tmp_path / "link" / "etc")


def test_where_a_scan_lands(tmp_path: Path):
    session = Session(id="E1", label="sub-1_ses-1", subject_label="sub-1")
    scan = Scan(id="2", type="T1w")
    assert common.single_scan_folder(tmp_path, scan) == tmp_path / "scan-2_T1w"
    assert common.session_scan_folder(tmp_path, session, scan) == \
        tmp_path / "session-sub-1_ses-1" / "scan-2_T1w"
