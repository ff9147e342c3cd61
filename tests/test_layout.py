"""common.py: the downloaded_data layout and the cleaning of server names."""
from __future__ import annotations

from pathlib import Path

import pytest

import common
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
    assert common.safe_component(name) == expected


@pytest.mark.parametrize("name", ["../evil.dcm", "/etc/passwd", "a/../../b", "", "a//b", ".", "C:\\x.dcm",
                                  "\\\\server\\share"])
def test_unsafe_paths_are_refused(name):
    with pytest.raises(common.UnsafeName):
        common.safe_relative_path(name)


def test_sub_folders_are_kept():
    assert common.safe_relative_path("secondary/x y.dcm") == "secondary/x_y.dcm"


def test_long_names_are_cut_and_stay_unique():
    first, second = "a" * 300 + "1.dcm", "a" * 300 + "2.dcm"
    safe_first, safe_second = common.safe_component(first), common.safe_component(second)
    assert len(safe_first) <= common.MAX_NAME_BYTES and safe_first.endswith(".dcm")
    assert safe_first != safe_second


def test_folder_names():
    assert common.scan_folder_name(Scan(id="2", type="T1 w/fs")) == "scan-2_T1_w_fs"
    assert common.scan_folder_name(Scan(id="3", type="")) == "scan-3"
    assert common.session_folder_name(Session(id="E1", label="ses 1/x", subject_label="s")) \
        == "session-ses_1_x"


def test_inside_rejects_paths_that_escape(tmp_path: Path):
    assert common.inside(tmp_path, tmp_path / "a" / "b")
    assert not common.inside(tmp_path, tmp_path / ".." / "x")
    (tmp_path / "link").symlink_to("/")
    assert not common.inside(tmp_path, tmp_path / "link" / "etc")


def test_where_a_scan_lands(tmp_path: Path):
    session = Session(id="E1", label="sub-1_ses-1", subject_label="sub-1")
    scan = Scan(id="2", type="T1 w")
    assert common.single_scan_folder(tmp_path, scan) == tmp_path / "scan-2_T1_w"
    assert common.session_scan_folder(tmp_path, session, scan) == \
        tmp_path / "session-sub-1_ses-1" / "scan-2_T1_w"
