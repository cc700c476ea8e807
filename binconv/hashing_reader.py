"""A buffered file reader that computes the file's SHA-256 while a parser reads it."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

__all__ = ["HashingReader"]

_CHUNK_SIZE = 1 << 20
# Longest line that GLOBAL may read; real module and attribute names are far shorter.
_MAX_LINE = 4096


class HashingReader:
    """A sequential reader for `pickletools.genops` that hashes every byte of the file once.

    Args:
        file: The file, opened for binary reading at offset 0.
        size: File size in bytes; a read that asks for more than is left
            returns nothing, so a corrupt length is not read into memory.
    """

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._size = size
        self._sha256 = hashlib.sha256()
        self._buffer = b""
        self._buffer_start = 0
        self._buffer_pos = 0

    def tell(self) -> int:
        return self._buffer_start + self._buffer_pos

    def read(self, size: int = -1, /) -> bytes:
        remaining = self._size - self.tell()
        if size < 0:
            size = remaining
        elif size > remaining:
            # The pickle declares more data than the file has: it is truncated.
            # Returning nothing makes genops report it without reading the rest.
            return b""
        end = self._buffer_pos + size
        if end <= len(self._buffer):
            data = self._buffer[self._buffer_pos : end]
            self._buffer_pos = end
            return data
        parts = [self._buffer[self._buffer_pos :]]
        needed = size - len(parts[0])
        while needed > 0 and self._fill():
            take = min(needed, len(self._buffer))
            parts.append(self._buffer[:take])
            self._buffer_pos = take
            needed -= take
        return b"".join(parts)

    def readline(self) -> bytes:
        parts = []
        length = 0
        while length < _MAX_LINE:
            newline = self._buffer.find(b"\n", self._buffer_pos)
            end = len(self._buffer) if newline < 0 else newline + 1
            parts.append(self._buffer[self._buffer_pos : end])
            length += end - self._buffer_pos
            self._buffer_pos = end
            if newline >= 0 or not self._fill():
                break
        return b"".join(parts)

    def _fill(self) -> bool:
        chunk = self._file.read(_CHUNK_SIZE)
        if not chunk:
            return False
        self._sha256.update(chunk)
        self._buffer_start += len(self._buffer)
        self._buffer = chunk
        self._buffer_pos = 0
        return True

    def finish(self) -> tuple[int, str]:
        """Hash the rest of the file; return the number of bytes after the pickle and the hash."""
        trailing = self._size - self.tell()
        while self._fill():
            pass
        return trailing, self._sha256.hexdigest()
