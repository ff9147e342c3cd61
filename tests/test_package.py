"""The package's promise about itself: imports run one way, and no module imports a script."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

from cli import REPO

PACKAGE = REPO / "xnat_download"


def test_each_module_imports_only_those_listed_before_it():
    order = re.findall(r"^    (\w+)\s", (PACKAGE / "__init__.py").read_text(), re.M)
    assert sorted(order) == sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")
    for position, module in enumerate(order):
        source = (PACKAGE / f"{module}.py").read_text()
        imported = set(re.findall(r"^\s*from xnat_download\.(\w+) import", source, re.M))
        assert imported <= set(order[:position]), (module, imported - set(order[:position]))


def test_common_and_the_package_never_import_a_script_nor_common_the_package_beyond_names():
    # common.py takes its cleaning of names from names.py, which in turn imports nothing of ours.
    common_imports = re.findall(r"^\s*(?:from|import)\s+(xnat_download\S*)", (REPO / "common.py").read_text(), re.M)
    assert set(common_imports) <= {"xnat_download.names"}
    assert not re.search(r"^\s*(from|import)\s+(common|xnat_download)\b", (PACKAGE / "names.py").read_text(), re.M)
    for path in [REPO / "common.py", *PACKAGE.glob("*.py")]:
        assert not re.search(r"^\s*(from|import)\s+\d_", path.read_text(), re.M), path


def test_the_package_imports_without_common_py(tmp_path):
    """Copied alone, the package works: the scripts pass the site's defaults in."""
    shutil.copytree(PACKAGE, tmp_path / "xnat_download", ignore=shutil.ignore_patterns("__pycache__"))
    modules = [path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"]
    code = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
            "[importlib.import_module('xnat_download.' + name) for name in sys.argv[2:]]")
    # -I: neither the repository nor PYTHONPATH is on sys.path, so common.py cannot be found.
    result = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path), *modules],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_below_the_scripts_and_cli_nothing_reads_argparse_exits_or_writes_the_process_streams():
    # The library takes keywords and frozen records, raises, and writes to the streams it is handed.
    allowed = {"cli", "environment"}   # cli builds the Environment; environment reads the process
    forbidden = re.compile(r"\bsys\.(stdout|stderr|stdin|exit|argv)\b|\bparser\.error\b|"
                           r"\bimport argparse\b|\bNamespace\b|getattr\(args\b|\bos\.environ\b(?!\s*itself)")
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem in allowed:
            continue
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
        assert not forbidden.search(code), (path.name, forbidden.search(code).group(0))


def test_a_script_run_in_process_leaves_the_process_as_it_was(sandbox, tmp_path):
    import logging
    import os
    import signal

    from cli import run_in_process, script_env

    before = (os.getcwd(), dict(os.environ), logging.getLogger().handlers[:],
              signal.getsignal(signal.SIGTERM), list(sys.argv))
    result = run_in_process("4_download_session.py", "--dry-run", cwd=tmp_path,
                            env=script_env(tmp_path, sandbox))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("0 already present; nothing was written\n")
    assert (os.getcwd(), dict(os.environ), logging.getLogger().handlers[:],
            signal.getsignal(signal.SIGTERM), list(sys.argv)) == before
    # Its own environment, not the process's: a usage error, its exit mapped to 2, on its stderr.
    usage = run_in_process("4_download_session.py", "--shard", "1/2", cwd=tmp_path, env=script_env(tmp_path))
    assert usage.returncode == 2
    assert usage.stderr.splitlines()[-1] == "4_download_session.py: error: --shard works with --all-sessions"
    unset = run_in_process("1_list_projects.py", cwd=tmp_path, env=script_env(tmp_path, XNAT_HOST="xnat.example.org"))
    assert unset.returncode == 2 and "not 'xnat.example.org'" in unset.stderr
