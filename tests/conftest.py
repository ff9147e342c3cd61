"""Shared fixtures: sandboxes started for a test and stopped after it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from cli import run_in_process, run_script, script_env  # noqa: E402
from sandbox import Sandbox  # noqa: E402  (needs the path above)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox with the demo data and no faults."""
    with Sandbox() as started:
        yield started


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with any Sandbox(...) arguments; all are stopped after the test."""
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        instance = Sandbox(**kwargs).start()
        started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()


@pytest.fixture
def in_process() -> Callable[..., Any]:
    """Run a script's main in this process (see cli.run_in_process): for the tests where starting
    an interpreter would be most of the time, such as usage errors and dry runs."""
    def call(script: str, *args: str, cwd: Path, sandbox: Sandbox | None = None):
        return run_in_process(script, *args, cwd=cwd, env=script_env(cwd, sandbox))
    return call


@dataclass
class Download:
    """A finished run of 4_download_session.py with no arguments (the default session)."""
    server: Sandbox
    root: Path    # the folder it ran in
    result: Any   # its CompletedProcess

    def copy_into(self, folder: Path) -> Path:
        """Copy the download into folder as if it had been made there (copytree keeps the mtimes
        the manifests recorded; a manifest names its server without the port, and every sandbox
        serves the same demo data); returns the session folder."""
        assert self.result.returncode == 0, self.result.stderr
        shutil.copytree(self.root / "downloaded_data", folder / "downloaded_data")
        return folder / "downloaded_data" / "session-sub-2_ses-1"


@pytest.fixture(scope="module")
def default_download(tmp_path_factory) -> Iterator[Download]:
    """The default session downloaded once per module, by a server of its own: tests that inspect
    a plain download read it; tests that damage it or run again start from a copy (copy_into)."""
    with Sandbox() as server:
        root = tmp_path_factory.mktemp("default_download")
        yield Download(server, root, run_script("4_download_session.py", cwd=root, sandbox=server))
