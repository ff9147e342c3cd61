"""A hostile or broken server: bodies longer than listed, bodies and zips without end, deflate
bombs, redirects to another host, and names that clean up alike. Nothing it sends may grow a file
past its listed size, stop the run, or make it wait on itself; each such transfer is one clear line."""
from __future__ import annotations

import pytest

from cli import data_files_below, find_session, run_script
from sandbox import File, Resource, Scan, Session, Subject
from xnat_download.names import name_tag

SCAN_SCRIPT = "3_download_single_scan.py"
SESSION_SCRIPT = "4_download_session.py"
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


# --- D2 and D7: folder names unique by construction --------------------------------------------

def clash_subject(sandbox) -> Subject:
    """A subject of DEMO whose scans, and whose sessions, clean up to one name two by two."""
    def scan(scan_id: str, scan_type: str, key: str) -> Scan:
        files = [File.from_bytes(f"{key}.dcm", f"scan {scan_id!r} of type {scan_type!r}".encode())]
        return Scan(id=scan_id, type=scan_type, key=key,
                    resources=[Resource(label="DICOM", cat_id=f"C_{key}", files=files)])

    def session(label: str, number: int, scans: list[Scan]) -> Session:
        return Session(id=f"XNAT_E_CLASH{number}", label=label, date="2024-03-0{number}", scans=scans)

    subject = Subject(id="XNAT_S_CLASH", label="sub-clash", sessions=[
        session("S1 MR1", 1, [scan("1", "T1", "a"), scan("1_T1", "", "b"),
                              scan("2", "a b", "c"), scan("2_a", "b", "d")]),
        session("S1_MR1", 2, [scan("1", "T1", "e")]),
        session("S2", 3, [scan("1", "T1", "f")]),
    ])
    sandbox.catalog.projects["DEMO"].subjects.append(subject)
    return subject


def folder_contents(folder) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in data_files_below(folder).items()}


def served(session) -> dict[str, bytes]:
    return {scan.key: scan.resources[0].files[0].data() for scan in session.scans}


def test_scans_and_sessions_whose_names_clean_up_alike_each_get_a_folder_of_their_own(sandbox, tmp_path):
    subject = clash_subject(sandbox)
    # Before, this waited for its own lock for ever, and a session clash stopped every later one.
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--subject", "sub-clash", cwd=tmp_path,
                        sandbox=sandbox, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "waiting for another download" not in result.stderr
    output = tmp_path / "downloaded_data"
    assert sorted(path.name for path in output.iterdir()) == sorted(
        ["session-S1_MR1", f"session-S1_MR1_{name_tag('session-S1 MR1')}", "session-S2"])
    spaced = output / f"session-S1_MR1_{name_tag('session-S1 MR1')}"
    # A clean ID keeps a plain folder; an ID holding `_` gets a tag of its raw ID and type.
    assert folder_contents(spaced) == {
        "scan-1_T1/a.dcm": served(subject.sessions[0])["a"],
        f"scan-1_T1_{name_tag(repr(('1_T1', '')))}/b.dcm": served(subject.sessions[0])["b"],
        "scan-2_a_b/c.dcm": served(subject.sessions[0])["c"],   # a clean ID needs no tag
        f"scan-2_a_b_{name_tag(repr(('2_a', 'b')))}/d.dcm": served(subject.sessions[0])["d"]}
    assert folder_contents(output / "session-S1_MR1") == {"scan-1_T1/e.dcm": served(subject.sessions[1])["e"]}
    assert folder_contents(output / "session-S2") == {"scan-1_T1/f.dcm": served(subject.sessions[2])["f"]}
    sandbox.clear_log()
    again = run_script(SESSION_SCRIPT, "--all-sessions", "--subject", "sub-clash", cwd=tmp_path,
                       sandbox=sandbox, timeout=30)
    assert again.returncode == 0 and sandbox.file_requests() == []   # every file found where it was put


def test_a_folder_an_earlier_version_tagged_is_renamed_not_downloaded_again(sandbox, tmp_path):
    subject = clash_subject(sandbox)
    args = ["--subject", "sub-clash", "--session", "S1 MR1"]
    first = run_script(SESSION_SCRIPT, *args, cwd=tmp_path, sandbox=sandbox, timeout=30)
    assert first.returncode == 0, first.stderr
    # What the version before this one left: the same files and manifest, under the tagged name it
    # gave every type that cleaning changed (`a b`), though scan 2's ID is clean.
    session = tmp_path / "downloaded_data" / f"session-S1_MR1_{name_tag('session-S1 MR1')}"
    former = session / f"scan-2_a_b_{name_tag(repr(('2', 'a b')))}"
    (session / "scan-2_a_b").rename(former)
    sandbox.clear_log()
    dry = run_script(SESSION_SCRIPT, *args, "--dry-run", cwd=tmp_path, sandbox=sandbox, timeout=30)
    assert dry.returncode == 0, dry.stderr
    assert "would download 0 files (0 B)" in dry.stdout and former.is_dir()   # nothing written
    again = run_script(SESSION_SCRIPT, *args, cwd=tmp_path, sandbox=sandbox, timeout=30)
    assert again.returncode == 0, again.stderr
    assert f"renamed {former.relative_to(tmp_path)} to scan-2_a_b, the name this version gives it\n" \
        in again.stderr
    assert not former.exists()
    assert folder_contents(session / "scan-2_a_b") == {"c.dcm": served(subject.sessions[0])["c"]}
    assert sandbox.file_requests() == [] and sandbox.zip_requests() == []   # no data fetched again
    assert again.stderr.splitlines()[-1].startswith("0 files (0 B) downloaded, 4 already present")


def test_a_tagged_folder_of_another_scan_is_left_alone(sandbox, tmp_path):
    clash_subject(sandbox)
    args = ["--subject", "sub-clash", "--session", "S1 MR1", "--scans", "2"]
    assert run_script(SESSION_SCRIPT, *args, cwd=tmp_path, sandbox=sandbox, timeout=30).returncode == 0
    session = tmp_path / "downloaded_data" / f"session-S1_MR1_{name_tag('session-S1 MR1')}"
    manifest = session / "scan-2_a_b" / ".xnat-manifest.json"
    manifest.write_text(manifest.read_text().replace('"resource": "DICOM"', '"resource": "OTHER"'))
    former = session / f"scan-2_a_b_{name_tag(repr(('2', 'a b')))}"
    (session / "scan-2_a_b").rename(former)
    sandbox.clear_log()
    again = run_script(SESSION_SCRIPT, *args, cwd=tmp_path, sandbox=sandbox, timeout=30)
    assert again.returncode == 0, again.stderr
    assert "renamed" not in again.stderr and former.is_dir()   # not its scan: fetched afresh
    assert len(sandbox.file_requests() + sandbox.zip_requests()) == 1


def test_a_folder_an_older_layout_filled_with_another_sessions_scan_is_refused_and_the_run_goes_on(
        sandbox, tmp_path):
    subject = clash_subject(sandbox)
    first = run_script(SESSION_SCRIPT, "--subject", "sub-clash", "--session", "S1 MR1", cwd=tmp_path,
                       sandbox=sandbox, timeout=30)
    assert first.returncode == 0, first.stderr
    # Older versions put session `S1 MR1` where session `S1_MR1` now belongs.
    output = tmp_path / "downloaded_data"
    (output / f"session-S1_MR1_{name_tag('session-S1 MR1')}").rename(output / "session-S1_MR1")
    before = folder_contents(output / "session-S1_MR1")
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--subject", "sub-clash", cwd=tmp_path,
                        sandbox=sandbox, timeout=30)
    assert the_error(result) == (f"{SESSION_SCRIPT}: error: 1 scan was not downloaded: "
                                 f"downloaded_data/session-S1_MR1/scan-1_T1 holds another scan's data "
                                 f"(from DEMO/S1 MR1 scan 1): nothing was written there; move that "
                                 f"folder away, or choose another folder with --output-dir")
    assert ", 1 scan failed in " in result.stderr
    assert folder_contents(output / "session-S1_MR1") == before   # untouched
    # The sessions around it still arrive, the first one again under its own name.
    assert folder_contents(output / "session-S2") == {"scan-1_T1/f.dcm": served(subject.sessions[2])["f"]}
    assert len(folder_contents(output / f"session-S1_MR1_{name_tag('session-S1 MR1')}")) == 4


def test_a_scan_whose_name_was_made_to_match_anothers_tag_is_refused_not_waited_for(sandbox, tmp_path):
    # Scan 1_T1 (no type) is tagged; a scan 1 whose type ends in that very tag would take the same
    # folder, which construction cannot prevent: the run must say so, not wait for its own lock.
    session = find_session(sandbox, SESSION)
    tagged, mimic = session.scans[1], session.scans[2]
    tagged.id, tagged.type = "1_T1", ""
    mimic.id, mimic.type = "1", f"T1_{name_tag(repr(('1_T1', '')))}"
    session.scans[0].id = "9"
    result = run_script(SESSION_SCRIPT, "--scans", "1", "1_T1", cwd=tmp_path, sandbox=sandbox, timeout=30)
    folder = f"session-{SESSION}/scan-1_T1_{name_tag(repr(('1_T1', '')))}"
    assert the_error(result) == (
        f"{SESSION_SCRIPT}: error: 1 scan was not downloaded: {folder}: scan 1_T1 would share this "
        f"folder with scan 1 (their names differ only in case, or were made to look alike); it was "
        f"not downloaded: fetch it on its own with --scans 1_T1 and another --output-dir")
    assert_arrived(tmp_path / "downloaded_data" / folder, mimic.resources[0].files)


# --- redirects: followed on the server only ----------------------------------------------------

@pytest.fixture
def elsewhere(make_sandbox):
    """Another XNAT on another loopback host, serving the same demo data."""
    return make_sandbox(host="127.0.0.2")


def test_a_file_redirected_to_another_host_fails_alone_and_nothing_goes_there(sandbox, elsewhere, tmp_path):
    files = scan_2(sandbox)
    victim = files[2]
    sandbox.faults.match = victim.name
    sandbox.faults.redirect_count, sandbox.faults.redirect_to = -1, elsewhere.url
    result = fetch_scan_2(sandbox, tmp_path, "files")
    the_error(result)
    assert (f"failed: scan-2_T2/{victim.name}: the server sent the request for it on to another "
            f"server ({elsewhere.url}); not followed: files come from the server only\n") in result.stderr
    assert elsewhere.log == [] and requests_for(sandbox, victim.name) == 1
    assert_arrived(tmp_path / "downloaded_data" / "scan-2_T2", [f for f in files if f is not victim])


def test_a_zip_redirected_to_another_host_is_not_followed_and_its_files_come_one_by_one(
        sandbox, elsewhere, tmp_path):
    sandbox.faults.match = "format=zip"
    sandbox.faults.redirect_count, sandbox.faults.redirect_to = -1, elsewhere.url
    result = fetch_scan_2(sandbox, tmp_path, "zip")
    assert result.returncode == 0, result.stderr
    assert elsewhere.log == [] and len(sandbox.zip_requests()) == 1
    assert_arrived(tmp_path / "downloaded_data" / "scan-2_T2", scan_2(sandbox))


def test_a_listing_redirected_to_another_host_is_one_error_and_nothing_goes_there(sandbox, elsewhere, tmp_path):
    sandbox.faults.match = "/files?format=json"
    sandbox.faults.redirect_count, sandbox.faults.redirect_to = -1, elsewhere.url
    result = fetch_scan_2(sandbox, tmp_path, "files")
    error = the_error(result)
    assert error.startswith(f"{SCAN_SCRIPT}: error: 127.0.0.1 sent the request for /data/experiments/")
    assert error.endswith(f"/files on to another server ({elsewhere.url}); not followed: listings and "
                          f"files come from 127.0.0.1 only")
    assert elsewhere.log == [] and not (tmp_path / "downloaded_data").exists()


def test_a_redirect_on_the_server_itself_is_followed(sandbox, tmp_path):
    sandbox.faults.match = "/resources/"   # the files listing, then the first files
    sandbox.faults.redirect_count, sandbox.faults.redirect_to = 3, sandbox.url
    result = fetch_scan_2(sandbox, tmp_path, "files")
    assert result.returncode == 0, result.stderr
    assert_arrived(tmp_path / "downloaded_data" / "scan-2_T2", scan_2(sandbox))
    assert sum(1 for entry in sandbox.log if entry.status == 302) == 3


def test_an_expired_session_sent_to_a_login_page_elsewhere_logs_in_again(sandbox, elsewhere, tmp_path):
    # Sites with single sign-on send an expired session to their login service on another host.
    files = scan_2(sandbox)
    sandbox.faults.match = files[0].name
    sandbox.faults.redirect_count, sandbox.faults.redirect_to = 1, f"{elsewhere.url}/sso/login?next="
    result = fetch_scan_2(sandbox, tmp_path, "files")
    assert result.returncode == 0, result.stderr
    assert elsewhere.log == [] and requests_for(sandbox, files[0].name) == 2
    logins = [entry for entry in sandbox.log if entry.method == "GET" and entry.path.endswith("/data/JSESSION")]
    assert len(logins) == 2   # the first login, and one fresh login
    assert_arrived(tmp_path / "downloaded_data" / "scan-2_T2", files)
