"""Credentials: the secret never shows, whatever goes wrong; TLS is verified; plain http:// warns;
each way of being refused has its own message."""
from __future__ import annotations

import base64
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from cli import data_files_below, files_below, run_script, script_env, start_script
from events import HANG_GUARD, SandboxEvents

SECRET = "S3cr3t-4711/p@ss%w0rd+="     # recognisable, and changed by URL and base64 encoding
WRONG_SECRET = "Wr0ng-S3cr3t-0815"
SESSION_SCRIPT = "4_download_session.py"
HTTP_WARNING = ("warning: xnat.invalid is reached over plain http://: the credentials cross the network "
                "unencrypted; use https:// if the server offers it")


def spellings(user: str, secret: str) -> list[str]:
    """The secret as it could leak: plain, URL-encoded, or inside a basic-auth header."""
    return [secret, quote(secret, safe=""), quote_plus(secret),
            base64.b64encode(f"{user}:{secret}".encode()).decode()]


def assert_no_secret(user: str, *texts: str, folder: Path | None = None) -> None:
    """No spelling of either secret in the texts, nor in any file below folder."""
    everything = list(texts)
    if folder is not None and folder.exists():
        everything += [path.read_bytes().decode("utf-8", "replace") for path in files_below(folder).values()]
    for secret in (SECRET, WRONG_SECRET):
        for spelling in spellings(user, secret):
            for text in everything:
                assert spelling not in text


@pytest.fixture
def server(sandbox):
    """The demo sandbox, its user's password replaced by a recognisable secret."""
    sandbox.password = sandbox.passwords[sandbox.user] = SECRET
    return sandbox


@pytest.fixture
def home(tmp_path) -> Path:
    """HOME (where a ~/.netrc may hold the secret on purpose), apart from the folder we search."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def write_netrc(home: Path, text: str, mode: int = 0o600) -> None:
    (home / ".netrc").write_text(text)
    (home / ".netrc").chmod(mode)


def first_file(sandbox, scan_index: int = 0) -> str:
    session = next(s for subject in sandbox.catalog.projects["DEMO"].subjects
                   for s in subject.sessions if s.label == "sub-2_ses-1")
    return session.scans[scan_index].resources[0].files[0].name


# Every path to an error we know of, and a clean run. Each sets up the fault and returns the
# script, its arguments, environment changes, and a phrase of the message it must end with.

def wrong_secret(server, home):
    return "1_list_projects.py", [], {"XNAT_PASS": WRONG_SECRET}, "authentication failed"


def wrong_secret_in_netrc(server, home):
    write_netrc(home, f"machine 127.0.0.1 login {server.user} password {WRONG_SECRET}\n")
    return "2_list_subjects.py", [], {"XNAT_USER": None, "XNAT_PASS": None}, "read from ~/.netrc"


def netrc_open_to_others(server, home):
    write_netrc(home, f"machine 127.0.0.1 login {server.user} password {SECRET}\n", mode=0o644)
    return "1_list_projects.py", [], {"XNAT_USER": None, "XNAT_PASS": None}, "chmod 600"


def netrc_that_does_not_parse(server, home):
    write_netrc(home, f"machine 127.0.0.1 login {server.user} password {SECRET}\n{SECRET} {SECRET}\n")
    return "1_list_projects.py", [], {"XNAT_USER": None, "XNAT_PASS": None}, "could not be parsed"


def secret_in_the_server_address(server, home):
    address = server.url.replace("http://", f"http://{server.user}:{quote(SECRET, safe='')}@")
    return "1_list_projects.py", [], {"XNAT_HOST": address}, "holds credentials"


def server_unreachable(server, home):
    return "1_list_projects.py", [], {"XNAT_HOST": "http://127.0.0.1:9"}, "connection was refused"


def https_to_a_plain_server(server, home):
    return "1_list_projects.py", [], {"XNAT_HOST": server.url.replace("http://", "https://")}, "TLS"


def project_not_found(server, home):
    return "2_list_subjects.py", [], {"XNAT_PROJECT": "NOPE"}, "not found or not accessible"


def unusable_listing(server, home):
    server.faults.listing = "html"
    server.faults.listing_match = "/data/projects"
    return "1_list_projects.py", [], {}, "unusable listing"


def login_page_redirects(server, home):
    server.faults.match = "/data/"
    server.faults.redirect_count = -1
    return "2_list_subjects.py", [], {}, "authentication failed"


def session_expires_and_login_is_refused(server, home):
    def change_password_mid_run(entry) -> None:
        if "/files/" in entry.path and server.passwords[server.user] == SECRET:
            server.passwords[server.user] = "changed"
            server.end_all_sessions()
    server.log_listeners.append(change_password_mid_run)
    return SESSION_SCRIPT, ["--workers", "1", "--transfer", "files"], {}, "logging in again was refused"


def files_that_fail(server, home):
    server.faults.match = first_file(server, 1)
    server.faults.corrupt_count = -1
    return SESSION_SCRIPT, ["--retries", "1", "--transfer", "files"], {}, "could not be downloaded"


def file_size_limit(limit: int):
    """A preexec_fn: no file the child writes may grow beyond `limit` bytes (ulimit -f)."""
    resource = pytest.importorskip("resource")   # POSIX only
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def disk_full(server, home):
    return SESSION_SCRIPT, [], {}, "a file-size limit was reached"


def output_is_a_file(server, home):
    (home / "not-a-folder").write_text("my notes")
    return SESSION_SCRIPT, ["--output-dir", str(home / "not-a-folder")], {}, "exists and is a file"


def clean_download(server, home):
    return SESSION_SCRIPT, [], {}, None


PATHS = [wrong_secret, wrong_secret_in_netrc, netrc_open_to_others, netrc_that_does_not_parse,
         secret_in_the_server_address, server_unreachable, https_to_a_plain_server, project_not_found,
         unusable_listing, login_page_redirects, session_expires_and_login_is_refused, files_that_fail,
         disk_full, output_is_a_file, clean_download]


@pytest.mark.parametrize("path", PATHS, ids=[p.__name__ for p in PATHS])
def test_the_secret_never_shows_on_any_path_even_verbose(server, home, tmp_path, path):
    work = tmp_path / "work"
    work.mkdir()
    script, args, env_changes, message = path(server, home)
    env = script_env(home, server, **env_changes)
    result = run_script(script, "--verbose", *args, cwd=work, env=env,
                        preexec_fn=file_size_limit(4096) if path is disk_full else None)
    last = result.stderr.strip().splitlines()[-1]
    if message is None:
        assert result.returncode == 0, result.stderr
        assert "xnat_download: " in result.stderr   # --verbose had its say
    else:
        usage = path is secret_in_the_server_address   # a setting that cannot be used: exit 2
        assert result.returncode == (2 if usage else 1), result.stderr
        assert last.startswith(f"{script}: error: ") and message in last, result.stderr
    assert_no_secret(server.user, result.stdout, result.stderr, folder=work)


def command_line_of(pid: int) -> str:
    """What ps shows for a process (read from /proc where ps is not installed)."""
    try:
        return subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(pid)],
                              capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_the_secret_is_not_in_the_process_list_nor_in_what_ctrl_c_prints(server, tmp_path):
    server.faults.stall_count = -1       # downloads hang, so the process can be looked at
    server.faults.stall_seconds = 60
    events = SandboxEvents(server)
    process = start_script(SESSION_SCRIPT, "--verbose", "--workers", "2", "--transfer", "files", cwd=tmp_path,
                           env=script_env(tmp_path, server))
    try:
        events.wait_for("stalled")   # the download has started, and is waiting
        command_line = command_line_of(process.pid)
        assert SESSION_SCRIPT in command_line
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=HANG_GUARD)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" in stderr   # --verbose: Ctrl-C shows where it stopped, secrets scrubbed
    assert_no_secret(server.user, command_line, stdout, stderr, folder=tmp_path / "downloaded_data")


# --- plain http and TLS ------------------------------------------------------------------------

def test_plain_http_with_credentials_warns_even_when_quiet(server, tmp_path):
    # A host off this machine (one that does not resolve: the warning comes before the login).
    env = script_env(tmp_path, server, XNAT_HOST="http://xnat.invalid")
    result = run_script("1_list_projects.py", "--quiet", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"1_list_projects.py: {HTTP_WARNING}",
        "1_list_projects.py: error: could not reach xnat.invalid: the host name could not be "
        "resolved (DNS); check the server address"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost"])
def test_plain_http_to_this_machine_has_no_warning(make_sandbox, tmp_path, host):
    # The credentials never leave the machine.
    started = make_sandbox(host="127.0.0.2" if host == "127.0.0.2" else "127.0.0.1")
    env = script_env(tmp_path, started, XNAT_HOST=started.url.replace(started.url.split("//")[1]
                                                                      .split(":")[0], host))
    result = run_script("1_list_projects.py", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_every_loopback_address_counts_as_this_machine():
    from xnat_download.connection import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.255.255.254", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback, ["10.0.0.1", "128.0.0.1", "xnat.example.org", "localhost.example.org"]))


@pytest.fixture
def tls_server(make_sandbox, tmp_path):
    """A sandbox over https with a certificate from a throwaway authority; and that authority."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    folder = tmp_path / "tls"
    folder.mkdir()
    certificate.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    certificate.private_key_pem.write_to_path(str(folder / "server.key"))
    authority.cert_pem.write_to_path(str(folder / "authority.pem"))
    started = make_sandbox(prefix="/xnat", tls=(str(folder / "server.pem"), str(folder / "server.key")))
    started.password = started.passwords[started.user] = SECRET
    return started, folder / "authority.pem"


def test_an_unknown_certificate_authority_is_a_clear_error_before_credentials_are_sent(tls_server,
                                                                                       tmp_path):
    server, _ = tls_server
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, sandbox=server)
    assert result.returncode == 1
    assert result.stderr == (
        f"{SESSION_SCRIPT}: error: could not reach 127.0.0.1: its TLS certificate could not be verified "
        f"(for a private certificate authority, point REQUESTS_CA_BUNDLE at its certificate file)\n")
    assert server.log == []   # no request got through the handshake
    assert not (tmp_path / "downloaded_data").exists()


def test_requests_ca_bundle_trusts_a_private_authority(tls_server, tmp_path):
    server, authority = tls_server
    env = script_env(tmp_path, server, REQUESTS_CA_BUNDLE=str(authority))
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr   # https: no word about plain http
    assert len(data_files_below(tmp_path / "downloaded_data")) == 50   # the default session's files
    assert all(entry.path.startswith("/xnat/") or entry.path == "/xnat" for entry in server.log)


# --- refused in different ways -----------------------------------------------------------------

AUTH_FAILED = ("error: authentication failed at 127.0.0.1: check the user and secret, or renew the "
               "alias token (credentials read from XNAT_USER and XNAT_PASS)")


def test_a_wrong_alias_token_secret_says_to_renew_the_token(server, tmp_path):
    env = script_env(tmp_path, server, XNAT_USER=server.alias, XNAT_PASS=WRONG_SECRET)
    result = run_script("2_list_subjects.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"2_list_subjects.py: {AUTH_FAILED}"


def test_an_expired_alias_token_says_to_renew_the_token(server, tmp_path):
    del server.aliases[server.alias]   # XNAT forgets a token when it expires
    env = script_env(tmp_path, server, XNAT_USER=server.alias, XNAT_PASS=server.alias_secret)
    result = run_script("2_list_subjects.py", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"2_list_subjects.py: {AUTH_FAILED}"


def test_an_alias_token_that_expires_mid_download_stops_the_run_with_that_message(server, tmp_path):
    def expire_the_token(entry) -> None:
        if "/files/" in entry.path and server.aliases:
            server.aliases.clear()
            server.end_all_sessions()
    server.log_listeners.append(expire_the_token)
    env = script_env(tmp_path, server, XNAT_USER=server.alias, XNAT_PASS=server.alias_secret)
    result = run_script(SESSION_SCRIPT, "--workers", "1", "--transfer", "files", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"{SESSION_SCRIPT}: error: authentication failed at 127.0.0.1 (the session expired and logging "
        f"in again was refused): check the user and secret, or renew the alias token (credentials "
        f"read from XNAT_USER and XNAT_PASS)")
    assert len(data_files_below(tmp_path / "downloaded_data")) == 1   # the one before it expired


def test_a_user_without_access_to_a_project_is_told_so(server, tmp_path):
    env = script_env(tmp_path, server, XNAT_USER=server.outsider, XNAT_PASS=server.outsider_password)
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"{SESSION_SCRIPT}: error: project DEMO not found or not accessible at 127.0.0.1 (this user "
        f"may not read its data (403): ask one of its owners for access)")


def test_a_private_project_looks_like_a_missing_one(server, tmp_path):
    env = script_env(tmp_path, server, XNAT_USER=server.outsider, XNAT_PASS=server.outsider_password,
                     XNAT_PROJECT="PRIVATE")
    result = run_script(SESSION_SCRIPT, cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"{SESSION_SCRIPT}: error: project PRIVATE not found or not accessible at 127.0.0.1 "
        f"(1_list_projects.py shows the projects you can access)")
