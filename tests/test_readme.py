"""The README and the pages of docs/ stay true: the two set-up commands, every link, every option
named, and every command shown with its output, run again (`--demo`, `--help`) and compared.

After a change to a script's messages or help, `python tests/test_readme.py --write` runs every
shown command again and writes what it printed into the pages (then read the diff)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cli import REPO, script_env

SCRIPTS = ["1_list_projects.py", "2_list_subjects.py", "3_download_single_scan.py", "4_download_session.py"]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# A fenced text block whose first line is a prompt shows commands and what they print.
TEXT_BLOCK = re.compile(r"^```text\n(\$ .*?)^```$", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# What changes from run to run: the demo's port and the time taken; and from Python to Python: argparse
# before 3.10 heads the options "optional arguments".
VARYING = [(re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
           (re.compile(r"\bin \d+(?:\.\d+)? s\b"), "in <seconds> s"),
           (re.compile(r"^optional arguments:$", re.M), "options:")]


def page_name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def help_texts() -> str:
    return "\n".join(subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True,
                                    text=True, check=True).stdout for script in SCRIPTS)


def shown_commands(text: str) -> list[tuple[str, str]]:
    """(command, the output shown under it) for every `$ ...` line of the page's text blocks."""
    shown = []
    for block in TEXT_BLOCK.finditer(text):
        lines = block.group(1).splitlines()
        starts = [index for index, line in enumerate(lines) if line.startswith("$ ")]
        for start, end in zip(starts, starts[1:] + [len(lines)]):
            shown.append((lines[start][2:], "\n".join(lines[start + 1:end]).rstrip()))
    return shown


def run_shown(command: str, cwd: Path) -> str:
    """Run a command as the page shows it, in a folder of its own; stdout and stderr as a terminal
    interleaves them, at 100 columns."""
    argv = shlex.split(command)
    assert argv[:1] == ["python"] and argv[1:2] and argv[1] in SCRIPTS, \
        f"a page shows the output of {command!r}: only our four scripts' output is shown"
    assert "--demo" in argv or "--help" in argv, \
        f"a page shows the output of {command!r}, which needs a real server: show it with --demo"
    result = subprocess.run([sys.executable, str(REPO / argv[1]), *argv[2:]], cwd=cwd,
                            env=script_env(cwd, COLUMNS="100"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    return result.stdout.rstrip()


def comparable(output: str) -> str:
    for pattern, replacement in VARYING:
        output = pattern.sub(replacement, output)
    return "\n".join(line.rstrip() for line in output.splitlines())


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub makes of a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


def test_the_two_set_up_commands_come_first():
    commands = re.findall(r"```sh\n(.*?)\n```", README.read_text(), re.S)[:2]
    assert commands[0].endswith("pip install -r requirements.txt && python 4_download_session.py --demo")
    assert commands[1].endswith("pip install -r requirements-test.txt && python -m pytest")
    assert "python -m pytest" in (REPO / ".ci" / "run").read_text()


def test_the_readme_is_a_landing_page():
    """Short enough to read before the first download; the rest lives in docs/."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move details to docs/"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(README.read_text())}
    unlinked = [page_name(page) for page in DOCS if page.resolve() not in linked]
    assert DOCS and not unlinked, f"README.md links no page {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=page_name)
def test_every_link_resolves(page):
    """Links to files and headings of this repository (links to other sites need the network)."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(target)
    assert not broken, f"{page_name(page)} links to what is not there: {broken}"


def test_every_option_the_pages_name_is_in_some_help_text():
    text = help_texts()
    # Options of the tools around us (curl, the bench, the sandbox), not of our scripts.
    others = {"--parallel", "--parallel-max", "--parallel-immediate", "--only", "--runs", "--help", "--scale",
              "--port", "--prefix", "--write"}
    for page in PAGES:
        named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", page.read_text())) - others
        missing = sorted(option for option in named if option not in text)
        assert not missing, f"{page_name(page)} names options no script has: {missing}"


def test_every_scripts_help_is_shown():
    shown = {command for page in PAGES for command, _ in shown_commands(page.read_text())}
    assert not [script for script in SCRIPTS if f"python {script} --help" not in shown]


@pytest.mark.parametrize("page", [page for page in PAGES if shown_commands(page.read_text())], ids=page_name)
def test_every_shown_command_prints_what_the_page_shows(page, tmp_path):
    """Each page's commands run in order in one folder, as a reader following the page would."""
    for command, output in shown_commands(page.read_text()):
        printed, shown = comparable(run_shown(command, tmp_path)), comparable(output)
        if "--help" in shlex.split(command):   # the same words, however this Python's argparse wraps them
            printed, shown = " ".join(printed.split()), " ".join(shown.split())
        assert printed == shown, \
            f"{page_name(page)}: `{command}` prints something else now (python tests/test_readme.py --write)"


def write_outputs(page: Path, cwd: Path) -> None:
    """Put what each shown command prints now under it in the page."""
    def rewrite(block: re.Match) -> str:
        runs = []
        for command, shown in shown_commands(block.group(0)):
            output = run_shown(command, cwd)
            output = shown if comparable(output) == comparable(shown) else output   # no churn of ports
            runs.append("\n".join(line.rstrip() for line in f"$ {command}\n{output}".splitlines()))
        return "```text\n" + "\n\n".join(runs) + "\n```"

    page.write_text(TEXT_BLOCK.sub(rewrite, page.read_text()))


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_readme.py --write   (runs every shown command, writes its output)")
    for shown_page in PAGES:
        with tempfile.TemporaryDirectory() as folder:
            write_outputs(shown_page, Path(folder))
