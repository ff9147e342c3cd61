"""2_list_subjects.py against the sandbox: the default subject, --subject, --all, the formats."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from cli import REPO, run_script, script_env

from xnat_download.catalog import natural_key

SCRIPT = "2_list_subjects.py"


def dicom_files(scan):
    return [f for r in scan.resources if r.label == "DICOM" for f in r.files]


def expected_subject(subject, with_counts=True):
    """What the script should report for a catalog subject."""
    sessions = []
    for session in sorted(subject.sessions, key=lambda s: natural_key(s.label)):
        scans = []
        for scan in sorted(session.scans, key=lambda s: natural_key(s.id)):
            files = dicom_files(scan)
            scans.append({"id": scan.id, "type": scan.type,
                          "series_description": scan.series_description, "quality": scan.quality,
                          "files": len(files) if with_counts else None,
                          "bytes": sum(f.size for f in files) if with_counts else None})
        sessions.append({"id": session.id, "label": session.label, "date": session.date,
                         "modality": "MR", "scans": scans})
    return {"id": subject.id, "label": subject.label, "sessions": sessions}


def demo_subject(sandbox, label):
    return next(s for s in sandbox.catalog.projects["DEMO"].subjects if s.label == label)


def test_default_is_the_first_subject_in_natural_order_with_file_counts(sandbox, tmp_path):
    result = run_script(SCRIPT, "--json", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    # sub-2 comes before sub-10 (a plain string sort would put sub-10 first).
    assert json.loads(result.stdout) == [expected_subject(demo_subject(sandbox, "sub-2"))]


def test_subject_option_picks_that_subject(sandbox, tmp_path):
    result = run_script(SCRIPT, "--subject", "sub-10", "--json", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [expected_subject(demo_subject(sandbox, "sub-10"))]


def test_all_lists_every_subject_in_natural_order(sandbox, tmp_path):
    result = run_script(SCRIPT, "--all", "--json", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    subjects = sorted(sandbox.catalog.projects["DEMO"].subjects, key=lambda s: natural_key(s.label))
    assert json.loads(result.stdout) == [expected_subject(s, with_counts=False) for s in subjects]


def test_csv_has_one_row_per_scan(sandbox, tmp_path):
    result = run_script(SCRIPT, "--subject", "sub-2", "--csv", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    expected = expected_subject(demo_subject(sandbox, "sub-2"))
    assert [(r["session"], r["scan"], r["type"], r["files"], r["bytes"]) for r in rows] == [
        (session["label"], scan["id"], scan["type"], str(scan["files"]), str(scan["bytes"]))
        for session in expected["sessions"] for scan in session["scans"]]
    assert list(rows[0]) == ["subject", "session", "scan", "type", "series_description", "quality",
                             "files", "bytes"]


def test_detail_table_shows_sessions_and_scans(sandbox, tmp_path):
    result = run_script(SCRIPT, "--subject", "sub-2", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert "Session sub-2_ses-1" in result.stdout
    assert "t1_mprage_sag" in result.stdout


def test_all_table_has_a_row_per_session(sandbox, tmp_path):
    result = run_script(SCRIPT, "--all", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    sessions = [s.label for subj in sandbox.catalog.projects["DEMO"].subjects for s in subj.sessions]
    rows = result.stdout.splitlines()[1:]
    assert sorted(row.split()[1] for row in rows) == sorted(sessions)


def listing_requests(sandbox):
    """Requests after login: the listings, not the login handshake."""
    return [entry for entry in sandbox.log if entry.path.rstrip("/").endswith(
        ("/subjects", "/experiments", "/scans", "/files", "/resources"))]


def test_listing_a_big_project_costs_as_many_requests_as_a_small_one(make_sandbox, tmp_path):
    from sandbox import Scale

    sandbox = make_sandbox(scale=Scale(subjects=200, sessions_per_subject=2, scans_per_session=10,
                                       files_per_scan=1, file_size=64))
    small = run_script(SCRIPT, "--all", "--csv", cwd=tmp_path, sandbox=sandbox)
    assert small.returncode == 0, small.stderr
    small_requests = len(sandbox.log)
    sandbox.clear_log()
    env = script_env(tmp_path, sandbox, XNAT_PROJECT="BIG")
    big = run_script(SCRIPT, "--all", "--csv", cwd=tmp_path, env=env)
    assert big.returncode == 0, big.stderr
    assert len(big.stdout.splitlines()) == 1 + 4000
    assert len(sandbox.log) == small_requests
    assert len(listing_requests(sandbox)) == 2


def test_one_subject_costs_at_most_one_request_per_session_for_file_counts(sandbox, tmp_path):
    result = run_script(SCRIPT, "--subject", "sub-10", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    file_listings = [e for e in sandbox.log if e.path.endswith("/files")]
    assert len(file_listings) == len(demo_subject(sandbox, "sub-10").sessions)


def test_a_server_that_ignores_columns_still_gets_listed(make_sandbox, tmp_path):
    sandbox = make_sandbox(ignore_columns=True)
    result = run_script(SCRIPT, "--all", "--json", "--verbose", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    subjects = sorted(sandbox.catalog.projects["DEMO"].subjects, key=lambda s: natural_key(s.label))
    assert json.loads(result.stdout) == [expected_subject(s, with_counts=False) for s in subjects]
    assert "ignored columns=" in result.stderr


def test_missing_subject_names_it_and_what_exists(sandbox, tmp_path):
    result = run_script(SCRIPT, "--subject", "sub-99", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "2_list_subjects.py: error: subject sub-99 not found in project DEMO; "
        "subjects there: sub-2, sub-3, sub-10")
    assert "Traceback" not in result.stderr


def test_piping_into_head_ends_quietly(make_sandbox, tmp_path):
    from sandbox import Scale

    sandbox = make_sandbox(scale=Scale(subjects=200, sessions_per_subject=2, scans_per_session=10,
                                       files_per_scan=1, file_size=64))
    env = script_env(tmp_path, sandbox, XNAT_PROJECT="BIG")
    pipeline = subprocess.run(
        f'"{sys.executable}" "{REPO / SCRIPT}" --all --csv | head -1', shell=True, cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=60)
    assert pipeline.stdout.startswith("subject,session,scan")
    assert "Traceback" not in pipeline.stderr and "Error" not in pipeline.stderr, pipeline.stderr
