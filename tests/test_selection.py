"""Choosing what to download, from records already listed: the scan script 3 takes by default or
by ID, the scans --scans and --scan-types keep (words or shell wildcards, any case, on the type or
the series description), what is skipped and why, and the share of sessions --shard K/N takes.

No server here: the records are built as the catalog lists them (scans in natural order)."""
from __future__ import annotations

import pytest

from xnat_download.catalog import RemoteFile, Scan, Session
from xnat_download.errors import XnatError
from xnat_download.selection import Wanted, pick_scan, without_resource

try:   # the rules for choosing, whichever of the two modules holds them
    from xnat_download.selection import filter_scans, scans_with_files, shard
except ImportError:
    from xnat_download.catalog import filter_scans, scans_with_files, shard


def files_of(*scan_ids: str) -> dict[str, list[RemoteFile]]:
    """A listing of the resource: one file for each scan named."""
    return {scan_id: [RemoteFile(scan_id=scan_id, path=f"{scan_id}.dcm", size=10, md5="",
                                 url=f"/data/experiments/E1/scans/{scan_id}/resources/DICOM/files/{scan_id}.dcm")]
            for scan_id in scan_ids}


def mr_session(label: str = "sub-1_ses-1", subject: str = "sub-1") -> Session:
    """Scans in the natural order the catalog lists them: 1 before 2 before 10."""
    return Session(id=f"E_{label}", label=label, subject_label=subject, scans=[
        Scan(id="1", type="localizer"),
        Scan(id="2", type="T1w_MPR", series_description="t1_mprage_sag"),
        Scan(id="3", type="func_rest", series_description="fMRI_BOLD_rest_AP"),
        Scan(id="10", type="T2w", series_description="t2_space"),
    ])


# --- script 3: one scan ------------------------------------------------------------------------

def test_by_default_the_first_scan_with_the_resource_is_taken():
    session = mr_session()
    # The localizer (scan 1) has no DICOM resource: scan 2 is the first that has one.
    assert pick_scan(session, files_of("2", "3", "10"), None, "DICOM").id == "2"
    assert pick_scan(session, files_of("10", "3"), None, "DICOM").id == "3"


def test_a_scan_asked_for_by_id_is_that_scan():
    session = mr_session()
    assert pick_scan(session, files_of("1", "2", "10"), "10", "DICOM").id == "10"


def test_a_scan_only_the_file_listing_knows_can_still_be_taken():
    session = mr_session()
    scan = pick_scan(session, files_of("2", "99"), "99", "DICOM")
    assert (scan.id, scan.type) == ("99", "")


def test_a_scan_without_the_resource_is_an_error_naming_the_scans_that_have_it():
    with pytest.raises(XnatError) as raised:
        pick_scan(mr_session(), files_of("2", "10"), "1", "DICOM")
    assert str(raised.value) == ("scan 1 of session sub-1_ses-1 has no DICOM resource; scans with one: "
                                 "2 (T1w_MPR), 10 (T2w)")


def test_a_scan_that_is_not_there_is_an_error_naming_the_scans_that_are():
    with pytest.raises(XnatError) as raised:
        pick_scan(mr_session(), files_of("2"), "7", "DICOM")
    assert str(raised.value) == ("scan 7 not found in session sub-1_ses-1; scans there: 1 (localizer), "
                                 "2 (T1w_MPR), 3 (func_rest), 10 (T2w)")


def test_a_session_where_no_scan_has_the_resource_is_an_error():
    with pytest.raises(XnatError, match="no scan of session sub-1_ses-1 has a SNAPSHOTS resource; "
                                        "scans there: 1 \\(localizer\\), 2 \\(T1w_MPR\\)"):
        pick_scan(mr_session(), {}, None, "SNAPSHOTS")


# --- script 4: --scans and --scan-types --------------------------------------------------------

def ids(scans: list[Scan]) -> list[str]:
    return [scan.id for scan in scans]


@pytest.mark.parametrize("patterns, expected", [
    (["T1w_MPR"], ["2"]),               # the type, whole
    (["t1w_mpr"], ["2"]),               # in any case
    (["T1*"], ["2"]),                   # a shell wildcard
    (["*bold*"], ["3"]),                # on the series description too, in any case
    (["T1"], []),                       # a word is not a prefix: T1 is not T1w_MPR
    (["T2w", "func*"], ["3", "10"]),    # any of several, in the session's order
    (["t?w*"], ["2", "10"]),
    ([], ["1", "2", "3", "10"]),        # no filter keeps every scan
])
def test_scan_types_match_type_or_series_description_by_word_or_wildcard_in_any_case(patterns, expected):
    session = mr_session()
    assert ids(filter_scans(session, session.scans, patterns, [], strict=False)) == expected


def test_scans_and_scan_types_together_keep_what_passes_both():
    session = mr_session()
    assert ids(filter_scans(session, session.scans, ["t*"], ["2", "3"], strict=True)) == ["2"]
    assert ids(filter_scans(session, session.scans, [], ["10", "1"], strict=True)) == ["1", "10"]


def test_for_one_session_an_id_it_does_not_have_is_an_error_naming_what_it_has():
    session = mr_session()
    with pytest.raises(XnatError) as raised:
        filter_scans(session, session.scans, [], ["2", "4"], strict=True)
    assert str(raised.value).startswith("scan 4 not found in session sub-1_ses-1; scans there: 1 (localizer)")


def test_for_one_session_types_nothing_matches_are_an_error_naming_the_types_there():
    session = mr_session()
    with pytest.raises(XnatError) as raised:
        filter_scans(session, session.scans, ["dwi*"], [], strict=True)
    assert str(raised.value) == ("no scan in session sub-1_ses-1 matches --scan-types dwi*; types there: "
                                 "func_rest, localizer, T1w_MPR, T2w")


def test_across_sessions_a_session_nothing_passes_is_simply_empty():
    session = mr_session()
    assert filter_scans(session, session.scans, ["dwi*"], ["4"], strict=False) == []


def test_chosen_scans_without_the_resource_are_skipped_with_the_reason():
    session = mr_session()
    files = files_of("2", "3", "10")
    wanted = Wanted(project="P", resource="DICOM")
    skipped = without_resource(session, scans_with_files(session, files), wanted)
    assert [(s.what, s.why) for s in skipped] == [("scan 1 (localizer) of sub-1_ses-1", "no DICOM resource")]
    # A scan the filters leave out is not "skipped": it was not asked for.
    only_t1 = Wanted(project="P", resource="DICOM", scan_types=["T1*"])
    assert without_resource(session, scans_with_files(session, files), only_t1) == []


def test_the_filters_are_described_as_they_were_typed():
    assert Wanted(project="P", resource="DICOM").describe_filters() == ""
    assert Wanted(project="P", resource="DICOM", scan_types=["T1*", "*bold*"], scan_ids=["2", "3"]
                  ).describe_filters() == " (--scan-types T1* *bold*; --scans 2 3)"


# --- --shard K/N -------------------------------------------------------------------------------

def sessions_of(*pairs: tuple[str, str]) -> list[Session]:
    return [Session(id=f"E{index}", label=label, subject_label=subject)
            for index, (subject, label) in enumerate(pairs)]


SESSIONS = sessions_of(("sub-10", "sub-10_ses-1"), ("sub-2", "sub-2_ses-2"), ("sub-2", "sub-2_ses-10"),
                       ("sub-1", "sub-1_ses-1"), ("sub-2", "sub-2_ses-1"), ("sub-3", "sub-3_ses-1"),
                       ("sub-11", "sub-11_ses-1"))
NATURAL_ORDER = ["sub-1_ses-1", "sub-2_ses-1", "sub-2_ses-2", "sub-2_ses-10", "sub-3_ses-1",
                 "sub-10_ses-1", "sub-11_ses-1"]


def labels(sessions: list[Session]) -> list[str]:
    return [session.label for session in sessions]


def test_without_a_shard_every_session_comes_in_natural_subject_then_session_order():
    assert labels(shard(SESSIONS, None)) == NATURAL_ORDER


@pytest.mark.parametrize("count", [1, 2, 3, 7, 9])
def test_the_ith_session_goes_to_shard_i_mod_n_plus_1(count):
    shares = {k: labels(shard(SESSIONS, (k, count))) for k in range(1, count + 1)}
    for index, label in enumerate(NATURAL_ORDER):
        assert label in shares[index % count + 1]
    # Together the shards take every session exactly once, each in natural order.
    assert sorted(label for share in shares.values() for label in share) == sorted(NATURAL_ORDER)
    for share in shares.values():
        assert share == [label for label in NATURAL_ORDER if label in share]


def test_a_shard_is_the_same_whatever_order_the_server_listed_the_sessions_in():
    assert labels(shard(list(reversed(SESSIONS)), (2, 3))) == labels(shard(SESSIONS, (2, 3))) == \
        ["sub-2_ses-1", "sub-3_ses-1"]


def test_more_shards_than_sessions_leaves_the_last_ones_empty():
    assert labels(shard(SESSIONS, (7, 9))) == ["sub-11_ses-1"]
    assert shard(SESSIONS, (8, 9)) == [] and shard(SESSIONS, (9, 9)) == []
