"""Where each setting comes from: option > environment > constant > ~/.netrc > prompt."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cli import REPO, run_in_process, run_script, script_env

SCRIPT = "1_list_projects.py"
DEAD_SERVER = "http://127.0.0.1:9"   # the discard port: nothing listens there


def copy_with_constants(tmp_path: Path, **constants: str) -> Path:
    """The scripts as a user would have them after editing the constants in common.py."""
    folder = tmp_path / "edited"
    folder.mkdir()
    shutil.copy(REPO / SCRIPT, folder)
    # With its __pycache__: each .pyc is checked against its source's size and mtime, which copytree
    # keeps, so the copy starts as fast as the original instead of compiling the whole package.
    shutil.copytree(REPO / "xnat_download", folder / "xnat_download")
    source = (REPO / "common.py").read_text()
    for name, value in constants.items():
        source, count = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", source, flags=re.M)
        assert count == 1, name
    (folder / "common.py").write_text(source)
    return folder


def write_netrc(home: Path, host: str, login: str, password: str) -> None:
    path = home / ".netrc"
    path.write_text(f"machine {host} login {login} password {password}\n")
    path.chmod(0o600)


def project_ids(result) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [p["id"] for p in json.loads(result.stdout)]


# Options against the environment are argument handling: main(argv) runs in this process, with
# the environment given, and still logs in and lists over HTTP.

def test_server_option_beats_the_environment(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_HOST=DEAD_SERVER)
    result = run_in_process(SCRIPT, "--json", "--server", sandbox.url, cwd=tmp_path, env=env)
    assert "DEMO" in project_ids(result)


def test_user_option_beats_the_environment(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_USER="nobody", XNAT_PASS=sandbox.password)
    result = run_in_process(SCRIPT, "--json", "--user", sandbox.user, cwd=tmp_path, env=env)
    assert "DEMO" in project_ids(result)


def test_environment_beats_the_constants(sandbox, tmp_path):
    scripts = copy_with_constants(tmp_path, XNAT_SERVER=DEAD_SERVER,
                                  TOKEN_USER="nobody", TOKEN_SECRET="wrong-secret")
    result = run_script(SCRIPT, "--json", cwd=tmp_path, sandbox=sandbox, scripts_dir=scripts)
    assert "DEMO" in project_ids(result)


def test_constants_are_used_when_nothing_else_is_set(sandbox, tmp_path):
    scripts = copy_with_constants(tmp_path, XNAT_SERVER=sandbox.url,
                                  TOKEN_USER=sandbox.user, TOKEN_SECRET=sandbox.password)
    result = run_script(SCRIPT, "--json", cwd=tmp_path, env=script_env(tmp_path), scripts_dir=scripts)
    assert "DEMO" in project_ids(result)


def test_wrong_constant_secret_is_reported_with_its_source_but_not_its_value(sandbox, tmp_path):
    scripts = copy_with_constants(tmp_path, XNAT_SERVER=sandbox.url,
                                  TOKEN_USER=sandbox.user, TOKEN_SECRET="Wrong-Secret-4711")
    result = run_script(SCRIPT, "--json", cwd=tmp_path, env=script_env(tmp_path), scripts_dir=scripts)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert errors == [result.stderr.splitlines()[-1]]
    assert errors[0].startswith("1_list_projects.py: error: authentication failed at 127.0.0.1")
    assert errors[0].endswith("(credentials read from TOKEN_USER and TOKEN_SECRET in common.py)")
    assert "Wrong-Secret-4711" not in result.stderr + result.stdout


def test_netrc_gives_user_and_secret_for_the_host(sandbox, tmp_path):
    write_netrc(tmp_path, "127.0.0.1", sandbox.user, sandbox.password)
    env = script_env(tmp_path, XNAT_HOST=sandbox.url)
    assert "DEMO" in project_ids(run_script(SCRIPT, "--json", cwd=tmp_path, env=env))


def test_netrc_secret_is_not_used_for_another_user(sandbox, tmp_path):
    write_netrc(tmp_path, "127.0.0.1", sandbox.user, sandbox.password)
    env = script_env(tmp_path, XNAT_HOST=sandbox.url, XNAT_USER=sandbox.outsider)
    result = run_script(SCRIPT, "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "no credentials for 127.0.0.1 (secret missing)" in result.stderr


def test_netrc_readable_by_others_is_refused_without_showing_it(sandbox, tmp_path):
    write_netrc(tmp_path, "127.0.0.1", sandbox.user, sandbox.password)
    (tmp_path / ".netrc").chmod(0o644)
    result = run_script(SCRIPT, "--json", cwd=tmp_path, env=script_env(tmp_path, XNAT_HOST=sandbox.url))
    assert result.returncode == 1
    assert "chmod 600" in result.stderr
    assert sandbox.password not in result.stderr


def test_no_credentials_and_no_terminal_says_what_to_set(sandbox, tmp_path):
    result = run_script(SCRIPT, cwd=tmp_path, env=script_env(tmp_path, XNAT_HOST=sandbox.url))
    assert result.returncode == 1
    assert result.stderr == (
        "1_list_projects.py: error: no credentials for 127.0.0.1 (user and secret missing): set "
        "XNAT_USER and XNAT_PASS, or TOKEN_USER and TOKEN_SECRET in common.py, or add 'machine "
        "127.0.0.1 login ... password ...' to ~/.netrc\n")
    assert sandbox.log == [] or all("/data/projects" not in e.path for e in sandbox.log)


def test_project_option_beats_the_environment(sandbox, tmp_path):
    env = script_env(tmp_path, sandbox, XNAT_PROJECT="NOPE")
    result = run_in_process("2_list_subjects.py", "--project", "DEMO", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr


def test_secret_is_not_an_option(sandbox, tmp_path, in_process):
    result = in_process(SCRIPT, "--password", "x", cwd=tmp_path, sandbox=sandbox)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "1_list_projects.py: error: unrecognized arguments: --password x")
