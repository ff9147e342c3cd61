"""What a person at a terminal sees: the hidden password prompt and the progress bar.

The scripts run under a pseudo-terminal (their controlling terminal), as in a real shell session.
"""
from __future__ import annotations

import os
import re
import signal
import select
import struct
import sys
import time

import pytest

from cli import REPO, script_env

pty = pytest.importorskip("pty")          # POSIX terminals only
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")


def run_in_terminal(args: list[str], env: dict, cwd, answer: bytes | None = None,
                    timeout: float = 60) -> tuple[int, str]:
    """Run a script with a terminal for stdin, stdout and stderr; type `answer` at its prompt."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: becomes the script
        # A new pseudo-terminal has no size; give it one, as a terminal window has.
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, *args], env)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:   # the child closed the terminal: it has ended
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and b"Password or token secret" in output:
                os.write(terminal, answer + b"\n")
                answer = None
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    return os.waitstatus_to_exitcode(status), output.decode("utf-8", "replace")


def test_a_terminal_user_without_a_secret_is_asked_for_it_without_echo(sandbox, tmp_path):
    env = script_env(tmp_path, XNAT_HOST=sandbox.url, XNAT_USER=sandbox.user)
    code, seen = run_in_terminal([str(REPO / "1_list_projects.py"), "--json"], env, tmp_path,
                                 answer=sandbox.password.encode())
    assert code == 0, seen
    assert f"Password or token secret for {sandbox.user} at 127.0.0.1:" in seen
    assert sandbox.password not in seen          # typed, but not echoed
    assert '"id": "DEMO"' in seen


def test_a_wrong_answer_at_the_prompt_is_an_authentication_error(sandbox, tmp_path):
    env = script_env(tmp_path, XNAT_HOST=sandbox.url, XNAT_USER=sandbox.user)
    code, seen = run_in_terminal([str(REPO / "1_list_projects.py")], env, tmp_path, answer=b"Not-It-123")
    assert code == 1
    assert "authentication failed at 127.0.0.1" in seen and "the password prompt" in seen


def test_a_download_at_a_terminal_shows_a_progress_bar_and_quiet_hides_it(make_sandbox, tmp_path):
    from sandbox import Scale

    sandbox = make_sandbox(scale=Scale(subjects=1, sessions_per_subject=1, scans_per_session=2,
                                       files_per_scan=20, file_size=64 * 1024))
    sandbox.faults.latency = 0.02   # long enough for the bar to be drawn
    env = script_env(tmp_path, sandbox, XNAT_PROJECT="BIG")
    env.pop("COLUMNS")
    script = str(REPO / "4_download_session.py")
    code, seen = run_in_terminal([script, "--workers", "2", "--output-dir", "loud"], env, tmp_path)
    assert code == 0, seen
    assert "/40 files" in seen and "%|" in seen
    code, seen = run_in_terminal([script, "--workers", "2", "--output-dir", "quiet", "-q"], env, tmp_path)
    assert code == 0, seen
    assert "files" not in seen and "%|" not in seen


def big_sandbox(make_sandbox):
    from sandbox import Scale

    return make_sandbox(scale=Scale(subjects=1, sessions_per_subject=1, scans_per_session=2,
                                    files_per_scan=20, file_size=64 * 1024))


def bar_lines(seen: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", seen) if "files" in line and "%|" in line]


def test_on_resume_the_bar_counts_only_what_comes_over_the_network(make_sandbox, tmp_path):
    sandbox = big_sandbox(make_sandbox)
    env = script_env(tmp_path, sandbox, XNAT_PROJECT="BIG")
    env.pop("COLUMNS")
    script = str(REPO / "4_download_session.py")
    assert run_in_terminal([script, "-q"], env, tmp_path)[0] == 0
    scan = sorted((tmp_path / "downloaded_data").glob("session-*/scan-1_*"))[0]
    for path in sorted(scan.glob("*.dcm")):
        path.unlink()   # one scan of two to fetch again: 20 files, 1.25 MiB
    code, seen = run_in_terminal([script, "--transfer", "files"], env, tmp_path)
    assert code == 0, seen
    lines = bar_lines(seen)
    # The bar's bytes (and so its speed) are those fetched: the files present are named beside it.
    assert lines and all("/1.25M [" in line and "/20 files" in line for line in lines), lines
    assert "20/20 files, 20 already present]" in lines[-1]


def test_a_zips_entries_count_on_the_bar_as_they_land(make_sandbox, tmp_path):
    sandbox = big_sandbox(make_sandbox)
    # The first zip stops halfway and stays silent: what landed before must show meanwhile.
    sandbox.faults.match, sandbox.faults.stall_count, sandbox.faults.stall_seconds = "format=zip", 1, 60
    env = script_env(tmp_path, sandbox, XNAT_PROJECT="BIG")
    env.pop("COLUMNS")
    pid, terminal = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, str(REPO / "4_download_session.py"), "--transfer",
                                   "zip", "--workers", "1", "--timeout", "60"], env)
    output, landed = b"", 0
    try:
        deadline = time.monotonic() + 50   # the stall lasts 60 s: a count seen before is mid-zip
        while not landed and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.1)[0]:
                output += os.read(terminal, 65536)
                landed = max([int(n) for n in re.findall(rb" (\d+)/40 files\]", output)] or [0])
        in_flight = sandbox.in_flight
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(terminal)
    assert landed is not None and 0 < landed < 20, output.decode("utf-8", "replace")[-2000:]
    assert in_flight == 1   # the first zip, still stalled (a request is logged as it ends)
