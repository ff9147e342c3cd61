"""The README stays true: its commands exist, and every option it mentions is a real one."""
from __future__ import annotations

import re
import subprocess
import sys

from cli import REPO

SCRIPTS = ["1_list_projects.py", "2_list_subjects.py", "3_download_single_scan.py", "4_download_session.py"]
README = (REPO / "README.md").read_text()


def help_texts() -> str:
    return "\n".join(subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True,
                                    text=True, check=True).stdout for script in SCRIPTS)


def test_the_two_set_up_commands_come_first():
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)[:2]
    assert commands[0].endswith("pip install -r requirements.txt && python 4_download_session.py --demo")
    assert commands[1].endswith("pip install -r requirements-test.txt && python -m pytest")
    assert "python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_every_option_the_readme_names_is_in_some_help_text():
    text = help_texts()
    # Options of the tools around us, not of our scripts.
    others = {"--parallel", "--parallel-max", "--parallel-immediate", "--only", "--runs", "--help", "--scale",
              "--port", "--prefix"}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", README)) - others
    missing = sorted(option for option in named if option not in text)
    assert not missing, f"README names options no script has: {missing}"
