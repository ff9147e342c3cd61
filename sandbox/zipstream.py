"""A stored (uncompressed) zip written as a stream, the way XNAT sends `?format=zip`.

Sizes and CRCs are known before an entry starts (the catalog caches them), so every local header
is complete and the whole archive's length is known in advance; that lets the faults cut a zip
at half its length just like a file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from .catalog import File

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_END_RECORD = struct.Struct("<IHHHHIIH")
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
