"""xnat_download.catalog: natural order, scan filters, shards, modality."""
from __future__ import annotations

import argparse

import pytest

from xnat_download import catalog
from xnat_download.cli import parse_shard
from xnat_download.catalog import Scan, Session


def test_natural_sort_puts_numbers_in_numeric_order():
    labels = ["sub-10", "sub-2", "Sub-1", "sub-2a", "sub-01b"]
    assert sorted(labels, key=catalog.natural_key) == ["Sub-1", "sub-01b", "sub-2", "sub-2a", "sub-10"]


def test_scan_filters_match_type_or_description_with_wildcards():
    scan = Scan(id="3", type="func_rest", series_description="bold_rest_AP")
    assert catalog.scan_matches(scan, ["FUNC_REST"])
    assert catalog.scan_matches(scan, ["*bold*"])
    assert catalog.scan_matches(scan, ["func*"])
    assert not catalog.scan_matches(scan, ["func"])
    assert not catalog.scan_matches(scan, ["T1"])


def test_shards_deal_sessions_round_robin_in_natural_order():
    sessions = [Session(id=f"E{i}", label=f"s{i}_ses", subject_label=f"s{i}") for i in (10, 2, 1, 3, 20)]
    shards = [catalog.shard(sessions, (k, 2)) for k in (1, 2)]
    assert [s.label for s in shards[0]] == ["s1_ses", "s3_ses", "s20_ses"]
    assert [s.label for s in shards[1]] == ["s2_ses", "s10_ses"]


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_bad_shard_specs_are_usage_errors(text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_shard(text)


def test_modality_comes_from_the_session_type():
    assert catalog.modality_of("xnat:mrSessionData") == "MR"
    assert catalog.modality_of("xnat:petSessionData") == "PET"
    assert catalog.modality_of("") == ""
