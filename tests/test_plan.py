"""The plan of a scan: where each file the server lists lands below the scan's folder, what is
refused and why (a name that escapes, a link to another server, a folder outside the output
folder), names that clean up to one kept apart the same way on every run, and what the plan
records of its source (what the manifest keeps) and of its size.

Property tests over hostile names live in test_names.py; these are the worked examples."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from xnat_download.catalog import RemoteFile, Scan, Session
from xnat_download.plan import ScanPlan, plan_scan, unique_name

SERVER = "https://xnat.example.org/xnat"
SESSION = Session(id="XNAT_E00007", label="sub-2_ses-1", subject_label="sub-2")
SCAN = Scan(id="3", type="func_rest")


def remote(name: str, size: int = 10, url: str | None = None) -> RemoteFile:
    uri = url if url is not None else f"/data/experiments/XNAT_E00007/scans/3/resources/DICOM/files/{name}"
    return RemoteFile(scan_id="3", path=name, size=size, md5="", url=uri)


def plan(files: list[RemoteFile], output_dir: Path, folder: Path | None = None) -> ScanPlan:
    client = SimpleNamespace(server=SERVER)   # all a plan reads of the connection
    folder = folder if folder is not None else output_dir / "session-sub-2_ses-1" / "scan-3_func_rest"
    return plan_scan(client, "DEMO", SESSION, SCAN, "DICOM", files, folder, output_dir)


def landing(scan_plan: ScanPlan) -> dict[str, str]:
    """Server name -> path below the scan folder, for every file planned."""
    return {f.remote.path: f.relative for f in scan_plan.files}


def test_every_listed_file_lands_below_the_scan_folder_under_its_own_name(tmp_path):
    files = [remote("1.dcm"), remote("2.dcm"), remote("echo-1/3.dcm")]
    scan_plan = plan(files, tmp_path)
    assert landing(scan_plan) == {"1.dcm": "1.dcm", "2.dcm": "2.dcm", "echo-1/3.dcm": "echo-1/3.dcm"}
    for planned in scan_plan.files:
        assert planned.target == scan_plan.folder / planned.relative
    assert scan_plan.refused == [] and scan_plan.listed == files


def test_the_plan_records_where_the_scan_came_from(tmp_path):
    assert plan([remote("1.dcm")], tmp_path).source == {
        "server": SERVER, "project": "DEMO", "subject": "sub-2", "session": "sub-2_ses-1",
        "session_id": "XNAT_E00007", "scan": "3", "type": "func_rest", "resource": "DICOM"}


def test_the_size_of_a_plan_counts_what_is_known(tmp_path):
    scan_plan = plan([remote("1.dcm", 100), remote("2.dcm", 23), remote("3.dcm", -1)], tmp_path)
    assert scan_plan.total_bytes == 123   # -1: the listing gave no size


@pytest.mark.parametrize("name", ["../escaped.dcm", "/etc/passwd", "a/../../b.dcm", "C:/x.dcm"])
def test_a_name_that_would_escape_is_refused_and_the_rest_still_planned(tmp_path, name):
    scan_plan = plan([remote("1.dcm"), remote(name)], tmp_path)
    assert landing(scan_plan) == {"1.dcm": "1.dcm"}
    assert [server_name for server_name, _ in scan_plan.refused] == [name]


def test_a_file_linked_to_another_server_is_refused(tmp_path):
    files = [remote("1.dcm", url=f"{SERVER}/data/files/1.dcm"),              # ours, spelled out
             remote("2.dcm", url="https://elsewhere.example.org/xnat/data/files/2.dcm"),
             remote("3.dcm", url="https://xnat.example.org/other/data/files/3.dcm")]   # not our prefix
    scan_plan = plan(files, tmp_path)
    assert landing(scan_plan) == {"1.dcm": "1.dcm"}
    assert scan_plan.refused == [("2.dcm", "refused: the listing links it to another server"),
                                 ("3.dcm", "refused: the listing links it to another server")]


def test_a_scan_folder_outside_the_output_folder_takes_no_file(tmp_path):
    output = tmp_path / "downloaded_data"
    scan_plan = plan([remote("1.dcm")], output, folder=tmp_path / "elsewhere")
    assert scan_plan.files == []
    assert scan_plan.refused == [("1.dcm", "refused: it would land outside the output folder")]


def test_names_that_clean_up_to_one_are_kept_apart_the_same_way_whatever_the_listing_order(tmp_path):
    names = ["a b.dcm", "a_b.dcm", "X.DCM", "x.dcm", "Ya.dcm", "yA.dcm"]
    first = landing(plan([remote(n) for n in names], tmp_path))
    again = landing(plan([remote(n) for n in reversed(names)], tmp_path))
    assert first == again
    assert len({relative.casefold() for relative in first.values()}) == 6   # apart on any file system
    # The first of each pair (by server name) keeps the plain name; the other is tagged, its
    # extension kept.
    assert first["a b.dcm"] == "a_b.dcm" and first["X.DCM"] == "X.DCM"
    assert first["a_b.dcm"].startswith("a_b_") and first["a_b.dcm"].endswith(".dcm")
    assert first["x.dcm"].startswith("x_") and first["x.dcm"].endswith(".dcm")


def test_a_file_named_like_a_folder_gives_way_to_the_folder(tmp_path):
    scan_plan = landing(plan([remote("a"), remote("a/b.dcm")], tmp_path))
    assert scan_plan["a/b.dcm"] == "a/b.dcm"
    assert scan_plan["a"] != "a" and scan_plan["a"].startswith("a_")


def test_a_taken_name_is_tagged_by_the_server_name_and_the_tag_never_repeats():
    taken = {"1.dcm"}
    tagged = unique_name("1.dcm", "1.dcm ", taken)
    assert tagged != "1.dcm" and tagged.endswith(".dcm")
    assert unique_name("1.dcm", "1.dcm ", {"1.dcm"}) == tagged          # the same on every run
    assert unique_name("1.dcm", "1.DCM", {"1.dcm"}) != tagged           # another server name, another tag
    taken.add(tagged.casefold())
    third = unique_name("1.dcm", "1.dcm ", taken)                       # its tag taken too
    assert third.casefold() not in taken and third.endswith(".dcm")
    assert unique_name("notes", "notes", {"notes"}).startswith("notes_")   # no extension to keep
    assert unique_name("1.DCM", "1.DCM", {"1.dcm"}) != "1.DCM"          # taken in another case
