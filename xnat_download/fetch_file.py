"""One file by one request: streamed to `<name>.part`, continued from a leftover .part where the
server allows it, retried with backoff, and renamed only once its size and MD5 match the listing.
A body that runs past the listed size is abandoned there: no server can fill the disk."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import requests

from xnat_download.catalog import RemoteFile
from xnat_download.connection import OffServer, XnatClient, describe_network_error, error_text
from xnat_download.disk import CHUNK_SIZE, PartFile, PastLimit, remove_quietly
from xnat_download.errors import Interrupted
from xnat_download.manifest import Manifest
from xnat_download.meter import BodyClock
from xnat_download.output import Progress
from xnat_download.plan import PlannedFile
from xnat_download.retry import requested_wait, retried

# Never image/*: XNAT would convert DICOM to a snapshot.
ACCEPT_ANY = {"Accept": "*/*"}
# A file whose listing gives no size may not grow without end either. 4 GiB, the most a zip entry
# holds without zip64, is far beyond any DICOM file yet still stops a body that never ends.
UNLISTED_SIZE_CAP = 4 * 1024 ** 3


@dataclass
class FetchContext:
    """What every fetch of a run shares: the connection, the stop flag and the progress bar."""
    client: XnatClient
    cancel: threading.Event
    progress: Progress   # the bar (disabled when nobody watches)


class FileFailed(Exception):
    """This file could not be fetched; the others go on."""


class Overflow(FileFailed):
    """The server sent more than it listed for this file: abandoned at the listed size and not
    retried, since a server whose catalog and bytes disagree will send the same again."""


def size_cap(remote: RemoteFile) -> int:
    """The most bytes this file may have: its listed size, or UNLISTED_SIZE_CAP without one."""
    return remote.size if remote.size >= 0 else UNLISTED_SIZE_CAP


def overflow(remote: RemoteFile, where: str = "") -> Overflow:
    listed = (f"the {remote.size} bytes it listed" if remote.size >= 0 else
              f"{UNLISTED_SIZE_CAP} bytes, the cap for a file listed without a size")
    return Overflow(f"the server sent more than {listed}{where}; abandoned there")


class Retry(Exception):
    """This attempt failed in a way the next one may not: wait, then try again."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def mismatch(remote: RemoteFile, size: int, md5: str) -> str:
    """Why these bytes are not the listed file, or "" when they are."""
    if remote.size >= 0 and size != remote.size:
        return f"got {size} bytes where the listing says {remote.size}"
    if remote.md5 and md5 != remote.md5:
        return "the MD5 digest did not match the server's"
    return ""


def keep(part: PartFile, planned: PlannedFile, manifest: Manifest) -> int:
    """Give a verified .part its final name and record it; returns its size."""
    try:
        mtime_ns = part.take_final_name()
    except OSError as error:   # a folder, say, stands where the file belongs
        raise FileFailed(f"could not take its name: {error.strerror}") from None
    manifest.add(planned.relative, part.size, part.md5.hexdigest(), mtime_ns)
    return part.size


def check_status(context: FetchContext, response: requests.Response) -> None:
    """Retry where the rule says another attempt may help (respecting Retry-After); FileFailed on
    answers no retry will change."""
    status = response.status_code
    if retried(status):
        raise Retry(f"{context.client.host} answered {status}", requested_wait(response))
    if status in (403, 404):
        raise FileFailed(f"the server answered {status}: the file it listed is not there "
                         f"or not accessible")
    raise FileFailed(f"the server answered {status} {error_text(response)}")


def fetch_file(context: FetchContext, planned: PlannedFile, manifest: Manifest) -> int:
    """One file, retried; renamed to its final name only once its size and digest match.
    Returns its size; FileFailed if it could not be had."""
    client = context.client
    attempts = client.retry_rule.attempts(what=planned.relative, cancel=context.cancel)
    for _ in attempts:
        counted = [0]   # bytes this attempt added to the progress bar
        try:
            part = _fetch_once(context, planned, counted)
        except Overflow:
            context.progress.update(-counted[0])
            raise
        except OffServer as refusal:   # it would be sent away again
            raise FileFailed(f"the server sent the request for it on to another server "
                             f"({refusal.where}); not followed: files come from the server only") from None
        except Retry as retry:
            attempts.failed(str(retry), retry.retry_after)
        except requests.RequestException as error:
            attempts.failed(describe_network_error(client.host, error))
        else:
            problem = mismatch(planned.remote, part.size, part.md5.hexdigest())
            if not problem:
                return keep(part, planned, manifest)
            part.discard()   # wrong bytes: the next attempt starts over
            attempts.failed(problem)
        context.progress.update(-counted[0])
    raise FileFailed(attempts.exhausted())


def _fetch_once(context: FetchContext, planned: PlannedFile, counted: list[int]) -> PartFile:
    """Stream the file into its .part, continuing a leftover .part when the server allows it."""
    remote, target = planned.remote, planned.target
    partial = target.with_name(target.name + ".part")
    try:
        offset = partial.stat().st_size
    except FileNotFoundError:
        offset = 0
    # Continue a leftover only where the digest will vouch for the whole file; complete or
    # overlong leftovers cannot be trusted either.
    if offset and (not remote.md5 or (remote.size >= 0 and offset >= remote.size)):
        remove_quietly(partial)
        offset = 0
    headers = dict(ACCEPT_ANY)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = context.client.request(remote.url, headers=headers, stream=True)
    with response:
        status = response.status_code
        if status == 416:
            remove_quietly(partial)
            raise Retry("the server refused to continue a partial file")
        if status not in (200, 206) or (status == 206 and not offset):
            check_status(context, response)
        # 200: the server sent it whole, so the .part starts over.
        part = PartFile(target, context.cancel, size_cap(remote), append=status == 206)
        clock = BodyClock(context.client.meter)
        try:
            for chunk in response.iter_content(CHUNK_SIZE):
                if context.cancel.is_set():
                    raise Interrupted()
                part.write(chunk)
                clock.arrived(len(chunk))
                counted[0] += len(chunk)
                context.progress.update(len(chunk))
            clock.ended()
        except PastLimit:
            # The .part stays, cut at the listed size, for a look at what came; the next run
            # starts it over (a leftover as long as the listing is never continued).
            raise overflow(remote) from None
        finally:
            part.close()
    return part
