"""3_download_single_scan.py and 4_download_session.py against the sandbox: bytes, layout,
filters, sessions and shards, dry runs, resume, and the faults a real network brings."""
from __future__ import annotations

import json
import signal

import pytest

from cli import (assert_downloaded, data_files_below, expected_files, find_session, md5_of, run_script,
                 script_env, start_script)
from events import HANG_GUARD, SandboxEvents, wait_until

from common import scan_folder_name
from xnat_download.catalog import Scan, natural_key

SESSION_SCRIPT = "4_download_session.py"
SCAN_SCRIPT = "3_download_single_scan.py"


def file_gets(sandbox):
    return sandbox.file_requests()


# --- what lands on disk ------------------------------------------------------------------------

def test_default_session_downloads_every_dicom_file_byte_for_byte(default_download):
    sandbox, tmp_path, result = default_download.server, default_download.root, default_download.result
    assert result.returncode == 0, result.stderr
    session = find_session(sandbox, "sub-2_ses-1")   # first subject, natural order
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-2_ses-1", expected_files(session))
    assert "skipped scan 4 (localizer) of sub-2_ses-1: no DICOM resource" in result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    count = len(expected_files(session))
    assert summary.startswith(f"{count} files (")
    assert "0 failed" in summary and "downloaded_data" in summary


def test_manifest_records_the_source_and_every_verified_file(default_download):
    sandbox, tmp_path, result = default_download.server, default_download.root, default_download.result
    assert result.returncode == 0, result.stderr
    session = find_session(sandbox, "sub-2_ses-1")
    scan = session.scans[0]
    folder = tmp_path / "downloaded_data" / "session-sub-2_ses-1" / scan_folder_name(Scan(scan.id, scan.type))
    manifest = json.loads((folder / ".xnat-manifest.json").read_text())
    assert manifest["source"] == {"server": sandbox.url, "project": "DEMO", "subject": "sub-2",
                                  "session": "sub-2_ses-1", "session_id": session.id,
                                  "scan": scan.id, "type": scan.type, "resource": "DICOM"}
    dicom = next(r for r in scan.resources if r.label == "DICOM")
    assert {name: (entry["size"], entry["md5"]) for name, entry in manifest["files"].items()} == {
        f.name: (f.size, f.md5) for f in dicom.files}
    assert sandbox.password not in json.dumps(manifest)


def test_sub_folders_of_a_resource_are_kept(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--subject", "sub-3", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    session = find_session(sandbox, "sub-3_ses-1")
    expected = expected_files(session)
    assert any("/secondary/" in name for name in expected)
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-3_ses-1", expected)


def test_single_scan_goes_to_its_own_folder(sandbox, tmp_path):
    result = run_script(SCAN_SCRIPT, "--subject", "sub-10", "--session", "sub-10_ses-2", "--scan", "2",
                        cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    session = find_session(sandbox, "sub-10_ses-2")
    expected = expected_files(session, scan_ids={"2"})
    assert_downloaded(tmp_path / "downloaded_data", expected)


def test_single_scan_defaults_to_the_first_scan_with_dicom(sandbox, tmp_path):
    result = run_script(SCAN_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    session = find_session(sandbox, "sub-2_ses-1")
    first = sorted((s for s in session.scans if any(r.label == "DICOM" for r in s.resources)),
                   key=lambda s: natural_key(s.id))[0]
    assert_downloaded(tmp_path / "downloaded_data", expected_files(session, scan_ids={first.id}))


def test_session_label_alone_is_found_across_the_project(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--session", "sub-10_ses-2", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-10_ses-2",
                      expected_files(find_session(sandbox, "sub-10_ses-2")))


def test_workers_1_is_sequential_and_gives_the_same_files(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--workers", "1", "--transfer", "files", cwd=tmp_path,
                        sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-2_ses-1",
                      expected_files(find_session(sandbox, "sub-2_ses-1")))


# --- filters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, scan_ids", [
    (["--scan-types", "t1"], {"1"}),
    (["--scan-types", "T1", "func_rest"], {"1", "3", "5"}),
    (["--scan-types", "*bold*"], {"3", "5"}),       # matches the series description
    (["--scan-types", "T*"], {"1", "2"}),
    (["--scans", "2", "3"], {"2", "3"}),
    (["--scans", "1", "2", "--scan-types", "T2"], {"2"}),
])
def test_filters_keep_only_matching_scans(sandbox, tmp_path, args, scan_ids):
    result = run_script(SESSION_SCRIPT, "--subject", "sub-2", *args, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-2_ses-1",
                      expected_files(find_session(sandbox, "sub-2_ses-1"), scan_ids=scan_ids))


def test_a_filter_that_matches_nothing_names_the_types_there(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--scan-types", "flair", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("4_download_session.py: error: no scan in session sub-2_ses-1 matches "
                           "--scan-types flair; types there: ")
    assert "T1" in line and "func_rest" in line
    assert not (tmp_path / "downloaded_data").exists()


def test_a_missing_scan_id_names_the_scans_there(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--scans", "99", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert "scan 99 not found in session sub-2_ses-1; scans there: 1 (T1)" in result.stderr


def test_missing_session_and_scan_are_named(sandbox, tmp_path):
    result = run_script(SCAN_SCRIPT, "--subject", "sub-2", "--session", "nope", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert "session nope not found for subject sub-2 in project DEMO; sessions there: sub-2_ses-1" \
        in result.stderr
    result = run_script(SCAN_SCRIPT, "--scan", "4", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert "scan 4 of session sub-2_ses-1 has no DICOM resource" in result.stderr


# --- many sessions ------------------------------------------------------------------------------

def all_demo_files(sandbox, labels=None) -> dict[str, bytes]:
    expected = {}
    for subject in sandbox.catalog.projects["DEMO"].subjects:
        for session in subject.sessions:
            if labels is None or session.label in labels:
                for name, data in expected_files(session).items():
                    expected[f"session-{session.label}/{name}"] = data
    return expected


def test_all_sessions_of_the_project(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--all-sessions", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data", all_demo_files(sandbox))


def test_all_sessions_of_one_subject(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--subject", "sub-10", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data",
                      all_demo_files(sandbox, {"sub-10_ses-1", "sub-10_ses-2"}))


def test_shards_together_are_the_whole_with_no_overlap(sandbox, tmp_path):
    seen: dict[str, int] = {}
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        result = run_script(SESSION_SCRIPT, "--all-sessions", "--shard", f"{k}/3", "--output-dir", str(out),
                            cwd=tmp_path, sandbox=sandbox)
        assert result.returncode == 0, result.stderr
        for session_folder in out.iterdir():
            seen[session_folder.name] = seen.get(session_folder.name, 0) + 1
    every = {f"session-{s.label}" for subj in sandbox.catalog.projects["DEMO"].subjects for s in subj.sessions}
    assert set(seen) == every and set(seen.values()) == {1}


def test_an_empty_shard_exits_0_with_a_note(sandbox, tmp_path, in_process):
    result = in_process(SESSION_SCRIPT, "--all-sessions", "--shard", "9/9", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert "shard 9/9 has no session to download" in result.stderr


def test_shard_without_all_sessions_is_a_usage_error(sandbox, tmp_path, in_process):
    result = in_process(SESSION_SCRIPT, "--shard", "1/2", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "4_download_session.py: error: --shard works with --all-sessions")
    assert sandbox.log == []


def test_dry_run_writes_nothing_and_fetches_no_file(sandbox, tmp_path, in_process):
    result = in_process(SESSION_SCRIPT, "--dry-run", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "downloaded_data").exists()
    assert file_gets(sandbox) == []
    expected = expected_files(find_session(sandbox, "sub-2_ses-1"))
    assert f"would download {len(expected)} files" in result.stdout


# --- resume ------------------------------------------------------------------------------------

def test_a_complete_download_repeated_fetches_no_file(sandbox, default_download, tmp_path):
    default_download.copy_into(tmp_path)
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert file_gets(sandbox) == []
    count = len(expected_files(find_session(sandbox, "sub-2_ses-1")))
    assert result.stderr.strip().splitlines()[-1].startswith(f"0 files (0 B) downloaded, {count} already present")


def test_resume_fetches_only_what_is_missing_or_wrong(sandbox, default_download, tmp_path):
    folder = default_download.copy_into(tmp_path)
    files = sorted(data_files_below(folder).values())
    files[0].unlink()                                  # lost
    files[1].write_bytes(b"not the scan")              # damaged
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert len(file_gets(sandbox)) == 2
    assert_downloaded(folder, expected_files(find_session(sandbox, "sub-2_ses-1")))


def test_a_leftover_part_file_is_continued_or_replaced(sandbox, default_download, tmp_path):
    folder = default_download.copy_into(tmp_path)
    victim = sorted(data_files_below(folder).values())[0]
    data = victim.read_bytes()
    victim.unlink()
    victim.with_name(victim.name + ".part").write_bytes(data[: len(data) // 2])
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == data
    assert not victim.with_name(victim.name + ".part").exists()


# --- faults on the way --------------------------------------------------------------------------

@pytest.mark.parametrize("fault", [
    {"status": 503, "status_count": 3},
    {"status": 500, "status_count": 3},
    {"throttle_count": 3, "retry_after": 0},
    {"reset_count": 3},
    {"short_count": 3},
    {"corrupt_count": 3},
])
def test_transient_faults_are_retried_until_every_file_is_right(sandbox, tmp_path, fault):
    for name, value in fault.items():
        setattr(sandbox.faults, name, value)
    result = run_script(SESSION_SCRIPT, "--transfer", "files", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    expected = expected_files(find_session(sandbox, "sub-2_ses-1"))
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-2_ses-1", expected)
    assert not list((tmp_path / "downloaded_data").rglob("*.part"))
    assert len(file_gets(sandbox)) == len(expected) + 3   # each fault cost exactly one retry


def test_retry_after_is_respected(sandbox, tmp_path):
    sandbox.faults.throttle_count = 1
    sandbox.faults.retry_after = 1   # our own wait between attempts is 0.01 s (script_env)
    events = SandboxEvents(sandbox)
    result = run_script(SESSION_SCRIPT, "--workers", "1", "--transfer", "files", cwd=tmp_path,
                        sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    throttled = [e for e in sandbox.log if e.status == 429]
    assert len(throttled) == 1
    asked = events.heard("arrived", f"GET {throttled[0].path}")
    assert [e.status for e in sandbox.log if e.path == throttled[0].path] == [429, 200]
    # Measured at the server between the two arrivals of that file, so that a slow machine only
    # widens the gap: the retry came no sooner than the server asked.
    assert asked[1].at - asked[0].at >= 1.0


def test_a_file_that_stays_wrong_fails_the_run_after_the_others_arrive(sandbox, tmp_path):
    session = find_session(sandbox, "sub-2_ses-1")
    victim = session.scans[1].resources[0].files[0]
    sandbox.faults.match = victim.name
    sandbox.faults.corrupt_count = -1
    result = run_script(SESSION_SCRIPT, "--retries", "2", "--transfer", "files", cwd=tmp_path,
                        sandbox=sandbox)
    assert result.returncode == 1
    assert "MD5 digest did not match" in result.stderr and victim.name in result.stderr
    assert "1 file(s) could not be downloaded" in result.stderr.strip().splitlines()[-1]
    expected = expected_files(session)
    missing = [name for name in expected if name.endswith(victim.name)]
    folder = tmp_path / "downloaded_data" / "session-sub-2_ses-1"
    assert sorted(data_files_below(folder)) == sorted(set(expected) - set(missing))
    assert not list(folder.rglob("*.part"))
    # The fault heals: the next run fetches only that file.
    sandbox.faults.corrupt_count = 0
    sandbox.clear_log()
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert len(file_gets(sandbox)) == 1
    assert_downloaded(folder, expected)


def test_a_file_the_server_cannot_find_is_listed_as_failed(sandbox, tmp_path):
    sandbox.faults.missing_count = 1   # single-file requests only: --transfer files makes some
    result = run_script(SESSION_SCRIPT, "--transfer", "files", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert "404" in result.stderr and "failed: " in result.stderr


def test_an_expired_session_logs_in_again_and_carries_on(sandbox, tmp_path):
    sandbox.faults.expire_after = 5
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert any(e.status == 401 for e in sandbox.log)
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-2_ses-1",
                      expected_files(find_session(sandbox, "sub-2_ses-1")))


def test_a_stalled_transfer_times_out_and_is_retried(sandbox, tmp_path):
    sandbox.faults.stall_count = 1
    sandbox.faults.stall_seconds = 30
    result = run_script(SESSION_SCRIPT, "--timeout", "1", "--verbose", "--transfer", "files", cwd=tmp_path,
                        sandbox=sandbox)   # the stall hits a single-file request
    assert result.returncode == 0, result.stderr
    assert "the server stopped answering (timed out)" in result.stderr
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-2_ses-1",
                      expected_files(find_session(sandbox, "sub-2_ses-1")))


# --- interruptions and company -----------------------------------------------------------------

@pytest.mark.parametrize("stop, exit_status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_an_interrupted_download_exits_and_a_rerun_completes(sandbox, tmp_path, stop, exit_status):
    sandbox.faults.stall_count = -1
    sandbox.faults.stall_seconds = 60
    events = SandboxEvents(sandbox)
    process = start_script(SESSION_SCRIPT, "--workers", "2", "--transfer", "files", cwd=tmp_path,
                           env=script_env(tmp_path, sandbox))
    try:
        events.wait_for("stalled")   # a worker is now inside a body that has fallen silent
        wait_until(lambda: list(tmp_path.rglob("*.part")), "a .part file (the download started)")
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=HANG_GUARD)
    finally:
        process.kill()
    assert events.heard("resumed") == [], "it stopped only once the stalled answers went on"
    assert process.returncode == exit_status, stderr
    assert stderr.strip().splitlines()[-1] == (
        "4_download_session.py: interrupted; running the same command again resumes where it stopped")
    assert "Traceback" not in stderr
    folder = tmp_path / "downloaded_data" / "session-sub-2_ses-1"
    expected = expected_files(find_session(sandbox, "sub-2_ses-1"))
    for name, path in data_files_below(folder).items():   # nothing partial under a final name
        if not name.endswith(".part"):
            assert path.read_bytes() == expected[name]
    sandbox.faults.stall_count = 0
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(folder, expected)


def test_two_downloads_into_one_folder_end_with_one_verified_copy(sandbox, tmp_path):
    sandbox.faults.latency = 0.02
    env = script_env(tmp_path, sandbox)
    first = start_script(SESSION_SCRIPT, "--workers", "2", cwd=tmp_path, env=env)
    second = start_script(SESSION_SCRIPT, "--workers", "2", cwd=tmp_path, env=env)
    for process in (first, second):
        process.communicate(timeout=60)
        assert process.returncode == 0
    folder = tmp_path / "downloaded_data" / "session-sub-2_ses-1"
    assert_downloaded(folder, expected_files(find_session(sandbox, "sub-2_ses-1")))
    manifest_files = set()
    for manifest in folder.rglob(".xnat-manifest.json"):
        data = json.loads(manifest.read_text())
        manifest_files |= {f"{manifest.parent.name}/{name}" for name in data["files"]}
    assert manifest_files == set(expected_files(find_session(sandbox, "sub-2_ses-1")))


def test_a_folder_holding_another_scans_data_is_never_written_into(sandbox, tmp_path):
    # Scan 1 of two sessions shares a folder name in the single-scan layout.
    first = run_script(SCAN_SCRIPT, "--subject", "sub-10", "--session", "sub-10_ses-1", "--scan", "1",
                       cwd=tmp_path, sandbox=sandbox)
    assert first.returncode == 0, first.stderr
    before = {name: md5_of(path) for name, path in data_files_below(tmp_path / "downloaded_data").items()}
    second = run_script(SCAN_SCRIPT, "--subject", "sub-10", "--session", "sub-10_ses-2", "--scan", "1",
                        cwd=tmp_path, sandbox=sandbox)
    assert second.returncode == 1
    lines = second.stderr.splitlines()
    # The summary counts the scan that failed; the error line names it, its folder and the way out.
    assert lines[-2].startswith("0 files (0 B) downloaded, 0 already present (0 B), 1 scan failed in ")
    assert lines[-1] == (f"{SCAN_SCRIPT}: error: 1 scan was not downloaded: downloaded_data/scan-1_T1 "
                         f"holds another scan's data (from DEMO/sub-10_ses-1 scan 1): nothing was "
                         f"written there; move that folder away, or choose another folder with "
                         f"--output-dir")
    after = {name: md5_of(path) for name, path in data_files_below(tmp_path / "downloaded_data").items()}
    assert after == before


def test_a_folder_where_a_file_belongs_fails_that_file_only(sandbox, default_download, tmp_path):
    folder = default_download.copy_into(tmp_path)
    victim = sorted(data_files_below(folder).values())[0]
    victim.unlink()
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert f"{victim.name}: could not take its name: Is a directory" in result.stderr
    assert "running the same command again retries them" in result.stderr.splitlines()[-1]
    assert (victim / "keep.txt").read_text() == "mine"


def test_a_manifest_that_is_a_folder_is_reported(sandbox, tmp_path):
    assert run_script(SESSION_SCRIPT, "--scans", "1", cwd=tmp_path, sandbox=sandbox).returncode == 0
    manifest = tmp_path / "downloaded_data" / "session-sub-2_ses-1" / "scan-1_T1" / ".xnat-manifest.json"
    manifest.unlink()
    manifest.mkdir()
    result = run_script(SESSION_SCRIPT, "--scans", "1", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"4_download_session.py: error: {manifest.relative_to(tmp_path)} is not a file: move it away, "
        f"then run again")


def test_the_default_session_is_the_first_in_the_project_that_has_the_resource(sandbox, tmp_path):
    first = find_session(sandbox, "sub-2_ses-1")
    for scan in first.scans:   # the first subject's only session loses its DICOM
        scan.resources = [r for r in scan.resources if r.label != "DICOM"]
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data" / "session-sub-3_ses-1",
                      expected_files(find_session(sandbox, "sub-3_ses-1")))
    result = run_script(SESSION_SCRIPT, "--subject", "sub-2", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "4_download_session.py: error: no session of subject sub-2 in project DEMO has a DICOM "
        "resource; sessions there: sub-2_ses-1")


def test_without_server_digests_files_are_checked_by_size_and_leftovers_are_not_continued(sandbox, tmp_path):
    sandbox.faults.no_digest = True
    assert run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox).returncode == 0
    folder = tmp_path / "downloaded_data" / "session-sub-2_ses-1"
    expected = expected_files(find_session(sandbox, "sub-2_ses-1"))
    assert_downloaded(folder, expected)
    victim = sorted(data_files_below(folder).values())[0]
    size = victim.stat().st_size
    victim.unlink()   # a stranger's half file: nothing could tell it apart from ours
    victim.with_name(victim.name + ".part").write_bytes(b"x" * (size // 2))
    sandbox.clear_log()
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(folder, expected)
    assert not any(entry.path.endswith(victim.name) and entry.status == 206 for entry in sandbox.log)


def test_all_sessions_skips_sessions_without_a_match_and_fails_only_if_none_match(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--scan-types", "func_rest", cwd=tmp_path,
                        sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert "skipped session sub-10_ses-2: no scan with a DICOM resource passes the filters" in result.stderr
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--scan-types", "flair", cwd=tmp_path,
                        sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "4_download_session.py: error: no scan in 4 session(s) has a DICOM resource and passes the "
        "filters (--scan-types flair); types there: dwi, fmap, func_rest, localizer, T1, T2")


def test_all_sessions_starts_downloading_before_listing_the_last_session(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--all-sessions", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    paths = [entry.path for entry in sandbox.log]
    file_listings = [i for i, path in enumerate(paths) if "/scans/ALL/" in path]
    # A file, or a scan's zip (.../scans/<ID>/resources/DICOM/files).
    first_data = next(i for i, path in enumerate(paths) if "/files" in path and "/scans/ALL/" not in path)
    assert first_data < file_listings[-1]


def test_a_different_file_left_by_something_else_is_never_overwritten(sandbox, tmp_path):
    session = find_session(sandbox, "sub-2_ses-1")
    expected = expected_files(session)
    folder = tmp_path / "downloaded_data" / "session-sub-2_ses-1"
    theirs, same = sorted(expected)[:2]
    for name, data in ((theirs, b"another tool's file"), (same, expected[same])):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert f"{theirs.split('/')[-1]}: a different file of this name was already there" in result.stderr
    assert (folder / theirs).read_bytes() == b"another tool's file"
    on_disk = data_files_below(folder)
    assert sorted(on_disk) == sorted(expected)
    assert all(on_disk[name].read_bytes() == data for name, data in expected.items() if name != theirs)
    assert "1 already present" in result.stderr   # the identical one is adopted, not fetched again
    assert "running again will not change them" in result.stderr.splitlines()[-1]
    again = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)   # and not on a second run
    assert again.returncode == 1
    assert (folder / theirs).read_bytes() == b"another tool's file"


def test_files_the_listing_links_to_another_server_are_refused_unfetched(make_sandbox, tmp_path):
    ours, elsewhere = make_sandbox(), make_sandbox()
    ours.faults.foreign_links = elsewhere.url
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=ours)
    assert result.returncode == 1
    assert "refused: the listing links it to another server" in result.stderr
    assert elsewhere.log == []
    assert data_files_below(tmp_path / "downloaded_data") == {}


def test_combined_filters_that_exclude_everything_name_both(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--scan-types", "T1", "--scans", "2", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "4_download_session.py: error: no scan in session sub-2_ses-1 passes both --scans 2 and "
        "--scan-types T1; scans there: 1 (T1), 2 (T2), 3 (func_rest), 4 (localizer), 5 (func_rest), "
        "6 (dwi), 7 (fmap), 8 (fmap)")


def test_only_scans_the_filters_chose_are_reported_as_skipped(sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--scan-types", "T1", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert "skipped scan" not in result.stderr and " skipped" not in result.stderr
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--subject", "sub-2", cwd=tmp_path, sandbox=sandbox)
    assert "skipped scan 4 (localizer) of sub-2_ses-1: no DICOM resource" in result.stderr


def test_all_sessions_of_a_subject_without_sessions_is_an_error(sandbox, tmp_path):
    subject = next(s for s in sandbox.catalog.projects["DEMO"].subjects if s.label == "sub-3")
    subject.sessions = []
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--subject", "sub-3", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "4_download_session.py: error: subject sub-3 in project DEMO has no session to download")


def test_dry_run_counts_what_a_real_run_would_fetch(sandbox, default_download, tmp_path, in_process):
    folder = default_download.copy_into(tmp_path)
    sorted(data_files_below(folder).values())[0].unlink()
    count = len(expected_files(find_session(sandbox, "sub-2_ses-1")))
    result = in_process(SESSION_SCRIPT, "--dry-run", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert "would download 1 files (" in result.stdout
    assert f"{count - 1} already present; nothing was written" in result.stdout
    assert file_gets(sandbox) == [] and len(data_files_below(folder)) == count - 1


def test_dry_run_reports_a_folder_of_another_scan_as_the_real_run_would(sandbox, tmp_path, in_process):
    args = ["--subject", "sub-10", "--scan", "1"]
    assert run_script(SCAN_SCRIPT, *args, "--session", "sub-10_ses-1", cwd=tmp_path, sandbox=sandbox).returncode == 0
    result = in_process(SCAN_SCRIPT, *args, "--session", "sub-10_ses-2", "--dry-run", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert "holds another scan's data" in result.stderr.splitlines()[-1]
