"""Bad answers from the server and trouble on the local side: each ends in one clear error line or
a safe recovery, never a traceback, and never a partial or wrong file under a final name."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cli import data_files_below, run_script, script_env, start_script
from events import HANG_GUARD, SandboxEvents

from common import scan_folder_name
from xnat_download.names import safe_relative_path
from xnat_download.catalog import Scan

SESSION_SCRIPT = "4_download_session.py"
SCAN_SCRIPT = "3_download_single_scan.py"
FIRST_SESSION = "sub-2_ses-1"   # what both download scripts take by default


def demo_session(sandbox, label=FIRST_SESSION):
    return next(session for subject in sandbox.catalog.projects["DEMO"].subjects
                for session in subject.sessions if session.label == label)


def served_files(session, scan_ids=None) -> dict[str, bytes]:
    """Relative path below the session folder -> the bytes the sandbox serves (DICOM only)."""
    return {f"{scan_folder_name(Scan(id=scan.id, type=scan.type))}/{safe_relative_path(file.name)}":
            file.data()
            for scan in session.scans if scan_ids is None or scan.id in scan_ids
            for res in scan.resources if res.label == "DICOM" for file in res.files}


def assert_downloaded(folder: Path, expected: dict[str, bytes]) -> None:
    on_disk = data_files_below(folder)
    assert sorted(on_disk) == sorted(expected)
    for name, data in expected.items():
        assert on_disk[name].read_bytes() == data, name


def assert_nothing_wrong_under_a_final_name(folder: Path, expected: dict[str, bytes]) -> None:
    for name, path in data_files_below(folder).items():
        if not name.endswith(".part"):
            assert path.read_bytes() == expected[name], name


def the_error(result, script: str) -> str:
    """The run failed with exactly one error line, the last one, and no traceback."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert errors == [lines[-1]], result.stderr
    assert errors[0].startswith(f"{script}: error: ")
    assert "Traceback" not in result.stderr and "unexpected" not in errors[0]
    return errors[0]


def logins_after(log, index: int) -> int:
    """Fresh logins (our GET /data/JSESSION with credentials) after log entry `index`."""
    return sum(1 for entry in log[index + 1:]
               if entry.method == "GET" and entry.path.endswith("/data/JSESSION"))


# --- listings that are not what they claim -----------------------------------------------------

SPOILED = {"html": "an HTML page instead of JSON", "empty": "an empty answer",
           "truncated": "JSON that does not parse", "nokeys": "JSON without ResultSet.Result"}


@pytest.mark.parametrize("kind", SPOILED)
def test_a_project_list_that_is_not_json_is_one_error_naming_its_path(sandbox, tmp_path, kind):
    sandbox.faults.listing = kind
    sandbox.faults.listing_match = "/data/projects"
    result = run_script("1_list_projects.py", cwd=tmp_path, sandbox=sandbox)
    line = the_error(result, "1_list_projects.py")
    assert line.startswith(f"1_list_projects.py: error: 127.0.0.1 sent an unusable listing for "
                           f"/data/projects: {SPOILED[kind]}")
    assert result.stdout == ""


@pytest.mark.parametrize("kind", SPOILED)
def test_a_files_listing_that_is_not_json_is_one_error_naming_its_path(sandbox, tmp_path, kind):
    sandbox.faults.listing = kind
    sandbox.faults.listing_match = "/files"
    result = run_script(SESSION_SCRIPT, "--retries", "1", cwd=tmp_path, sandbox=sandbox)
    line = the_error(result, SESSION_SCRIPT)
    path = f"/data/experiments/{demo_session(sandbox).id}/scans/ALL/resources/DICOM/files"
    assert f"sent an unusable listing for {path}: {SPOILED[kind]}" in line
    assert line.endswith("(after 2 attempts)")
    assert not (tmp_path / "downloaded_data").exists()


@pytest.mark.parametrize("kind", ["empty", "truncated", "nokeys"])
def test_a_listing_spoiled_once_is_fetched_again(sandbox, tmp_path, kind):
    sandbox.faults.listing = kind
    sandbox.faults.listing_count = 1
    sandbox.faults.listing_match = "/data/experiments"
    result = run_script("2_list_subjects.py", "--json", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"] == "sub-2"


def test_a_login_page_in_place_of_a_listing_brings_a_fresh_login(sandbox, tmp_path):
    # What some sites send, with a 200, once the session has expired.
    sandbox.faults.listing = "html"
    sandbox.faults.listing_count = 1
    sandbox.faults.listing_match = "/data/projects"
    result = run_script("1_list_projects.py", "--json", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    listings = [i for i, entry in enumerate(sandbox.log) if entry.path == "/data/projects"]
    assert len(listings) == 2
    assert logins_after(sandbox.log[:listings[1]], listings[0]) == 1


@pytest.mark.parametrize("where", ["listing", "file"])
def test_a_redirect_to_the_login_page_brings_a_fresh_login(sandbox, tmp_path, where):
    session = demo_session(sandbox)
    first_file = session.scans[0].resources[0].files[0].name
    sandbox.faults.match = "/data/projects/DEMO/subjects" if where == "listing" else first_file
    sandbox.faults.redirect_count = 1
    by_file = ("--transfer", "files") if where == "file" else ()   # the first file on its own
    result = run_script(SESSION_SCRIPT, *by_file, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data" / f"session-{FIRST_SESSION}", served_files(session))
    redirected = next(i for i, entry in enumerate(sandbox.log) if entry.status == 302)
    assert logins_after(sandbox.log, redirected) == 1


@pytest.mark.parametrize("match", ["/data/", "/data/projects/DEMO/subjects"],
                         ids=["every-request", "one-listing"])
def test_a_server_that_only_ever_redirects_to_its_login_page_is_an_authentication_error(
        sandbox, tmp_path, match):
    sandbox.faults.match = match
    sandbox.faults.redirect_count = -1
    result = run_script("2_list_subjects.py", cwd=tmp_path, sandbox=sandbox)
    line = the_error(result, "2_list_subjects.py")
    assert line.startswith("2_list_subjects.py: error: authentication failed at 127.0.0.1")
    assert "renew the alias token" in line and "<" not in line
    assert result.stdout == ""


# --- the server address ------------------------------------------------------------------------

@pytest.mark.parametrize("prefix, ending", [("/xnat", ""), ("/xnat", "/"), ("", "/")],
                         ids=["prefix", "prefix-and-slash", "slash"])
def test_the_server_address_may_have_a_path_prefix_and_a_trailing_slash(make_sandbox, tmp_path,
                                                                       prefix, ending):
    server = make_sandbox(prefix=prefix)
    env = script_env(tmp_path, server, XNAT_HOST=server.url + ending)
    result = run_script(SCAN_SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / "downloaded_data", served_files(demo_session(server), {"1"}))
    assert all(entry.path.startswith(prefix) and "//" not in entry.path for entry in server.log)
    # The other spelling of the address is the same source: nothing is fetched again.
    server.clear_log()
    other = server.url if ending else server.url + "/"
    again = run_script(SCAN_SCRIPT, cwd=tmp_path, env=script_env(tmp_path, server, XNAT_HOST=other))
    assert again.returncode == 0, again.stderr
    assert server.file_requests() == []


@pytest.mark.parametrize("login", ["password", "alias token"])
def test_a_missing_path_prefix_is_named_not_taken_for_wrong_credentials(make_sandbox, tmp_path, login):
    server = make_sandbox(prefix="/xnat")
    bare = server.url[:-len("/xnat")]
    env = script_env(tmp_path, server, XNAT_HOST=bare)
    if login == "alias token":
        env.update(XNAT_USER=server.alias, XNAT_PASS=server.alias_secret)
    line = the_error(run_script("1_list_projects.py", cwd=tmp_path, env=env), "1_list_projects.py")
    assert line.startswith(f"1_list_projects.py: error: no XNAT answers at {bare}: /data/JSESSION "
                           f"was not found (404); check the server address, including its path prefix")


# --- files that are not what the listing says --------------------------------------------------

def test_a_file_the_listing_names_but_the_server_lacks_fails_alone_and_at_once(sandbox, tmp_path):
    session = demo_session(sandbox)
    victim = session.scans[1].resources[0].files[0].name
    sandbox.faults.match = victim
    sandbox.faults.missing_count = -1
    result = run_script(SESSION_SCRIPT, "--retries", "3", "--transfer", "files", cwd=tmp_path,
                        sandbox=sandbox)
    the_error(result, SESSION_SCRIPT)
    assert f"failed: session-{FIRST_SESSION}/scan-2_T2/{victim}: the server answered 404" in result.stderr
    assert len([e for e in sandbox.file_requests() if e.path.endswith(victim)]) == 1   # not retried
    folder = tmp_path / "downloaded_data" / f"session-{FIRST_SESSION}"
    expected = served_files(session)
    del expected[f"scan-2_T2/{victim}"]
    assert_downloaded(folder, expected)
    manifest = json.loads((folder / "scan-2_T2" / ".xnat-manifest.json").read_text())
    assert victim not in manifest["files"] and len(manifest["files"]) == 3


def test_a_size_that_disagrees_with_the_body_leaves_nothing_under_a_final_name(sandbox, tmp_path):
    sandbox.faults.wrong_size = True   # every files listing says Size + 1
    result = run_script(SCAN_SCRIPT, "--retries", "1", cwd=tmp_path, sandbox=sandbox)
    the_error(result, SCAN_SCRIPT)
    files = demo_session(sandbox).scans[0].resources[0].files
    for file in files:
        assert (f"failed: scan-1_T1/{file.name}: got {file.size} bytes where the listing says "
                f"{file.size + 1} (after 2 attempts)") in result.stderr
    folder = tmp_path / "downloaded_data" / "scan-1_T1"
    assert data_files_below(folder) == {}
    assert json.loads((folder / ".xnat-manifest.json").read_text())["files"] == {}


# --- the local side ----------------------------------------------------------------------------

def file_size_limit(limit: int):
    """A preexec_fn: no file the child writes may grow beyond `limit` bytes (ulimit -f)."""
    resource = pytest.importorskip("resource")   # POSIX only
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("limit", [4096, 100], ids=["data-files", "manifests-too"])
def test_a_full_disk_mid_download_is_one_clear_error_and_a_later_run_resumes(sandbox, tmp_path, limit):
    # T1 files are about 9 KiB, the others 3 KiB; a manifest is some hundred bytes.
    result = run_script(SESSION_SCRIPT, "--workers", "2", cwd=tmp_path, sandbox=sandbox,
                        preexec_fn=file_size_limit(limit))
    line = the_error(result, SESSION_SCRIPT)
    assert line.startswith(f"{SESSION_SCRIPT}: error: could not write into "
                           f"downloaded_data/session-{FIRST_SESSION}/")
    assert line.endswith(": a file-size limit was reached; nothing partial was left under a final "
                         "name, and running the same command again resumes")
    folder = tmp_path / "downloaded_data" / f"session-{FIRST_SESSION}"
    expected = served_files(demo_session(sandbox))
    assert_nothing_wrong_under_a_final_name(folder, expected)
    assert not list(folder.rglob(".xnat-manifest.json.part"))
    again = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert again.returncode == 0, again.stderr
    assert_downloaded(folder, expected)
    assert not list(folder.rglob("*.part"))


PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def permissions_that_hold():
    """A preexec_fn under which folder permissions bind the child (None if they do already), or
    a skip. For root it drops the capabilities that override permissions, rather than becoming
    another user: the interpreter may live where only root can read it (a home folder)."""
    if os.geteuid() != 0:
        return None
    if not sys.platform.startswith("linux"):
        pytest.skip("running as root, and dropping root's permission override needs Linux")
    prctl = ctypes.CDLL(None, use_errno=True).prctl   # looked up here, not in the forked child

    def drop_permission_override() -> None:
        for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
            if prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    try:
        subprocess.run([sys.executable, "-c", "pass"], preexec_fn=drop_permission_override, check=True)
    except (subprocess.SubprocessError, OSError):
        pytest.skip("running as root without CAP_SETPCAP: cannot make a folder unwritable for the child")
    return drop_permission_override


def test_an_output_folder_that_is_not_writable_is_one_clear_error(sandbox, tmp_path):
    preexec = permissions_that_hold()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = run_script(SESSION_SCRIPT, "--output-dir", str(locked), cwd=tmp_path, sandbox=sandbox,
                            preexec_fn=preexec)
        line = the_error(result, SESSION_SCRIPT)
        assert line.startswith(f"{SESSION_SCRIPT}: error: could not write into "
                               f"{locked}/session-{FIRST_SESSION}/scan-")
        assert line.endswith(": it is not writable; nothing partial was left under a final name: "
                             "make it writable, or choose another folder with --output-dir")
        assert "resumes" not in result.stderr   # nothing can resume until that changes
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("blocker", ["downloaded_data", f"downloaded_data/session-{FIRST_SESSION}",
                                     f"downloaded_data/session-{FIRST_SESSION}/scan-1_T1"],
                         ids=["output-folder", "session-folder", "scan-folder"])
def test_a_file_where_a_folder_belongs_is_one_clear_error_and_stays_untouched(sandbox, tmp_path, blocker):
    path = tmp_path / blocker
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("my notes")
    line = the_error(run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox), SESSION_SCRIPT)
    assert "exists and is a file" in line and "--output-dir" in line
    assert path.read_text() == "my notes"


def test_part_files_left_by_a_crash_never_end_up_under_a_final_name(sandbox, default_download, tmp_path):
    folder = default_download.copy_into(tmp_path)
    expected = served_files(demo_session(sandbox))
    for index, path in enumerate(sorted(data_files_below(folder).values())):
        data = path.read_bytes()
        path.unlink()
        # A crash can leave anything behind: the wrong half, more than the whole, nothing at all.
        leftover = [bytes(b ^ 0x5A for b in data[:len(data) // 2]), data + b"extra", b""][index % 3]
        path.with_name(path.name + ".part").write_bytes(leftover)
    (folder / "scan-1_T1" / ".xnat-manifest.json.part").write_text('{"source": ')
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert_downloaded(folder, expected)
    assert not list(folder.rglob("*.part"))


def _edit_entries(text: str) -> str:
    data = json.loads(text)
    data["files"] = {name: {"size": 1, "md5": "0" * 32, "mtime_ns": 1} for name in data["files"]}
    return json.dumps(data)


MANIFEST_EDITS = {
    "truncated": lambda text: text[:len(text) // 2],
    "emptied": lambda text: "",
    "not-json": lambda text: "edited by hand\n",
    "files-not-a-mapping": lambda text: json.dumps({**json.loads(text), "files": []}),
    "source-removed": lambda text: json.dumps({"files": json.loads(text)["files"]}),
    "wrong-sizes-and-digests": _edit_entries,
}


@pytest.mark.parametrize("edit", MANIFEST_EDITS)
def test_a_manifest_edited_by_hand_is_rebuilt_from_the_files_without_fetching_them(
        sandbox, default_download, tmp_path, edit):
    folder = default_download.copy_into(tmp_path)
    manifest = folder / "scan-1_T1" / ".xnat-manifest.json"
    original = json.loads(manifest.read_text())
    manifest.write_text(MANIFEST_EDITS[edit](manifest.read_text()))
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    damaged = (f"{SESSION_SCRIPT}: warning: {manifest.relative_to(tmp_path)} is damaged; the files "
               f"in that folder will be checked again")
    assert (damaged in result.stderr.splitlines()) == (edit != "wrong-sizes-and-digests")
    assert sandbox.file_requests() == []   # the files on disk were verified by their digests
    assert_downloaded(folder, served_files(demo_session(sandbox)))
    rebuilt = json.loads(manifest.read_text())
    # The same source, named by this run's server (the copy was made from another port's).
    assert rebuilt["source"] == {**original["source"], "server": sandbox.url}
    assert {name: (entry["size"], entry["md5"]) for name, entry in rebuilt["files"].items()} == \
        {name: (entry["size"], entry["md5"]) for name, entry in original["files"].items()}


# --- Ctrl-C while listing ----------------------------------------------------------------------

@pytest.mark.parametrize("script", ["1_list_projects.py", "2_list_subjects.py", SESSION_SCRIPT])
def test_ctrl_c_while_listing_exits_130_at_once_without_a_traceback(sandbox, tmp_path, script):
    slow_answer = 60   # seconds the server takes for each request after the login
    events = SandboxEvents(sandbox)
    logged_in, waiting = threading.Event(), threading.Event()

    def slow_down_after_login(heard) -> None:
        # xnatpy's login ends with GET /data/JSESSION; the first request after it (a listing)
        # and every later one are answered only after slow_answer.
        if heard.event == "answered" and heard.request.partition("?")[0] == "GET /data/JSESSION":
            logged_in.set()
        elif heard.event == "arrived" and logged_in.is_set() and not waiting.is_set():
            sandbox.faults.latency = slow_answer
            waiting.set()

    events.on(slow_down_after_login)
    process = start_script(script, cwd=tmp_path, env=script_env(tmp_path, sandbox))
    try:
        assert waiting.wait(HANG_GUARD), "the script never asked for anything after its login"
        answered = len(events.heard("answered"))
        process.send_signal(signal.SIGINT)   # the script is waiting for that listing's answer
        stdout, stderr = process.communicate(timeout=slow_answer + HANG_GUARD / 2)
    finally:
        process.kill()
    # Not held up by the slow server on the way out: it left before the answer it waited for.
    assert [h.request for h in events.heard("answered")[answered:]] == [], stderr
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"{script}: interrupted; running the same command again resumes where it stopped")
    assert "Traceback" not in stderr and stdout == ""
    assert not (tmp_path / "downloaded_data").exists()


def test_a_complete_download_in_a_read_only_folder_still_checks_as_complete(sandbox, default_download, tmp_path):
    preexec = permissions_that_hold()
    default_download.copy_into(tmp_path)
    everything = [tmp_path / "downloaded_data", *(tmp_path / "downloaded_data").rglob("*")]
    for path in everything:   # as on a read-only mount: no folder and no file may be written
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=sandbox, preexec_fn=preexec)
        assert result.returncode == 0, result.stderr
        assert "0 files (0 B) downloaded" in result.stderr
    finally:
        for path in everything:
            path.chmod(0o755 if path.is_dir() else 0o644)
