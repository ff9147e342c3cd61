"""Bodies longer than their listing, as a broken server or proxy may send them (see faults.py):
a file's bytes running on in zeros, a zip entry doing the same (stored, or deflated into a bomb),
and a zip that never ends. Each stops at `Faults.flood_bytes`."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

from .catalog import File
from .faults import Faults
from .messages import Reply
from .zipstream import deflated_zip_chunks, endless_zip_chunks, zeros

ZipWriter = Callable[[list], Iterator]


class Flood:
    """A file's bytes followed by zeros, `size` bytes in all, standing in for the file in a zip."""

    def __init__(self, file: File, size: int) -> None:
        self.name, self.file, self.size = file.name, file, max(size, file.size)
        self._crc32: int | None = None

    def chunks(self) -> Iterator[bytes | memoryview]:
        yield from self.file.chunks()
        yield from zeros(self.size - self.file.size)

    @property
    def crc32(self) -> int:
        if self._crc32 is None:
            crc = 0
            for chunk in self.chunks():
                crc = zlib.crc32(chunk, crc)
            self._crc32 = crc
        return self._crc32


def flooded_file(reply: Reply, faults: Faults) -> Reply:
    """A file download whose body runs past the file: with that longer length said (overlong), or
    chunked without a length and without end (endless)."""
    assert reply.file is not None
    endless = faults.take("endless_count")
    if not endless and not faults.take("overlong_count"):
        return reply
    flood = Flood(reply.file, faults.flood_bytes)
    return Reply(content_type=reply.content_type, headers=reply.headers, stream=flood.chunks,
                 stream_length=flood.size, chunked=endless)


def flooded_zip(entries: list[tuple[str, File]], faults: Faults,
                writer: ZipWriter) -> tuple[list, ZipWriter]:
    """The zip's entries and writer, with a flood fault applied if one is due."""
    if faults.take("endless_count"):
        return entries, lambda chosen: endless_zip_chunks(chosen, faults.flood_bytes)
    bomb = faults.take("bomb_count")
    if not bomb and not faults.take("overlong_count"):
        return entries, writer
    flooded = list(entries)
    name, file = flooded[faults.flood_entry]
    flooded[faults.flood_entry] = (name, Flood(file, faults.flood_bytes))
    # Zeros deflate about a thousandfold: a few dozen KiB on the wire, megabytes once inflated.
    return flooded, deflated_zip_chunks if bomb else writer
