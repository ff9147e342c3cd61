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
