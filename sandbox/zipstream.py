"""A zip written as a stream, the way XNAT sends `?format=zip` (Java's ZipOutputStream).

Stored (the default): sizes and CRCs are known before an entry starts (the catalog caches them),
so every local header is complete and the whole archive's length is known in advance; that lets
the faults cut a zip at half its length just like a file. Deflated (a site setting): the local
header holds zeros and a data descriptor follows each entry's data, as Java writes it.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator

from .catalog import CHUNK_SIZE, File

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_END_RECORD = struct.Struct("<IHHHHIIH")
_DATA_DESCRIPTOR = struct.Struct("<IIII")
_HAS_DESCRIPTOR = 0x0008
_UTF8_NAMES = 0x0800
_DOS_TIME = (10 << 11) | (15 << 5)  # 10:15:00
_DOS_DATE = ((2024 - 1980) << 9) | (1 << 5) | 15  # 2024-01-15
_LIMIT = 0xFFFFFFFF  # beyond this a zip needs zip64, which this writer does not do


def _local_header(name: bytes, file: File) -> bytes:
    return _LOCAL_HEADER.pack(0x04034B50, 20, _UTF8_NAMES, 0, _DOS_TIME, _DOS_DATE,
                              file.crc32, file.size, file.size, len(name), 0) + name


def zip_length(entries: list[tuple[str, File]]) -> int:
    """The exact number of bytes `zip_chunks` will produce; ValueError if zip64 would be needed."""
    if sum(file.size for _, file in entries) >= _LIMIT or len(entries) >= 0xFFFF:
        raise ValueError("archive too large for a zip without zip64")
    total = _END_RECORD.size
    for name, file in entries:
        encoded_length = len(name.encode())
        total += _LOCAL_HEADER.size + encoded_length + file.size
        total += _CENTRAL_HEADER.size + encoded_length
    return total


def zip_chunks(entries: list[tuple[str, File]]) -> Iterator[bytes | memoryview]:
    """The archive, piece by piece: headers as small bytes, file contents as large chunks."""
    central_directory: list[bytes] = []
    offset = 0
    for name, file in entries:
        encoded = name.encode()
        header = _local_header(encoded, file)
        central_directory.append(
            _CENTRAL_HEADER.pack(0x02014B50, 20, 20, _UTF8_NAMES, 0, _DOS_TIME, _DOS_DATE, file.crc32,
                                 file.size, file.size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
        yield header
        yield from file.chunks()
        offset += len(header) + file.size
    directory = b"".join(central_directory)
    yield directory + _END_RECORD.pack(0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)


def deflated_zip_chunks(entries: list[tuple[str, File]]) -> Iterator[bytes]:
    """The archive with deflated entries, each followed by a data descriptor (flag bit 3)."""
    central_directory: list[bytes] = []
    offset = 0
    flags = _UTF8_NAMES | _HAS_DESCRIPTOR
    for name, file in entries:
        encoded = name.encode()
        header = _LOCAL_HEADER.pack(0x04034B50, 20, flags, 8, _DOS_TIME, _DOS_DATE, 0, 0, 0,
                                    len(encoded), 0) + encoded
        yield header
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        crc, compressed = 0, 0
        for chunk in file.chunks():
            crc = zlib.crc32(chunk, crc)
            out = compressor.compress(chunk)
            compressed += len(out)
            if out:
                yield out
        out = compressor.flush()
        compressed += len(out)
        descriptor = _DATA_DESCRIPTOR.pack(0x08074B50, crc, compressed, file.size)
        yield out + descriptor
        central_directory.append(
            _CENTRAL_HEADER.pack(0x02014B50, 20, 20, flags, 8, _DOS_TIME, _DOS_DATE, crc,
                                 compressed, file.size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
        offset += len(header) + compressed + len(descriptor)
    directory = b"".join(central_directory)
    yield directory + _END_RECORD.pack(0x06054B50, 0, 0, len(entries), len(entries), len(directory), offset, 0)


def endless_zip_chunks(entries: list[tuple[str, File]], flood_bytes: int) -> Iterator[bytes | memoryview]:
    """A zip led by a stored entry the listing does not name, whose header promises almost 4 GiB
    and whose zeros never end (here they stop after `flood_bytes`, and so does the stream)."""
    folder = entries[0][0].rpartition("/files/")[0] if entries else "endless"
    name = f"{folder}/files/endless.bin".encode()
    yield _LOCAL_HEADER.pack(0x04034B50, 20, _UTF8_NAMES, 0, _DOS_TIME, _DOS_DATE, 0, _LIMIT - 1,
                             _LIMIT - 1, len(name), 0) + name
    yield from zeros(flood_bytes)


def zeros(count: int) -> Iterator[memoryview]:
    block = memoryview(bytes(CHUNK_SIZE))
    for start in range(0, count, CHUNK_SIZE):
        yield block[:min(CHUNK_SIZE, count - start)]


def corrupted_copy(file: File) -> File:
    """The file with its first byte flipped: same name and size, a different MD5 and CRC."""
    altered = bytearray(b"".join(bytes(chunk) for chunk in file.chunks()))
    if altered:
        altered[0] ^= 0xFF
    return File.from_bytes(file.name, bytes(altered))


def zip_folder_type(scan_type: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", scan_type)
