"""What the user reads on stderr: each kind of record as its line (notes bare, warnings and errors
behind the script's name, --verbose detail behind the logger's), what --quiet hides, secrets
scrubbed from every line, and sizes in the units people read."""
from __future__ import annotations

import io
import logging

import pytest

from xnat_download.errors import register_secret
from xnat_download.output import LineFormatter, always, human_size, note, warn

PROG = "4_download_session.py"
SECRET = "Tq7-output-test-secret-0042"   # registered for this module's tests only; never a real one


@pytest.fixture
def stderr_at():
    """Records of the xnat_download logger, from a level up, as LineFormatter writes them to a
    stream; the logger is put back as it was afterwards."""
    ours = logging.getLogger("xnat_download")
    saved = ours.level, ours.propagate, ours.handlers[:]
    stream = io.StringIO()

    def at(level: int) -> io.StringIO:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(LineFormatter(PROG))
        ours.handlers[:] = [handler]
        ours.setLevel(level)
        ours.propagate = False
        return stream

    yield at
    ours.setLevel(saved[0])
    ours.propagate = saved[1]
    ours.handlers[:] = saved[2]


def test_notes_are_bare_and_warnings_and_errors_carry_the_script_name(stderr_at):
    stream = stderr_at(logging.INFO)
    note("skipped scan 4 (localizer) of sub-2_ses-1: no DICOM resource")
    warn("a file of scan 3 is listed twice")
    logging.getLogger("xnat_download").error("could not reach 127.0.0.1")
    assert stream.getvalue().splitlines() == [
        "skipped scan 4 (localizer) of sub-2_ses-1: no DICOM resource",
        f"{PROG}: warning: a file of scan 3 is listed twice",
        f"{PROG}: error: could not reach 127.0.0.1"]


def test_quiet_hides_notes_but_never_warnings_or_what_is_shown_as_it_is(stderr_at):
    stream = stderr_at(logging.WARNING)   # what -q sets
    note("10 files (1.2 MiB) downloaded")
    warn("the server sent no digest")
    always("failed: scan-3_func_rest/5.dcm")
    assert stream.getvalue().splitlines() == [f"{PROG}: warning: the server sent no digest",
                                              "failed: scan-3_func_rest/5.dcm"]


def test_verbose_detail_and_other_libraries_lines_carry_the_logger_name(stderr_at):
    stream = stderr_at(logging.DEBUG)
    logging.getLogger("xnat_download").debug("logging in to https://xnat.example.org as alice")
    formatter = LineFormatter(PROG)
    urllib3 = logging.makeLogRecord({"name": "urllib3.connectionpool", "levelno": logging.WARNING,
                                     "levelname": "WARNING", "msg": "Retrying (1 left)"})
    assert stream.getvalue().splitlines() == ["xnat_download: logging in to https://xnat.example.org as alice"]
    assert formatter.format(urllib3) == "urllib3.connectionpool: Retrying (1 left)"


def test_a_registered_secret_is_scrubbed_from_every_kind_of_line_and_from_tracebacks(stderr_at):
    register_secret(SECRET)
    stream = stderr_at(logging.DEBUG)
    ours = logging.getLogger("xnat_download")
    note(f"token {SECRET} in a note")
    warn(f"token {SECRET} in a warning")
    always(f"token {SECRET} shown as it is")
    try:
        raise RuntimeError(f"https://alice:{SECRET}@xnat.example.org refused")
    except RuntimeError:
        ours.debug("where it stopped", exc_info=True)
    written = stream.getvalue()
    assert SECRET not in written
    assert written.count("********") == 4 and "Traceback (most recent call last)" in written
    assert f"{PROG}: warning: token ******** in a warning" in written.splitlines()


@pytest.mark.parametrize("size, shown", [
    (0, "0 B"),
    (1, "1 B"),
    (1023, "1023 B"),
    (1024, "1.0 KiB"),
    (1536, "1.5 KiB"),
    (10 * 1024 * 1024 - 1, "10.0 MiB"),
    (3 * 1024 ** 3 + 512 * 1024 ** 2, "3.5 GiB"),
])
def test_sizes_are_shown_in_binary_units_people_read(size, shown):
    assert human_size(size) == shown


@pytest.mark.parametrize("unknown", [None, -1])
def test_an_unknown_size_is_shown_as_nothing(unknown):
    assert human_size(unknown) == ""
