"""Running the scripts as a user does: a subprocess, real HTTP to a sandbox on loopback."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from common import scan_folder_name  # noqa: E402  (needs the path above)
from xnat_download.names import safe_relative_path  # noqa: E402
from xnat_download.catalog import Scan  # noqa: E402


def script_env(home: Path, sandbox=None, **overrides: str) -> dict[str, str]:
    """A clean environment: no XNAT settings or netrc from the machine running the tests."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("XNAT", "NETRC", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"))}
    env.update(HOME=str(home), PYTHONUNBUFFERED="1", XNAT_RETRY_WAIT="0.01", COLUMNS="200")
    if sandbox is not None:
        env.update(XNAT_HOST=sandbox.url, XNAT_PROJECT="DEMO", XNAT_USER=sandbox.user,
                   XNAT_PASS=sandbox.password)
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def run_script(script: str, *args: str, cwd: Path, sandbox=None, env: dict | None = None,
               timeout: float = 90, scripts_dir: Path = REPO, **popen) -> subprocess.CompletedProcess:
    """Run one of the four scripts; its downloads land below cwd."""
    environment = env if env is not None else script_env(cwd, sandbox)
    return subprocess.run([sys.executable, str(scripts_dir / script), *args], cwd=cwd,
                          env=environment, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, **popen)


def start_script(script: str, *args: str, cwd: Path, env: dict) -> subprocess.Popen:
    """Start a script to signal it later. Ctrl-C reaches it even when the tests run as a background
    job, whose children inherit an ignored SIGINT (Python then installs no KeyboardInterrupt)."""
    return subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_in_process(script: str, *args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """Run a script in this process, as `python script args` would run it in `cwd` with `env` for
    its environment, without a new interpreter's start-up: the script is handed an Environment of
    its own (arguments, streams, variables, folder), so nothing of this process is patched."""
    from xnat_download.cli import run
    from xnat_download.environment import Environment

    spec = importlib.util.spec_from_file_location(Path(script).stem, REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stdout, stderr = io.StringIO(), io.StringIO()
    environment = Environment(program=Path(script).name, args=list(args), stdout=stdout,
                              stderr=stderr, stdin=io.StringIO(), environ=dict(env), cwd=cwd)
    code = run(module.main, environment)
    return subprocess.CompletedProcess([script, *args], code, stdout.getvalue(), stderr.getvalue())


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def files_below(folder: Path) -> dict[str, Path]:
    """Relative path -> path of every regular file below folder (bookkeeping files included)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def data_files_below(folder: Path) -> dict[str, Path]:
    """Like files_below, without our manifest and lock files."""
    return {name: path for name, path in files_below(folder).items()
            if Path(name).name not in (".xnat-manifest.json", ".xnat-lock")}


def find_session(sandbox, label, project="DEMO"):
    for subject in sandbox.catalog.projects[project].subjects:
        for session in subject.sessions:
            if session.label == label:
                return session
    raise KeyError(label)


def expected_files(session, resource="DICOM", scan_ids=None) -> dict[str, bytes]:
    """Relative path below the session folder -> the bytes the sandbox serves."""
    expected = {}
    for scan in session.scans:
        if scan_ids is not None and scan.id not in scan_ids:
            continue
        folder = scan_folder_name(Scan(id=scan.id, type=scan.type))
        for res in scan.resources:
            if res.label == resource:
                for file in res.files:
                    expected[f"{folder}/{safe_relative_path(file.name)}"] = file.data()
    return expected


def assert_downloaded(folder: Path, expected: dict[str, bytes]) -> None:
    on_disk = data_files_below(folder)
    assert sorted(on_disk) == sorted(expected)
    for name, data in expected.items():
        assert on_disk[name].read_bytes() == data, name
