"""A scan's resource as one zip stream, unpacked as it arrives (stream-unzip) and never stored:
each entry the listing names goes to `<name>.part`, is checked against the listing's size and MD5
(the zip's CRC only proves the bytes are what the server read, not what its catalog says) and
is renamed, exactly like a file fetched alone.

Nothing a server sends can fill the disk: an entry is abandoned at its listed size, the stream
at what the listing's files and their zip headers can take up."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator
from urllib.parse import quote

import requests
import urllib3

from xnat_download.connection import OffServer, describe_network_error
from xnat_download.disk import CHUNK_SIZE, PartFile, PastLimit
from xnat_download.errors import Interrupted
from xnat_download.fetch_file import (ACCEPT_ANY, FetchContext, FileFailed, Retry, check_status, keep,
                                      mismatch, overflow, size_cap)
from xnat_download.manifest import Manifest
from xnat_download.meter import BodyClock
from xnat_download.plan import PlannedFile, ScanPlan

log = logging.getLogger("xnat_download")

# {session}/scans/{scan}-{type}/resources/{R}/files/{name}: the name is what follows /files/.
ENTRY_NAME = re.compile(r"/resources/[^/]+/files/(.+)$")
# What a zip adds to a file, at most: a local header, a data descriptor and a central directory
# record, with zip64 and timestamp extras (about 250 bytes), each with the entry's name twice (the
# file's name, and a prefix of session label, scan and resource that 1.5 KiB covers). Deflate can
# also grow incompressible bytes, by a few in a thousand.
ENTRY_OVERHEAD = 2048
# The end records, and the longest comment a zip may carry.
END_OVERHEAD = 66 * 1024
# A stream that breaks before its first file lands is tried once more, then its files go one by one.
BROKEN_STREAMS = 2


@dataclass
class ZipOutcome:
    """What a zip of a scan delivered, and what it leaves to do."""
    landed: list[tuple[PlannedFile, int]] = field(default_factory=list)   # with their sizes
    left: list[PlannedFile] = field(default_factory=list)      # not reached, or not in the zip
    singly: list[PlannedFile] = field(default_factory=list)    # came with the wrong MD5: fetch alone
    failed: list[tuple[PlannedFile, FileFailed]] = field(default_factory=list)   # no retry helps
    problem: str = ""   # why the zip stopped short; "" if it was read to its end
    cut: bool = False   # it stopped short in a way a new zip may not (network, a damaged stream)
    abandoned: str = ""   # why the zip was given up: the server sent more than the listing holds
    attempts: int = 0
    broken: int = 0     # streams that started (200) and broke before a file landed
    streaming: bool = False   # this attempt got its 200


class ZipDamaged(Exception):
    """The stream ended early or does not parse as a zip."""


class ZipAbandoned(Exception):
    """The server sent more than the listing holds: the rest of the stream is not read. `whole`:
    it was the zip's fault (said once for the scan), not one listed entry's (said for its file)."""

    def __init__(self, message: str, whole: bool) -> None:
        super().__init__(message)
        self.whole = whole


def zip_allowance(plan: ScanPlan) -> int:
    """The most bytes a zip of the scan's resource can take: its listed files and their headers."""
    return END_OVERHEAD + sum(size_cap(f) + size_cap(f) // 256 + ENTRY_OVERHEAD + 2 * len(f.path.encode())
                              for f in plan.listed)


def zip_path(plan: ScanPlan) -> str:
    source = plan.source
    return (f"/data/experiments/{quote(source['session_id'], safe='')}/scans/"
            f"{quote(plan.scan.id, safe='')}/resources/{quote(source['resource'], safe='')}/files")


def entry_name(name: bytes) -> str | None:
    """The resource-relative name of a zip entry, or None for an entry of another layout."""
    text = name.decode("utf-8", "surrogateescape")
    match = ENTRY_NAME.search(text)
    return match.group(1) if match else None


def fetch_zip(context: FetchContext, plan: ScanPlan, files: list[PlannedFile], manifest: Manifest,
              attempts_left: int) -> ZipOutcome:
    """Fetch `files` of the scan through one zip of its resource, retrying a zip that fails before
    its first entry lands (5xx, 429, a refused connection) while `attempts_left` allows."""
    client = context.client
    outcome = ZipOutcome()
    wanted = {planned.remote.path: planned for planned in files}
    attempts = client.retry_rule.attempts(what=f"the zip of scan {plan.scan.id}", cancel=context.cancel,
                                          limit=attempts_left)
    for _ in attempts:
        outcome.streaming = False
        landed_before = len(outcome.landed)
        outcome.cut = True
        try:
            _read_zip(context, plan, wanted, manifest, outcome)
            outcome.problem, outcome.cut = "", False
            break
        except Retry as retry:
            attempts.failed(str(retry), retry.retry_after)
        except FileFailed as failure:   # 403, 404 or another answer no retry changes
            outcome.problem, outcome.cut = str(failure), False
            break
        except OffServer as refusal:   # its files may still come from the server one by one
            outcome.problem, outcome.cut = str(refusal), False
            break
        except ZipAbandoned as abandoned:   # a server that sends more would do so again
            outcome.problem, outcome.cut = str(abandoned), False
            outcome.abandoned = str(abandoned) if abandoned.whole else ""
            break
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            attempts.failed(describe_network_error(client.host, error))
        except ZipDamaged as damage:
            attempts.failed(str(damage))
        outcome.problem = attempts.problem
        log.debug("the zip of scan %s stopped: %s", plan.scan.id, outcome.problem)
        # A zip that delivered something is not repeated: what is left goes the cheaper way.
        if len(outcome.landed) > landed_before:
            break
        # Nor is a stream that keeps breaking before its first file: one by one, each file is
        # retried on its own and no whole zip is read again and again.
        if outcome.streaming:
            outcome.broken += 1
            if outcome.broken >= BROKEN_STREAMS:
                outcome.cut = False
                break
    outcome.attempts = attempts.made
    outcome.left.extend(wanted.values())
    return outcome


def _read_zip(context: FetchContext, plan: ScanPlan, wanted: dict[str, PlannedFile], manifest: Manifest,
              outcome: ZipOutcome) -> None:
    response = context.client.request(zip_path(plan), params={"format": "zip"}, headers=ACCEPT_ANY,
                                       stream=True)
    # Imported only once a zip is on its way (with its AES support it costs a tenth of a
    # second): a run that fetches file by file, or only lists, never pays it.
    import stream_unzip

    with response:
        if response.status_code != 200:
            check_status(context, response)
        outcome.streaming = True
        allowance = zip_allowance(plan)
        try:
            _unpack(context, stream_unzip.stream_unzip(_arriving(context, response, allowance)),
                    wanted, {f.path: size_cap(f) for f in plan.listed}, allowance, manifest, outcome)
        except stream_unzip.UnzipError as error:
            raise ZipDamaged(f"the zip stream was cut short or damaged "
                             f"({type(error).__name__})") from None


def _unpack(context: FetchContext, entries: Iterable, wanted: dict[str, PlannedFile], caps: dict[str, int],
            allowance: int, manifest: Manifest, outcome: ZipOutcome) -> None:
    """Write each entry the listing names to its .part, verify it, and give it its name; entries
    not wanted are read past, each no further than its listed size allows."""
    unlisted_room = allowance   # what entries the listing does not name may inflate to, together
    for name, _size, chunks in entries:
        relative = entry_name(name) or ""
        planned = wanted.get(relative)
        if planned is None:   # present already, refused, met twice, or not in the listing
            limit = caps.get(relative, unlisted_room)
            read = _read_past(chunks, limit, name)
            if relative not in caps:
                unlisted_room -= read
            continue
        part = PartFile(planned.target, context.cancel, size_cap(planned.remote))
        shown = 0
        try:
            for chunk in chunks:
                part.write(chunk)
                shown += len(chunk)
                context.progress.update(len(chunk))
        except PastLimit:
            # Cut at its listed size (the .part stays for a look; it is started over next time).
            # The rest of a bomb is never inflated: the stream is given up here.
            part.close()
            context.progress.update(-shown)
            del wanted[planned.remote.path]
            failure = overflow(planned.remote, " in the zip of its scan")
            outcome.failed.append((planned, failure))
            raise ZipAbandoned(str(failure), whole=False) from None
        except BaseException:
            part.discard()
            raise
        part.close()
        del wanted[planned.remote.path]
        problem = mismatch(planned.remote, part.size, part.md5.hexdigest())
        if problem:
            # Its bytes in the zip are not the catalog's: fetched again on its own.
            log.debug("zip entry %s: %s", planned.relative, problem)
            part.discard()
            context.progress.update(-part.size)
            outcome.singly.append(planned)
            continue
        try:
            outcome.landed.append((planned, keep(part, planned, manifest)))
            context.progress.file_landed()
        except FileFailed as failure:
            outcome.failed.append((planned, failure))


def _read_past(chunks: Iterable[bytes], limit: int, name: bytes) -> int:
    """Inflate an entry that is not wanted, to find the next one; ZipAbandoned past `limit`."""
    read = 0
    for chunk in chunks:
        read += len(chunk)
        if read > limit:
            shown = (entry_name(name) or name.decode("utf-8", "replace"))[:200]
            raise ZipAbandoned(f"the server sent more than the listing holds (the zip's entry "
                               f"{shown!r} ran past {limit} bytes); the zip was abandoned there",
                               whole=True)
    return read


def _arriving(context: FetchContext, response: requests.Response, allowance: int) -> Iterator[bytes]:
    """The body as it arrives, not in blocks held back until full: a slow link still shows each
    entry as soon as it is complete, and a stop is seen between chunks. ZipAbandoned once it runs
    past `allowance` bytes."""
    raw = response.raw
    if raw.chunked and raw.supports_chunked_reads():
        pieces: Iterable[bytes] = raw.read_chunked(CHUNK_SIZE, decode_content=True)
    else:
        pieces = iter(lambda: raw.read1(CHUNK_SIZE), b"")
    received = 0
    clock = BodyClock(context.client.meter)
    for piece in pieces:
        if context.cancel.is_set():
            raise Interrupted()
        received += len(piece)
        clock.arrived(len(piece))
        if received > allowance:
            # What fits goes on first, so that an entry running past its own size is named.
            yield piece[:len(piece) - (received - allowance)]
            raise ZipAbandoned(f"the server sent more than the listing holds (the zip ran past "
                               f"{allowance} bytes, what its files and zip headers can take up); "
                               f"the zip was abandoned there", whole=True)
        yield piece
    clock.ended()
