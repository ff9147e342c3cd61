"""A hostile or broken server: bodies longer than listed, bodies and zips without end, deflate
bombs, redirects to another host, and names that clean up alike. Nothing it sends may grow a file
past its listed size, stop the run, or make it wait on itself; each such transfer is one clear line."""
from __future__ import annotations

import pytest

from cli import data_files_below, find_session, run_script
from sandbox import File

SCAN_SCRIPT = "3_download_single_scan.py"
SESSION = "sub-2_ses-1"   # the default session; its scan 2 (T2) has four DICOM files of 3026 bytes


def scan_2(sandbox) -> list[File]:
    return find_session(sandbox, SESSION).scans[1].resources[0].files


def fetch_scan_2(sandbox, tmp_path, transfer: str):
    return run_script(SCAN_SCRIPT, "--scan", "2", "--transfer", transfer, cwd=tmp_path, sandbox=sandbox)


def the_error(result) -> str:
    """Exit 1, one error line (the last), no traceback."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if ": error: " in line] == [lines[-1]], result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


def assert_arrived(folder, files: list[File]) -> None:
    on_disk = data_files_below(folder)
    assert sorted(on_disk) == sorted(file.name for file in files)
    for file in files:
        assert on_disk[file.name].read_bytes() == file.data(), file.name


def requests_for(sandbox, name: str) -> int:
    return sum(1 for entry in sandbox.file_requests() if entry.path.endswith(name))


# --- D1: a hard cap while writing --------------------------------------------------------------

@pytest.mark.parametrize("fault", ["overlong_count", "endless_count"])
def test_a_file_body_longer_than_listed_is_cut_at_its_listed_size(sandbox, tmp_path, fault):
    files = scan_2(sandbox)
    victim = files[1]
    sandbox.faults.match = victim.name
    setattr(sandbox.faults, fault, -1)   # 50 MB with its length said, or chunked without end
    result = fetch_scan_2(sandbox, tmp_path, "files")
    assert the_error(result).startswith(f"{SCAN_SCRIPT}: error: 1 file(s) could not be downloaded")
    assert (f"failed: scan-2_T2/{victim.name}: the server sent more than the {victim.size} bytes "
            f"it listed; abandoned there\n") in result.stderr
    assert requests_for(sandbox, victim.name) == 1   # not retried: it would only come again
    folder = tmp_path / "downloaded_data" / "scan-2_T2"
    part = folder / f"{victim.name}.part"
    assert part.stat().st_size == victim.size   # never a byte past the listing
    del data_files_below(folder)[f"{victim.name}.part"]
    part.unlink()
    assert_arrived(folder, [file for file in files if file is not victim])


@pytest.mark.parametrize("fault", ["bomb_count", "overlong_count"], ids=["deflate-bomb", "stored-overlong"])
def test_a_zip_entry_past_its_listed_size_fails_alone_and_the_rest_arrives(sandbox, tmp_path, fault):
    files = scan_2(sandbox)
    victim = files[0]   # the first entry: nothing has landed when it runs over
    sandbox.faults.match = "format=zip"
    setattr(sandbox.faults, fault, -1)
    result = fetch_scan_2(sandbox, tmp_path, "zip")
    the_error(result)
    assert (f"failed: scan-2_T2/{victim.name}: the server sent more than the {victim.size} bytes "
            f"it listed in the zip of its scan; abandoned there\n") in result.stderr
    assert "abandoned: " not in result.stderr   # the entry's own line says it all
    # The stream is given up at the bomb, never read again; the rest comes file by file.
    assert len(sandbox.zip_requests()) == 1 and len(sandbox.file_requests()) == len(files) - 1
    folder = tmp_path / "downloaded_data" / "scan-2_T2"
    part = folder / f"{victim.name}.part"
    assert part.stat().st_size == victim.size
    part.unlink()
    assert_arrived(folder, files[1:])


def test_a_zip_that_never_ends_is_abandoned_and_its_files_come_one_by_one(sandbox, tmp_path):
    files = scan_2(sandbox)
    sandbox.faults.match = "format=zip"
    sandbox.faults.endless_count = -1   # led by an entry the listing lacks, promising 4 GiB
    result = fetch_scan_2(sandbox, tmp_path, "zip")
    assert the_error(result) == (f"{SCAN_SCRIPT}: error: the server sent more than it listed in 1 "
                                 f"zip(s) (listed above): tell your XNAT admin")
    abandoned = [line for line in result.stderr.splitlines() if line.startswith("  abandoned: ")]
    assert len(abandoned) == 1, result.stderr
    assert abandoned[0].startswith("  abandoned: scan-2_T2 (zip): the server sent more than the "
                                   "listing holds (")
    assert abandoned[0].endswith("; the zip was abandoned there; its files came one by one")
    zips = sandbox.zip_requests()
    assert len(zips) == 1 and zips[0].bytes < sandbox.faults.flood_bytes // 2
    assert len(sandbox.file_requests()) == len(files)
    assert_arrived(tmp_path / "downloaded_data" / "scan-2_T2", files)


def test_a_zip_that_breaks_before_its_first_file_is_tried_twice_then_file_by_file(sandbox, tmp_path):
    # The first entry is past half the zip, where every zip is cut: no zip ever lands a file.
    files = [File.from_bytes("big.dcm", bytes(range(256)) * 100), File.from_bytes("small.dcm", b"s" * 100)]
    find_session(sandbox, SESSION).scans[1].resources[0].files = files
    sandbox.faults.match = "format=zip"
    sandbox.faults.reset_count = -1
    result = fetch_scan_2(sandbox, tmp_path, "zip")
    assert result.returncode == 0, result.stderr
    assert len(sandbox.zip_requests()) == 2 and len(sandbox.file_requests()) == len(files)
    assert_arrived(tmp_path / "downloaded_data" / "scan-2_T2", files)
