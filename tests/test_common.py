"""The pure pieces of common.py: sorting, names on disk, filters, shards, backoff."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import common
from common import Scan, Session


def test_natural_sort_puts_numbers_in_numeric_order():
    labels = ["sub-10", "sub-2", "Sub-1", "sub-2a", "sub-01b"]
    assert sorted(labels, key=common.natural_key) == ["Sub-1", "sub-01b", "sub-2", "sub-2a", "sub-10"]


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


def test_scan_filters_match_type_or_description_with_wildcards():
    scan = Scan(id="3", type="func_rest", series_description="bold_rest_AP")
    assert common.scan_matches(scan, ["FUNC_REST"])
    assert common.scan_matches(scan, ["*bold*"])
    assert common.scan_matches(scan, ["func*"])
    assert not common.scan_matches(scan, ["func"])
    assert not common.scan_matches(scan, ["T1"])


def test_shards_deal_sessions_round_robin_in_natural_order():
    sessions = [Session(id=f"E{i}", label=f"s{i}_ses", subject_label=f"s{i}") for i in (10, 2, 1, 3, 20)]
    shards = [common.shard(sessions, (k, 2)) for k in (1, 2)]
    assert [s.label for s in shards[0]] == ["s1_ses", "s3_ses", "s20_ses"]
    assert [s.label for s in shards[1]] == ["s2_ses", "s10_ses"]


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard_specs_are_usage_errors(text):
    with pytest.raises(argparse.ArgumentTypeError):
        common.parse_shard(text)


def test_backoff_grows_with_jitter_and_respects_retry_after():
    assert common.backoff(1, 1.0, retry_after=7) == 7
    waits = [common.backoff(attempt, 1.0) for attempt in (1, 2, 3, 4)]
    for attempt, wait in zip((1, 2, 3, 4), waits):
        assert 0.5 * 2 ** (attempt - 1) <= wait <= 2 ** (attempt - 1)


def test_same_source_ignores_scheme_and_port_but_not_host_or_scan():
    source = {"server": "http://127.0.0.1:5000", "project": "P", "session": "S", "scan": "1",
              "resource": "DICOM"}
    assert common.same_source(dict(source, server="https://127.0.0.1:6000/"), source)
    assert not common.same_source(dict(source, server="https://other.host"), source)
    assert not common.same_source(dict(source, server="http://127.0.0.1:5000/xnat"), source)
    assert not common.same_source(dict(source, scan="2"), source)


def test_modality_comes_from_the_session_type():
    assert common.modality_of("xnat:mrSessionData") == "MR"
    assert common.modality_of("xnat:petSessionData") == "PET"
    assert common.modality_of("") == ""


def test_inside_rejects_paths_that_escape(tmp_path: Path):
    assert common.inside(tmp_path, tmp_path / "a" / "b")
    assert not common.inside(tmp_path, tmp_path / ".." / "x")
    (tmp_path / "link").symlink_to("/")
    assert not common.inside(tmp_path, tmp_path / "link" / "etc")
