"""The local disk: a file is written as <name>.part and takes its final name only when asked,
never holds more than its limit, and a disk that refuses a write (full, a size limit, not
writable) becomes one plain sentence, stops the other workers and leaves nothing partial behind.
Folders are made inside the output folder only; small JSON files are replaced whole."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from xnat_download.disk import (PartFile, PastLimit, describe_disk_error, digest_of, make_folder,
                                write_json)
from xnat_download.errors import DiskProblem, XnatError

REPO = Path(__file__).resolve().parent.parent
AFTERWARDS = "nothing partial was left under a final name, and running the same command again resumes"


# --- what a disk error says --------------------------------------------------------------------

@pytest.mark.parametrize("number, what", [
    (errno.ENOSPC, "the disk is full"),
    (errno.EDQUOT, "the disk is full"),              # a quota is a full disk to the user
    (errno.EFBIG, "a file-size limit was reached"),  # ulimit -f, or a file system's own limit
    (errno.EIO, "Input/output error"),               # anything else: the system's own words
])
def test_a_disk_error_is_one_sentence_saying_what_happened_and_that_a_rerun_resumes(number, what):
    error = OSError(number, os.strerror(number))
    assert describe_disk_error(error, Path("out/session-1")) == (
        f"could not write into out/session-1: {what}; {AFTERWARDS}")


@pytest.mark.parametrize("number", [errno.EACCES, errno.EPERM, errno.EROFS])
def test_an_unwritable_folder_is_named_with_the_way_out_and_no_promise_of_resume(number):
    # Running again cannot resume into a folder that stays unwritable: the way out is named instead.
    error = OSError(number, os.strerror(number))
    assert describe_disk_error(error, Path("out/session-1")) == (
        "could not write into out/session-1: it is not writable; nothing partial was left under a "
        "final name: make it writable, or choose another folder with --output-dir")


def test_a_full_disk_mid_file_stops_the_workers_and_leaves_no_part_file(tmp_path):
    # A real refusal by the system: a file-size limit (as `ulimit -f` sets) in a process of its own.
    program = textwrap.dedent("""
        import resource, signal, sys, threading
        from pathlib import Path
        from xnat_download.disk import PartFile
        from xnat_download.errors import DiskProblem
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
        target, cancel = Path(sys.argv[1]), threading.Event()
        part = PartFile(target, cancel, limit=10 * 1024 * 1024)
        try:
            for _ in range(8):
                part.write(b"x" * 32 * 1024)
            part.close()
        except DiskProblem as problem:
            print(problem)
            print(cancel.is_set(), part.path.exists(), target.exists())
    """)
    target = tmp_path / "scan-1_T1" / "1.dcm"
    target.parent.mkdir()
    result = subprocess.run([sys.executable, "-c", program, str(target)], cwd=REPO, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"could not write into {target.parent}: a file-size limit was reached; {AFTERWARDS}",
        "True False False"]   # the other workers are told to stop; no .part, no final file


# --- a file being written ----------------------------------------------------------------------

def test_a_file_is_written_beside_its_final_name_and_takes_it_only_when_asked(tmp_path):
    target = tmp_path / "1.dcm"
    part = PartFile(target, threading.Event(), limit=100)
    part.write(b"DICM")
    part.write(b" body")
    part.close()
    assert not target.exists() and part.path == tmp_path / "1.dcm.part"
    assert (part.size, part.md5.hexdigest()) == (9, hashlib.md5(b"DICM body").hexdigest())
    part.take_final_name()
    assert target.read_bytes() == b"DICM body" and not part.path.exists()


def test_a_file_never_holds_more_than_its_limit(tmp_path):
    part = PartFile(tmp_path / "1.dcm", threading.Event(), limit=10)
    part.write(b"0123456")
    with pytest.raises(PastLimit):
        part.write(b"789abcdef")   # a server that sends more than its listing said
    part.close()
    assert part.path.read_bytes() == b"0123456789" and part.size == 10


def test_a_leftover_part_file_is_continued_and_counted_whole(tmp_path):
    target = tmp_path / "1.dcm"
    target.with_name("1.dcm.part").write_bytes(b"first half, ")
    part = PartFile(target, threading.Event(), limit=100, append=True)
    part.write(b"second half")
    part.close()
    assert part.size == len(b"first half, second half")
    assert part.md5.hexdigest() == hashlib.md5(b"first half, second half").hexdigest()


def test_a_discarded_file_leaves_nothing(tmp_path):
    part = PartFile(tmp_path / "1.dcm", threading.Event(), limit=100)
    part.write(b"wrong bytes")
    part.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_part_file_that_cannot_be_opened_is_a_disk_problem_and_stops_the_workers(tmp_path):
    cancel = threading.Event()
    (tmp_path / "1.dcm.part").mkdir()   # something in the way that no one can open as a file
    with pytest.raises(DiskProblem, match=f"could not write into {tmp_path}: "):
        PartFile(tmp_path / "1.dcm", cancel, limit=100)
    assert cancel.is_set()


def test_the_digest_of_a_file_on_disk_is_its_md5_however_large(tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 123)   # more than one block
    (tmp_path / "big.dcm").write_bytes(data)
    assert digest_of(tmp_path / "big.dcm") == hashlib.md5(data).hexdigest()


# --- folders and small JSON files --------------------------------------------------------------

def test_folders_are_made_inside_the_output_folder_only(tmp_path):
    output = tmp_path / "downloaded_data"
    make_folder(output / "session-1" / "scan-1_T1", output)
    assert (output / "session-1" / "scan-1_T1").is_dir()
    with pytest.raises(XnatError, match="refused to write to .*: it is outside"):
        make_folder(output / ".." / "elsewhere", output)
    assert not (tmp_path / "elsewhere").exists()


def test_a_file_where_a_folder_must_go_is_a_clear_error(tmp_path):
    output = tmp_path / "downloaded_data"
    output.mkdir()
    (output / "session-1").write_text("not a folder")
    with pytest.raises(XnatError) as raised:
        make_folder(output / "session-1" / "scan-1_T1", output)
    assert str(raised.value) == (f"{output / 'session-1' / 'scan-1_T1'} (or a folder above it) exists "
                                 f"and is a file, not a folder; move it or choose another folder with "
                                 f"--output-dir")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_that_cannot_be_made_is_a_disk_problem(tmp_path):
    output = tmp_path / "downloaded_data"
    output.mkdir()
    output.chmod(0o555)
    try:
        with pytest.raises(DiskProblem, match=f"could not write into {output / 'session-1'}: it is not writable"):
            make_folder(output / "session-1", output)
    finally:
        output.chmod(0o755)


def test_a_json_file_is_replaced_whole_and_leaves_no_part_file(tmp_path):
    path = tmp_path / ".xnat-manifest.json"
    write_json(path, {"files": {"a.dcm": 1}})
    write_json(path, {"files": {"b.dcm": 2}}, indent=1)
    assert json.loads(path.read_text()) == {"files": {"b.dcm": 2}}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".xnat-manifest.json"]


def test_a_json_file_that_cannot_be_written_raises_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "taken"
    path.mkdir()   # its name is a folder: the replace fails
    with pytest.raises(OSError):
        write_json(path, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and list(path.iterdir()) == []
