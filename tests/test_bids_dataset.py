"""A BIDS dataset shared by runs at once: six --shard jobs converting into one folder keep every
participant row and every record entry, and their reruns touch nothing; two XNAT subjects (or
sessions) that fold to one BIDS label are named as a label clash; an up-to-date dataset on a
read-only disk is checked, not refused."""
from __future__ import annotations

import json
import shutil

import pytest

from cli import files_below, run_script, script_env, start_script
from sandbox import Project, Sandbox, Scale, Session, Subject
from test_reliability import permissions_that_hold
from xnat_download.bids_dataset import BidsDataset

SESSION_SCRIPT = "4_download_session.py"
SHARDS = 6
SUBJECTS = 12   # one session each, one small T1 each: two sessions per shard


def clash_project(big: Project) -> Project:
    """Subjects 01 and sub-01 (both sub-01 in BIDS); subject 02 with sessions 02-a and 02_a (both
    ses-a). Their scans are BIG's first one."""
    scans = big.subjects[0].sessions[0].scans

    def subject(number: int, label: str, *sessions: str) -> Subject:
        return Subject(id=f"CLASH_S{number}", label=label, sessions=[
            Session(id=f"CLASH_E{number}{index}", label=session, date="2024-01-01", scans=scans)
            for index, session in enumerate(sessions)])

    return Project(id="CLASH", name="Label clashes", members=set(big.members), subjects=[
        subject(1, "01", "01_MR1"), subject(2, "sub-01", "sub-01_MR1"), subject(3, "02", "02-a", "02_a")])


@pytest.fixture(scope="module")
def big_sandbox():
    sandbox = Sandbox(scale=Scale(subjects=SUBJECTS, sessions_per_subject=1, scans_per_session=1,
                                  files_per_scan=2, dicom_matrix=8))
    sandbox.catalog.projects["CLASH"] = clash_project(sandbox.catalog.projects["BIG"])
    with sandbox:
        yield sandbox


def environment(tmp_path, sandbox, project: str = "BIG") -> dict[str, str]:
    return script_env(tmp_path, sandbox, XNAT_PROJECT=project)


def run_shards(tmp_path, env) -> list[tuple[int, str]]:
    """All shards at once into one dataset; each one's exit code and stderr."""
    processes = [start_script(SESSION_SCRIPT, "--all-sessions", "--shard", f"{k}/{SHARDS}", "--bids", "bids",
                              cwd=tmp_path, env=env) for k in range(1, SHARDS + 1)]
    results = []
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        results.append((process.returncode, stderr))
    return results


def snapshot(folder) -> dict[str, tuple[bytes, int]]:
    """Every file below folder (the record and lock included): its bytes and its mtime."""
    return {name: (path.read_bytes(), path.stat().st_mtime_ns) for name, path in files_below(folder).items()}


def test_six_shards_at_once_keep_every_row_and_entry_and_their_reruns_touch_nothing(big_sandbox, tmp_path):
    env = environment(tmp_path, big_sandbox)
    for code, stderr in run_shards(tmp_path, env):
        assert code == 0, stderr
        assert "BIDS: 2 scan(s) converted, 0 already converted, 0 failed" in stderr
    bids = tmp_path / "bids"
    participants = sorted(f"sub-{n}" for n in range(1, SUBJECTS + 1))
    assert (bids / "participants.tsv").read_text() == "participant_id\n" + "".join(f"{p}\n" for p in participants)
    record = json.loads((bids / ".xnat-bids.json").read_text())
    assert sorted(record["scans"]) == sorted(f"BIG/sub-{n}_ses-1/1/DICOM" for n in range(1, SUBJECTS + 1))
    assert sorted(record["sessions"]) == [f"{p}/ses-1" for p in participants]
    niftis = sorted(name for name in files_below(bids) if name.endswith(".nii.gz"))
    assert niftis == [f"{p}/ses-1/anat/{p}_ses-1_T1w.nii.gz" for p in participants]
    assert {"README", "participants.json", "dataset_description.json"} <= set(files_below(bids))
    assert not (bids / ".xnat-bids-work").exists()

    before = snapshot(bids)
    for code, stderr in run_shards(tmp_path, env):
        assert code == 0, stderr
        assert "BIDS: 0 scan(s) converted, 2 already converted, 0 failed" in stderr
        assert "did not write" not in stderr
    assert snapshot(bids) == before


def test_labels_that_fold_to_one_are_a_label_clash_not_a_foreign_file(big_sandbox, tmp_path):
    result = run_script(SESSION_SCRIPT, "--all-sessions", "--bids", "bids", cwd=tmp_path,
                        env=environment(tmp_path, big_sandbox, "CLASH"))
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if line.startswith("  failed: ")]
    assert failed == [
        '  failed: bids/sub-02/ses-a: label clash: XNAT sessions "02-a" and "02_a" both become '
        'sub-02/ses-a; session 02_a was not converted: rename one of them in XNAT, or convert it '
        'into another folder (--bids DIR)',
        '  failed: bids/sub-01: label clash: XNAT subjects "01" and "sub-01" both become sub-01; '
        'session sub-01_MR1 was not converted: rename one of them in XNAT, or convert it into '
        'another folder (--bids DIR)']
    bids = tmp_path / "bids"
    assert sorted(name for name in files_below(bids) if name.endswith(".nii.gz")) == [
        "sub-01/ses-MR1/anat/sub-01_ses-MR1_T1w.nii.gz", "sub-02/ses-a/anat/sub-02_ses-a_T1w.nii.gz"]
    record = json.loads((bids / ".xnat-bids.json").read_text())
    assert record["subjects"]["sub-01"] == {"project": "CLASH", "subject": "01"}
    assert record["sessions"]["sub-02/ses-a"] == {"project": "CLASH", "subject": "02", "session": "02-a"}

    # Another run, one subject only, sees the clash in the record.
    result = run_script(SESSION_SCRIPT, "--subject", "sub-01", "--bids", "bids", cwd=tmp_path,
                        env=environment(tmp_path, big_sandbox, "CLASH"))
    assert result.returncode == 1
    assert '  failed: bids/sub-01: label clash: XNAT subjects "01" and "sub-01"' in result.stderr


ONE_SESSION = ("--session", "sub-1_ses-1", "--bids", "bids")


@pytest.fixture(scope="module")
def one_session_converted(big_sandbox, tmp_path_factory):
    """One session downloaded and converted once; each read-only case starts from a copy."""
    root = tmp_path_factory.mktemp("one_session")
    result = run_script(SESSION_SCRIPT, *ONE_SESSION, cwd=root, env=environment(root, big_sandbox))
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.xdist_group("bids_dataset_one_session")
@pytest.mark.parametrize("lock_file", ["kept", "removed"])
def test_an_up_to_date_dataset_on_a_read_only_disk_exits_0(big_sandbox, one_session_converted, tmp_path,
                                                             lock_file):
    preexec = permissions_that_hold()
    env = environment(tmp_path, big_sandbox)
    args = ONE_SESSION
    for folder in ("bids", "downloaded_data"):   # copytree keeps the mtimes the record and manifests hold
        shutil.copytree(one_session_converted / folder, tmp_path / folder)
    if lock_file == "removed":   # no lock can be made there now, and none is needed
        (tmp_path / "bids" / ".xnat-lock").unlink()
    everything = [tmp_path / "bids", tmp_path / "downloaded_data"]
    everything += [path for folder in everything[:] for path in folder.rglob("*")]
    before = snapshot(tmp_path)
    for path in everything:   # as on a read-only mount
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        result = run_script(SESSION_SCRIPT, *args, cwd=tmp_path, env=env, preexec_fn=preexec)
    finally:
        for path in everything:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert result.returncode == 0, result.stderr
    assert "BIDS: 0 scan(s) converted, 1 already converted, 0 failed" in result.stderr
    assert snapshot(tmp_path) == before


# --- the pure pieces ---------------------------------------------------------------------------

def test_participants_added_keep_the_columns_and_rows_a_user_added(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-9\t41\n")
    dataset = BidsDataset(tmp_path, "DEMO", record_format=2)
    with dataset.updating():
        dataset.add_session("10", "1", "sub-10", "sub-10_ses-1")
        dataset.add_session("9", "2", "sub-9", "sub-9_ses-2")
    assert (tmp_path / "participants.tsv").read_text() == "participant_id\tage\nsub-10\tn/a\nsub-9\t41\n"
    assert json.loads((tmp_path / "dataset_description.json").read_text())["Name"] == "DEMO"
    assert "participant_id" in json.loads((tmp_path / "participants.json").read_text())
    assert (tmp_path / "README").read_text().startswith("# DEMO\n")


def test_a_label_is_claimed_by_the_first_xnat_subject_and_session_that_take_it(tmp_path):
    dataset = BidsDataset(tmp_path, "P", record_format=2)
    with dataset.updating():
        assert dataset.label_clash("01", "1", "01", "01_ses-1") == ""
        dataset.add_session("01", "1", "01", "01_ses-1")
    again = BidsDataset(tmp_path, "P", record_format=2)
    with again.updating():
        assert again.label_clash("01", "1", "01", "01_ses-1") == ""    # the same session, again
        assert again.label_clash("01", "2", "01", "01_ses-2") == ""    # another session of it
        assert "XNAT subjects \"01\" and \"sub-01\" both become sub-01" in \
            again.label_clash("01", "1", "sub-01", "sub-01_ses-1")
        assert "XNAT sessions \"01_ses-1\" and \"01-ses-1\" both become sub-01/ses-1" in \
            again.label_clash("01", "1", "01", "01-ses-1")
    other_project = BidsDataset(tmp_path, "Q", record_format=2)
    with other_project.updating():
        assert 'XNAT subjects "01" (project P) and "01" both become sub-01' in \
            other_project.label_clash("01", "1", "01", "01_ses-1")


def test_a_record_of_another_format_keeps_its_labels_but_not_its_scans(tmp_path):
    (tmp_path / ".xnat-bids.json").write_text(json.dumps({
        "format": 1, "scans": {"P/S/1/DICOM": {"inputs": "x"}},
        "subjects": {"sub-01": {"project": "P", "subject": "01"}}}))
    record = BidsDataset(tmp_path, "P", record_format=2).record
    assert record["scans"] == {} and record["subjects"] == {"sub-01": {"project": "P", "subject": "01"}}
