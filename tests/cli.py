"""Running the scripts as a user does: a subprocess, real HTTP to a sandbox on loopback."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
    return subprocess.Popen([sys.executable, str(REPO / script), *args], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def files_below(folder: Path) -> dict[str, Path]:
    """Relative path -> path of every regular file below folder (bookkeeping files included)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def data_files_below(folder: Path) -> dict[str, Path]:
    """Like files_below, without our manifest and lock files."""
    return {name: path for name, path in files_below(folder).items()
            if Path(name).name not in (".xnat-manifest.json", ".xnat-lock")}
