"""The local disk: folders made inside the output folder only, digests of files on disk, and disk
errors (full, size limit, not writable) in plain words."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from pathlib import Path

from xnat_download.errors import DiskProblem, XnatError
from xnat_download.names import inside

CHUNK_SIZE = 1024 * 1024

def digest_of(path: Path) -> str:
    md5 = hashlib.md5()
    read_into(md5, path)
    return md5.hexdigest()


def read_into(md5, path: Path) -> int:
    """Feed a file on disk to a digest, a block at a time; returns its size."""
    size = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            md5.update(block)
            size += len(block)
    return size


def write_json(path: Path, data: object, **dump_options) -> None:
    """Replace a small JSON file whole: written beside it first, so a cut never leaves half of it.
    OSError (a full disk) if it cannot be, with nothing left behind."""
    temporary = path.with_name(path.name + ".part")
    try:
        temporary.write_text(json.dumps(data, **dump_options), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        remove_quietly(temporary)
        raise


def describe_disk_error(error: OSError, folder: Path) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
    elif error.errno == errno.EFBIG:
        what = "a file-size limit was reached"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        # Nothing can resume where nothing can be written: say what to change instead.
        return (f"could not write into {folder}: it is not writable; nothing partial was left "
                f"under a final name: make it writable, or choose another folder with --output-dir")
    else:
        what = error.strerror or str(error)
    return (f"could not write into {folder}: {what}; nothing partial was left under a final "
            f"name, and running the same command again resumes")


def make_folder(folder: Path, output_dir: Path) -> None:
    if not inside(output_dir, folder):
        raise XnatError(f"refused to write to {folder}: it is outside {output_dir}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise XnatError(f"{folder} (or a folder above it) exists and is a file, not a folder; "
                        f"move it or choose another folder with --output-dir") from None
    except OSError as error:
        raise DiskProblem(describe_disk_error(error, folder)) from None


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()



class PastLimit(Exception):
    """More bytes came than a .part may hold: it holds its limit, not a byte more."""


class PartFile:
    """A file being written as `<name>.part` beside its final name, its MD5 and size kept as it
    grows, never past `limit` bytes (PastLimit instead). Any local write error stops every worker
    (through `cancel`: a full disk or a missing permission will not heal by retrying), removes the
    .part and becomes a DiskProblem."""

    def __init__(self, target: Path, cancel, limit: int, append: bool = False) -> None:
        self.target = target
        self.path = target.with_name(target.name + ".part")
        self.cancel = cancel
        self.limit = limit
        self.md5 = hashlib.md5()
        self.size = 0
        mode = "wb"
        if append:   # continue a leftover: what it holds counts towards the digest
            self.size = read_into(self.md5, self.path)
            mode = "ab"
        try:
            self.handle = open(self.path, mode)
        except OSError as error:
            raise self.disk_problem(error) from None

    def write(self, chunk: bytes) -> None:
        """Append a chunk; PastLimit, with the .part filled to its limit, if it does not fit."""
        room = self.limit - self.size
        if len(chunk) > room:
            if room > 0:
                self.write(chunk[:room])
            raise PastLimit()
        try:
            self.handle.write(chunk)
        except OSError as error:
            raise self.disk_problem(error) from None
        self.md5.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError as error:  # a full disk can surface only when the buffer is flushed
            raise self.disk_problem(error) from None

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        remove_quietly(self.path)

    def disk_problem(self, error: OSError) -> DiskProblem:
        self.cancel.set()
        with contextlib.suppress(OSError, AttributeError):
            self.handle.close()
        remove_quietly(self.path)
        return DiskProblem(describe_disk_error(error, self.path.parent))

    def take_final_name(self) -> int:
        """Rename the closed, verified .part to its final name; returns its mtime in ns.
        OSError if the name is taken by something that cannot be replaced (a folder, say)."""
        mtime_ns = self.path.stat().st_mtime_ns
        try:
            os.replace(self.path, self.target)
        except OSError:
            remove_quietly(self.path)
            raise
        return mtime_ns
