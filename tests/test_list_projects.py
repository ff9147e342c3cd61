"""1_list_projects.py against the sandbox: table, JSON and CSV, and its errors."""
from __future__ import annotations

import csv
import io
import json

from cli import run_script, script_env

SCRIPT = "1_list_projects.py"


def visible_projects(sandbox, user):
    return sorted(p.id for p in sandbox.catalog.projects.values()
                  if p.accessibility != "private" or user in p.members)


def test_json_lists_every_visible_project_with_its_fields(sandbox, tmp_path):
    result = run_script(SCRIPT, "--json", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    projects = json.loads(result.stdout)
    assert [p["id"] for p in projects] == visible_projects(sandbox, "demo")
    demo = next(p for p in projects if p["id"] == "DEMO")
    catalog = sandbox.catalog.projects["DEMO"]
    assert demo["name"] == catalog.name
    assert demo["pi"] == f"{catalog.pi_firstname} {catalog.pi_lastname}"
    assert set(demo) == {"id", "name", "description", "secondary_id", "pi"}


def test_csv_has_a_header_and_the_same_rows_as_json(sandbox, tmp_path):
    as_json = json.loads(run_script(SCRIPT, "--json", cwd=tmp_path, sandbox=sandbox).stdout)
    result = run_script(SCRIPT, "--csv", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    assert list(csv.DictReader(io.StringIO(result.stdout))) == as_json


def test_table_shows_ids_and_names_and_nothing_on_stdout_but_data(sandbox, tmp_path):
    result = run_script(SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "DESCRIPTION"]
    assert [line.split()[0] for line in lines[1:]] == visible_projects(sandbox, "demo")


def test_the_outsider_does_not_see_the_private_project(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_USER=sandbox.outsider, XNAT_PASS=sandbox.outsider_password)
    result = run_script(SCRIPT, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    ids = [p["id"] for p in json.loads(result.stdout)]
    assert "PRIVATE" not in ids and "OPEN" in ids


def test_alias_token_logs_in_like_a_password(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_USER=sandbox.alias, XNAT_PASS=sandbox.alias_secret)
    result = run_script(SCRIPT, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "DEMO" in [p["id"] for p in json.loads(result.stdout)]


def test_demo_mode_needs_no_account(tmp_path):
    result = run_script(SCRIPT, "--demo", "--json", cwd=tmp_path, env=script_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "DEMO" in [p["id"] for p in json.loads(result.stdout)]


def test_a_server_that_is_not_there_is_named_with_the_kind_of_failure(tmp_path):
    env = script_env(tmp_path, XNAT_HOST="http://127.0.0.1:9", XNAT_USER="demo", XNAT_PASS="demo-password")
    result = run_script(SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "1_list_projects.py: error: could not reach 127.0.0.1: the connection was refused; check the "
        "address and port, or whether the server is up")


def test_a_host_name_that_does_not_resolve_is_a_dns_error(tmp_path):
    env = script_env(tmp_path, XNAT_HOST="https://no-such-host.invalid", XNAT_USER="demo",
                     XNAT_PASS="demo-password")
    result = run_script(SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "1_list_projects.py: error: could not reach no-such-host.invalid: the host name could not "
        "be resolved (DNS); check the server address")


def test_a_server_that_does_not_answer_in_time_is_a_timeout(sandbox, tmp_path):
    sandbox.faults.latency = 3
    result = run_script("4_download_session.py", "--timeout", "0.5", "--retries", "0", cwd=tmp_path,
                        sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "4_download_session.py: error: could not reach 127.0.0.1: the server stopped answering "
        "(timed out)")


def test_a_session_that_ends_during_the_login_is_an_authentication_error(sandbox, tmp_path):
    sandbox.faults.expire_after = 1   # the login's own check already meets an ended session
    result = run_script(SCRIPT, cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "1_list_projects.py: error: authentication failed at 127.0.0.1")


def test_a_retry_wait_that_is_not_a_number_is_named(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_RETRY_WAIT="abc")
    result = run_script(SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "1_list_projects.py: error: XNAT_RETRY_WAIT must be a number of seconds, not 'abc'")
