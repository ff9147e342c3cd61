"""Messages that tell the truth: each names what the user typed or set, what is missing, and a way
out that works (issue: a newcomer's first hour)."""
from __future__ import annotations

import pytest

from cli import run_script, script_env

SCRIPTS = ["1_list_projects.py", "2_list_subjects.py", "3_download_single_scan.py", "4_download_session.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_a_version(tmp_path, script):
    import xnat_download

    result = run_script(script, "--version", cwd=tmp_path, env=script_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{script} {xnat_download.__version__}\n"


def test_a_server_without_its_scheme_is_echoed_as_typed_and_is_a_usage_error(tmp_path):
    env = script_env(tmp_path, XNAT_HOST="xnat.example.org", XNAT_USER="someone", XNAT_PASS="s3cret-123")
    result = run_script("1_list_projects.py", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr == (
        "1_list_projects.py: error: the server address must start with https:// (or http://) and "
        "name a host, not 'xnat.example.org' (did you mean https://xnat.example.org?)\n")


def test_a_server_option_of_another_scheme_is_echoed_too(tmp_path):
    result = run_script("2_list_subjects.py", "--server", "ftp://xnat.example.org", cwd=tmp_path,
                        env=script_env(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        "2_list_subjects.py: error: the server address must start with https:// (or http://) and "
        "name a host, not 'ftp://xnat.example.org'\n")


@pytest.mark.parametrize("address", ["someone:pa55w0rd@xnat.example.org", "https://someone:pa55w0rd@xnat.example.org"])
def test_a_server_address_with_credentials_is_refused_without_echoing_it(tmp_path, address):
    result = run_script("1_list_projects.py", cwd=tmp_path, env=script_env(tmp_path, XNAT_HOST=address))
    assert result.returncode == 2
    assert result.stderr == (
        "1_list_projects.py: error: the server address holds credentials (user:secret@host): remove "
        "them and set XNAT_USER and XNAT_PASS instead\n")
    assert "pa55w0rd" not in result.stderr


def test_a_secret_without_a_user_names_the_user_only(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_USER=None)
    result = run_script("1_list_projects.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr == (
        "1_list_projects.py: error: no user for 127.0.0.1 (the secret is set): set XNAT_USER, or "
        "--user, or TOKEN_USER in common.py, or add 'machine 127.0.0.1 login ...' to ~/.netrc\n")


def test_messages_name_the_netrc_file_that_was_read(sandbox, tmp_path):
    elsewhere = tmp_path / "credentials" / "my-netrc"
    elsewhere.parent.mkdir()
    elsewhere.write_text("machine 127.0.0.1 login nobody-here password wrong-secret-42\n")
    elsewhere.chmod(0o600)
    env = script_env(tmp_path, sandbox, XNAT_USER=None, XNAT_PASS=None, NETRC=str(elsewhere))
    result = run_script("1_list_projects.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(f"(credentials read from {elsewhere})\n"), result.stderr
    # ... and where it holds nothing for the host, the advice points at it, not at ~/.netrc.
    elsewhere.write_text("machine xnat.example.org login nobody password wrong-secret-42\n")
    result = run_script("1_list_projects.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.endswith(f"password ...' to {elsewhere}\n"), result.stderr


def test_a_project_in_other_case_gets_a_did_you_mean(sandbox, tmp_path):
    result = run_script("2_list_subjects.py", "--project", "demo", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr == (
        "2_list_subjects.py: error: project demo not found or not accessible at 127.0.0.1 "
        "(did you mean DEMO?)\n")


def test_a_dcm2niix_named_by_its_variable_is_named_in_the_error(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, DCM2NIIX=str(tmp_path / "nonexistent"))
    result = run_script("3_download_single_scan.py", "--bids", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr == (
        f"3_download_single_scan.py: error: --bids needs dcm2niix: $DCM2NIIX names "
        f"{tmp_path / 'nonexistent'}, which was not found or does not run: point $DCM2NIIX at a "
        f"working dcm2niix, or unset it to use the one pip installs (pip install dcm2niix)\n")
    assert not (tmp_path / "downloaded_data").exists()   # checked before anything is fetched


@pytest.mark.parametrize("script, others", [
    ("3_download_single_scan.py", "--session picks another"),
    ("4_download_session.py", "--session picks another, --all-sessions takes them all")])
def test_a_subject_of_several_sessions_says_which_one_it_took(sandbox, tmp_path, script, others):
    result = run_script(script, "--subject", "sub-10", "--dry-run", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"subject sub-10 has 2 sessions: took sub-10_ses-1, the first with a DICOM resource ({others})")
    # A session named, or a subject of one session: nothing to say.
    named = run_script(script, "--subject", "sub-10", "--session", "sub-10_ses-2", "--dry-run",
                       cwd=tmp_path, sandbox=sandbox)
    assert named.returncode == 0 and "sessions: took" not in named.stderr


@pytest.mark.parametrize("script", ["3_download_single_scan.py", "4_download_session.py"])
def test_subject_and_session_have_help(tmp_path, script):
    result = run_script(script, "--help", cwd=tmp_path, env=script_env(tmp_path, COLUMNS="200"))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "  --subject LABEL       subject label or ID (default: the first subject with a session)" in lines
    assert ("  --session LABEL       session label or ID (default: the first session, of --subject if "
            "given, with the resource)") in lines
