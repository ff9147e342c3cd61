"""What a person at a terminal sees: the hidden password prompt and the progress bar.

The scripts run under a pseudo-terminal (their controlling terminal), as in a real shell session.
"""
from __future__ import annotations

import os
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
