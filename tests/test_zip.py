"""How files travel: a scan's resource as one zip stream, unpacked and verified entry by entry,
or one request per file, chosen per scan; and every fault a zip can meet."""
from __future__ import annotations

import signal
import threading

import pytest

from cli import (assert_downloaded, data_files_below, expected_files, find_session, run_script,
                 script_env, start_script)
from events import HANG_GUARD, SandboxEvents
from sandbox import Scale

SESSION_SCRIPT = "4_download_session.py"
SCAN_SCRIPT = "3_download_single_scan.py"
SESSION = "sub-2_ses-1"   # the default session: scans 1, 2, 3, 5, 6, 7 and 8 have DICOM files
SCANS = 7


def session_folder(tmp_path):
    return tmp_path / "downloaded_data" / f"session-{SESSION}"


def data_bytes(sandbox) -> int:
    """Body bytes the server sent for files and zips."""
    return sum(entry.bytes for entry in sandbox.file_requests() + sandbox.zip_requests())


def session_bytes(sandbox) -> int:
    return sum(len(data) for data in expected_files(find_session(sandbox, SESSION)).values())


def download(sandbox, tmp_path, *args):
    result = run_script(SESSION_SCRIPT, *args, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(session_folder(tmp_path), expected_files(find_session(sandbox, SESSION)))
    assert not list(tmp_path.rglob("*.part"))
    return result


@pytest.mark.parametrize("deflate", [False, True], ids=["stored", "deflated"])
def test_zips_stored_or_deflated_arrive_byte_for_byte(sandbox, tmp_path, deflate):
    sandbox.faults.zip_deflate = deflate
    result = download(sandbox, tmp_path, "--transfer", "zip")
    assert len(sandbox.zip_requests()) == SCANS and sandbox.file_requests() == []
    files = len(expected_files(find_session(sandbox, SESSION)))
    assert result.stderr.strip().splitlines()[-1].startswith(f"{files} files (")
    rerun = run_script(SESSION_SCRIPT, "--transfer", "zip", cwd=tmp_path, sandbox=sandbox)
    assert rerun.returncode == 0 and f"{files} already present" in rerun.stderr


@pytest.mark.parametrize("fault", ["reset_count", "short_count"])
def test_a_zip_cut_mid_stream_keeps_what_landed_and_completes(sandbox, tmp_path, fault):
    sandbox.faults.match = "format=zip"
    setattr(sandbox.faults, fault, SCANS)   # every scan's first zip is cut at half its length
    download(sandbox, tmp_path, "--transfer", "zip")
    # What a cut zip left came file by file, or by one more zip where most of a scan was left.
    files = len(expected_files(find_session(sandbox, SESSION)))
    assert SCANS < len(sandbox.zip_requests()) + len(sandbox.file_requests()) < SCANS + files
    assert data_bytes(sandbox) <= 2 * session_bytes(sandbox)


def test_failed_and_throttled_zips_are_retried(sandbox, tmp_path):
    sandbox.faults.match = "format=zip"
    sandbox.faults.status, sandbox.faults.status_count = 503, 2
    sandbox.faults.throttle_count, sandbox.faults.retry_after = 1, 0
    download(sandbox, tmp_path, "--transfer", "zip")
    assert len(sandbox.zip_requests()) == SCANS + 3 and sandbox.file_requests() == []


def test_a_stalled_zip_times_out_and_the_rest_arrives(sandbox, tmp_path):
    sandbox.faults.match = "format=zip"
    sandbox.faults.stall_count, sandbox.faults.stall_seconds = 1, HANG_GUARD
    events = SandboxEvents(sandbox)
    download(sandbox, tmp_path, "--transfer", "zip", "--timeout", "1")
    assert len(events.heard("stalled")) == 1
    # Everything arrived while that zip was still silent: the run gave up on it, not waited it out.
    assert events.heard("resumed") == []


def test_a_zip_entry_whose_md5_is_wrong_is_fetched_on_its_own(sandbox, tmp_path):
    sandbox.faults.match = "format=zip"
    sandbox.faults.corrupt_count = 1   # its CRC matches its bytes; only the catalog's MD5 can tell
    download(sandbox, tmp_path, "--transfer", "zip")
    assert len(sandbox.zip_requests()) == SCANS and len(sandbox.file_requests()) == 1


def test_an_expired_session_before_a_zip_logs_in_again(sandbox, tmp_path):
    sandbox.faults.expire_after = 5   # login, three listings, then the first zip finds it expired
    download(sandbox, tmp_path, "--transfer", "zip", "--workers", "1")
    assert [entry.status for entry in sandbox.zip_requests()] == [401] + [200] * SCANS


def test_a_scan_half_present_is_completed_file_by_file(sandbox, tmp_path):
    download(sandbox, tmp_path, "--transfer", "zip")
    scan_3 = session_folder(tmp_path) / "scan-3_func_rest"
    removed = sorted(path for path in scan_3.iterdir() if path.suffix == ".dcm")[:4]   # 4 of 8
    for path in removed:
        path.unlink()
    sandbox.clear_log()
    download(sandbox, tmp_path, "--transfer", "zip")
    assert sandbox.zip_requests() == [] and len(sandbox.file_requests()) == len(removed)


def test_with_one_worker_never_two_requests_are_in_flight(sandbox, tmp_path):
    sandbox.faults.latency = 0.01
    download(sandbox, tmp_path, "--workers", "1")
    assert sandbox.zip_requests() and sandbox.peak_in_flight == 1


def test_ctrl_c_mid_zip_keeps_what_landed_and_the_rerun_fetches_the_rest(sandbox, tmp_path):
    # One zip at a time: the first arrives whole, every later one stops half-way and stays
    # silent, so Ctrl-C comes mid-zip, after a whole scan is in.
    sandbox.faults.match, sandbox.faults.stall_seconds = "format=zip", 10 * HANG_GUARD
    events, rerun = SandboxEvents(sandbox), threading.Event()

    def stall_every_zip_after_the_first(heard) -> None:
        # Told before the request goes on and before it counts among the arrivals heard.
        if (heard.event == "arrived" and "format=zip" in heard.request and not rerun.is_set()
                and events.heard("arrived", "format=zip")):
            sandbox.faults.stall_count = -1

    events.on(stall_every_zip_after_the_first)
    process = start_script(SESSION_SCRIPT, "--transfer", "zip", "--workers", "1", cwd=tmp_path,
                           env=script_env(tmp_path, sandbox))
    try:
        events.wait_for("stalled", "format=zip")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=HANG_GUARD)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    expected = expected_files(find_session(sandbox, SESSION))
    landed = {name: path for name, path in data_files_below(session_folder(tmp_path)).items()
              if not name.endswith(".part")}
    assert landed and len(landed) < len(expected)
    scans_whole = [scan for scan in {name.split("/")[0] for name in expected}
                   if all(name in landed for name in expected if name.startswith(scan + "/"))]
    assert scans_whole, sorted(landed)
    for name, path in landed.items():   # nothing partial or wrong under a final name
        assert path.read_bytes() == expected[name]
    rerun.set()
    sandbox.faults.stall_count = 0
    sandbox.clear_log()
    download(sandbox, tmp_path)
    assert data_bytes(sandbox) < session_bytes(sandbox)


def test_two_runs_into_one_folder_by_zip_end_with_one_verified_copy(sandbox, tmp_path):
    sandbox.faults.pace = 100 * 1024
    env = script_env(tmp_path, sandbox)
    runs = [start_script(SESSION_SCRIPT, "--transfer", "zip", cwd=tmp_path, env=env) for _ in range(2)]
    for process in runs:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    assert_downloaded(session_folder(tmp_path), expected_files(find_session(sandbox, SESSION)))
    assert not list(tmp_path.rglob("*.part"))


def test_auto_spreads_a_dominant_scan_and_zips_the_others(make_sandbox, tmp_path):
    # One scan of 60 files beside three of 5: one zip of the big scan would be the whole wait, on
    # a network whose requests wait (latency) far longer than they compute, even on a busy machine.
    sandbox = make_sandbox(scale=Scale(subjects=1, sessions_per_subject=1, scans_per_session=4,
                                       files_per_scan=5, file_size=256 * 1024, first_scan_files=60))
    sandbox.faults.latency = 0.01
    result = run_script(SESSION_SCRIPT, "--project", "BIG", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    zipped = sorted(entry.path.split("/scans/")[1].split("/")[0] for entry in sandbox.zip_requests())
    singly = {entry.path.split("/scans/")[1].split("/")[0] for entry in sandbox.file_requests()}
    assert zipped == ["2", "3", "4"] and singly == {"1"}
    assert len(sandbox.file_requests()) == 60


def test_one_scan_with_many_workers_comes_file_by_file(sandbox, tmp_path):
    # Over a network with latency, where requests overlap (with none, they only take turns
    # computing, and one zip is sooner).
    sandbox.faults.latency = 0.05
    result = run_script(SCAN_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert sandbox.zip_requests() == [] and len(sandbox.file_requests()) == 5
