"""The local disk: folders made inside the output folder only, digests of files on disk, and disk
errors (full, size limit, not writable) in plain words."""
from __future__ import annotations

import contextlib
import errno
import hashlib
from pathlib import Path

from common import inside
from xnat_download.errors import DiskProblem, XnatError

CHUNK_SIZE = 1024 * 1024

def digest_of(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            md5.update(block)
    return md5.hexdigest()


def describe_disk_error(error: OSError, folder: Path) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full"
    elif error.errno == errno.EFBIG:
        what = "a file-size limit was reached"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "it is not writable"
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

