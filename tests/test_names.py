"""Names from the server are untrusted: however they are built, nothing is written outside the
output folder, no file overwrites another, and nothing crashes. Property tests (hypothesis) over
the planning of names, then real downloads of generated names from the sandbox."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

import common
from cli import data_files_below, files_below, run_script, script_env
from xnat_download.catalog import RemoteFile, Scan, Session
from xnat_download.manifest import LOCK_NAME, MANIFEST_NAME
from xnat_download.names import MAX_NAME_BYTES, inside
from xnat_download.plan import ScanPlan, plan_scan
from sandbox import File, Sandbox

SESSION_SCRIPT = "4_download_session.py"
SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._-]+")
LONGEST_COMPONENT = 255 - len(".part")   # a file system's limit, less our temporary suffix

# Pieces that have broken download tools: traversal, absolute and drive paths, separators,
# look-alikes that clean up to one name, case twins, our own bookkeeping names, and lengths.
NASTY = ["..", ".", "", " ", "a", "A", "a b", "a_b", "a?b", "x.dcm", "X.DCM", ".xnat-manifest.json",
         ".xnat-lock", "f.part", "résumé", "ü", "日本", "\\", "C:", "~", "*", "%2F", "%2e%2e", "\x00",
         "\n", "L" * 300, "é" * 130, "x" * 251 + ".dcm"]
piece = st.one_of(st.sampled_from(NASTY), st.text(max_size=12),
                  st.lists(st.sampled_from(NASTY), min_size=1, max_size=3).map("".join))
name = st.one_of(st.lists(piece, min_size=1, max_size=4).map("/".join), st.text(max_size=40))
# Names a server can send and serve over HTTP: no lone surrogates; "" cannot be addressed at all.
servable_name = name.filter(lambda text: text != "" and not re.search(r"[\ud800-\udfff]", text))


def is_refused_by_contract(server_name: str) -> bool:
    """`..`, `.`, empty parts and absolute paths (also Windows ones) are refused."""
    if server_name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", server_name):
        return True
    return any(part in ("", ".", "..") for part in server_name.replace("\\", "/").split("/"))


def plan(names: list[str], root: Path) -> ScanPlan:
    output_dir = root / "out"
    session = Session(id="XNAT_E00001", label="ses-1", subject_label="sub-1")
    scan = Scan(id="1", type="T1")
    files = [RemoteFile(scan_id="1", path=n, size=1, md5="", url=f"/files/{i}") for i, n in enumerate(names)]
    client = SimpleNamespace(server="https://xnat.example.org")   # plan_scan reads only this
    return plan_scan(client, "P", session, scan, "DICOM", files,
                     output_dir / "session-ses-1" / "scan-1_T1", output_dir)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(names=st.lists(name, min_size=1, max_size=8, unique=True))
@example(names=["a", "a/b.dcm", "A/c.dcm", "a b", "a_b", "a?b"])
@example(names=["L" * 300 + ".dcm", "L" * 300 + ".DCM", "x" * 251 + ".dcm", "x" * 251 + ".dcm/y"])
def test_every_planned_name_is_safe_unique_and_inside_its_folder(names):
    root = Path(tempfile.gettempdir()) / "xnat-names-never-created"
    scan_plan = plan(names, root)
    refused = [server_name for server_name, _ in scan_plan.refused]
    planned = {f.remote.path: f for f in scan_plan.files}
    assert sorted(refused + list(planned)) == sorted(names)
    assert all(is_refused_by_contract(n) for n in refused)
    assert not any(is_refused_by_contract(n) for n in planned)
    folded = [f.relative.casefold() for f in scan_plan.files]
    assert len(set(folded)) == len(folded)   # no file overwrites another, on any file system
    folders = {"/".join(r.split("/")[:end]) for r in folded for end in range(1, r.count("/") + 1)}
    assert not folders & set(folded)          # and no file stands where a folder must go
    for planned_file in scan_plan.files:
        parts = planned_file.relative.split("/")
        assert all(SAFE_COMPONENT.fullmatch(p) and p not in (".", "..") for p in parts)
        assert all(len(p.encode()) <= LONGEST_COMPONENT for p in parts)
        assert parts[-1] not in (MANIFEST_NAME, LOCK_NAME) and not parts[-1].endswith(".part")
        assert planned_file.target == scan_plan.folder / planned_file.relative
        assert inside(scan_plan.folder, planned_file.target)
    # The same listing in another order gives every file the same name: resume finds them again.
    again = {f.remote.path: f.relative for f in plan(list(reversed(names)), root).files}
    assert again == {n: f.relative for n, f in planned.items()}


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(label=piece, scan_id=piece, scan_type=piece)
def test_session_and_scan_folder_names_are_always_one_safe_component(label, scan_id, scan_type):
    session_folder = common.session_folder_name(Session(id="E", label=label, subject_label="s"))
    scan_folder = common.scan_folder_name(Scan(id=scan_id, type=scan_type))
    for folder, start in ((session_folder, "session-"), (scan_folder, "scan-")):
        assert SAFE_COMPONENT.fullmatch(folder) and folder.startswith(start)
        assert len(folder.encode()) <= LONGEST_COMPONENT


# --- real downloads of hostile names -----------------------------------------------------------

def hostile_session(sandbox):
    return sandbox.catalog.projects["HOSTILE"].subjects[0].sessions[0]


def hostile_env(home: Path, sandbox) -> dict:
    return script_env(home, sandbox, XNAT_PROJECT="HOSTILE")


@pytest.fixture(scope="module")
def hostile_sandbox():
    """One server for every generated example; each example replaces the files of scan 3."""
    with Sandbox(hostile=True) as started:
        yield started


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(servable_name, min_size=1, max_size=6, unique=True))
@example(names=["a", "a/b.dcm", "A/c", "a b", "a_b", "../../../escaped", "L" * 300 + ".dcm", "/tmp/abs.dcm"])
def test_no_server_name_makes_a_download_write_outside_its_folder_or_crash(hostile_sandbox, tmp_path, names):
    sandbox = hostile_sandbox
    files = [File.from_bytes(n, f"{i}:{n}".encode("utf-8", "surrogatepass")) for i, n in enumerate(names)]
    hostile_session(sandbox).scans[2].resources[0].files = files
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    cwd = base / "a" / "b" / "c"   # deep, so that ../../.. still lands where we look
    cwd.mkdir(parents=True)
    result = run_script(SESSION_SCRIPT, "--scans", "3", "--output-dir", "out", cwd=cwd,
                        env=hostile_env(base, sandbox))
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    refused = [n for n in names if is_refused_by_contract(n)]
    if refused:
        assert result.returncode == 1, result.stderr
        assert result.stderr.strip().splitlines()[-1].endswith(
            f"error: {len(refused)} file(s) could not be downloaded (listed above); running again will "
            f"not change them: each line above says why")
    else:
        assert result.returncode == 0, result.stderr
    out = cwd / "out"
    assert all(inside(out, path) for path in files_below(base).values())
    written = sorted(path.read_bytes() for path in data_files_below(out).values())
    assert written == sorted(f.data() for f in files if f.name not in refused)


def test_the_hostile_project_arrives_cleaned_cut_and_kept_apart(make_sandbox, tmp_path):
    sandbox = make_sandbox(hostile=True)
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, env=hostile_env(tmp_path, sandbox))
    assert result.returncode == 1   # three names are refused; every other file still arrives
    for refused in ("../evil.dcm", "/tmp/abs.dcm", "sub/../../x.dcm"):
        assert f"failed: scan 1 file {refused}: refused" in result.stderr
    session = hostile_session(sandbox)
    session_folder = tmp_path / "downloaded_data" / common.session_folder_name(session)
    scan_folders = [common.scan_folder_name(scan) for scan in session.scans]
    # A session label that cleaning changed carries a tag of the raw label; a scan of a clean ID
    # needs none, whatever its type.
    assert session_folder.name.startswith("session-ses_1_x_")
    assert scan_folders == ["scan-1_T1_.._.._evil", "scan-2", "scan-3_T2"]
    on_disk = {name: path.read_bytes() for name, path in data_files_below(session_folder).items()}
    served = {f.name: f.data() for f in session.scans[0].resources[0].files}
    scan_1 = {name.split("/", 1)[1]: data for name, data in on_disk.items()
              if name.startswith(f"{scan_folders[0]}/")}
    assert scan_1["r_sum___.dcm"] == served["résumé_ü.dcm"]
    assert scan_1["deep/dir/ok.dcm"] == served["deep/dir/ok.dcm"]
    long_name = next(n for n in scan_1 if n.startswith("LLL"))
    assert len(long_name) <= MAX_NAME_BYTES and long_name.endswith(".dcm")
    assert scan_1[long_name] == served["L" * 296 + ".dcm"]
    # "a b.dcm", "a_b.dcm" and "a?b.dcm" all clean up to a_b.dcm: all three kept, each its own.
    look_alikes = sorted(data for n, data in scan_1.items() if n.startswith("a_b"))
    assert look_alikes == sorted(served[n] for n in ("a b.dcm", "a_b.dcm", "a?b.dcm"))
    assert len(scan_1) == len(served) - 3
    assert sorted(p.name for p in session_folder.iterdir()) == sorted(scan_folders)
    # The names are stable: a second run finds every file where the first one put it.
    sandbox.clear_log()
    again = run_script(SESSION_SCRIPT, cwd=tmp_path, env=hostile_env(tmp_path, sandbox))
    assert again.returncode == 1 and sandbox.file_requests() == []


def test_a_very_long_scan_type_and_session_label_are_cut_not_refused_by_the_disk(make_sandbox, tmp_path):
    sandbox = make_sandbox(hostile=True)
    session = hostile_session(sandbox)
    session.label = "ses-" + "é" * 300
    session.scans[2].type = "T2_" + "t" * 300
    result = run_script(SESSION_SCRIPT, "--scans", "3", cwd=tmp_path, env=hostile_env(tmp_path, sandbox))
    assert result.returncode == 0, result.stderr
    on_disk = data_files_below(tmp_path / "downloaded_data")
    assert sorted(path.read_bytes() for path in on_disk.values()) == \
        sorted(f.data() for f in session.scans[2].resources[0].files)
    for name in on_disk:
        assert all(len(part.encode()) <= LONGEST_COMPONENT for part in name.split("/"))


def test_a_file_named_like_a_folder_of_another_does_not_stop_the_download(make_sandbox, tmp_path):
    sandbox = make_sandbox(hostile=True)
    files = [File.from_bytes(n, n.encode() * 3) for n in ("a", "a/b.dcm", "A/c.dcm", "b.dcm")]
    hostile_session(sandbox).scans[2].resources[0].files = files
    result = run_script(SESSION_SCRIPT, "--scans", "3", cwd=tmp_path, env=hostile_env(tmp_path, sandbox))
    assert result.returncode == 0, result.stderr
    session_folder = common.session_folder_name(hostile_session(sandbox))
    on_disk = data_files_below(tmp_path / "downloaded_data" / session_folder / "scan-3_T2")
    assert sorted(path.read_bytes() for path in on_disk.values()) == sorted(f.data() for f in files)
    assert on_disk["a/b.dcm"].read_bytes() == files[1].data()


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(first_id=piece, second_id=piece, first_type=piece, second_type=piece)
def test_scans_of_distinct_ids_never_share_a_folder(first_id, second_id, first_type, second_type):
    # IDs are unique in a session; the only way around is a type made to end in another's tag.
    assume(first_id != second_id)
    assert (common.scan_folder_name(Scan(id=first_id, type=first_type))
            != common.scan_folder_name(Scan(id=second_id, type=second_type)))
