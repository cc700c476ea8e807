"""A chunked file reader for the pickle scanner that hashes every byte of the file once."""

from __future__ import annotations

import hashlib
import os

__all__ = ["CHUNK_SIZE", "MAX_LINE", "HashingReader", "StreamView"]

CHUNK_SIZE = 1 << 20
# Maximum number of bytes that StreamView.readline scans for a newline. The
# module and attribute names of a GLOBAL opcode are far shorter.
MAX_LINE = 4096


class HashingReader:
    """A window `buffer` onto a file, starting at file offset `start`.

    The scanner parses `buffer` directly and calls `load` to move the window
    forward. Bytes are hashed in file order when they first enter the window,
    and bytes that the window skips are read and hashed on the way, so
    `finish` returns the SHA-256 of the whole file, each byte hashed once.

    Args:
        file_descriptor: Descriptor of the file, opened for reading.
        size: File size in bytes; reads stop there.
        hashing: Whether to compute the SHA-256.
        chunk_size: Minimum number of bytes that `load` reads; `CHUNK_SIZE`
            if None.
    """

    def __init__(
        self,
        file_descriptor: int,
        size: int,
        *,
        hashing: bool = True,
        chunk_size: int | None = None,
    ) -> None:
        self.file_descriptor = file_descriptor
        self.size = size
        self.buffer = b""
        self.start = 0
        self._chunk_size = CHUNK_SIZE if chunk_size is None else chunk_size
        self._sha256 = hashlib.sha256() if hashing else None
        self._hashed_end = 0

    @property
    def end(self) -> int:
        """File offset just past the window."""
        return self.start + len(self.buffer)

    def load(self, offset: int, min_size: int = 0) -> bytes:
        """Move the window to start at `offset` and return it.

        The window contains at least `max(min_size, chunk_size)` bytes, or all
        bytes up to the end of the file if fewer remain.
        """
        if offset > self._hashed_end:
            self._hash_range(self._hashed_end, offset)
        data = self._read(offset, min(max(min_size, self._chunk_size), self.size - offset))
        if self._sha256 is not None and offset + len(data) > self._hashed_end:
            self._sha256.update(memoryview(data)[self._hashed_end - offset :])
            self._hashed_end = offset + len(data)
        self.buffer = data
        self.start = offset
        return data

    def scan_limit(self, margin: int) -> int:
        """Return the last window index from which `margin` bytes can be read.

        At the end of the file it is the window's length instead, so a scan
        that stays at or below it needs bounds checks only there.
        """
        if self.end >= self.size:
            return len(self.buffer)
        return len(self.buffer) - margin

    def read_at(self, offset: int, size: int) -> bytes:
        """Return `size` bytes at `offset`, fewer only at the end of the file."""
        if self.start <= offset and offset + size <= self.end:
            return self.buffer[offset - self.start : offset - self.start + size]
        return self.load(offset, size)[:size]

    def finish(self, pickle_end: int) -> tuple[int, str]:
        """Hash the rest of the file; return the number of bytes after `pickle_end` and the hash.

        Raises:
            ValueError: The reader was created without hashing.
        """
        if self._sha256 is None:
            raise ValueError("finish needs a reader created with hashing=True")
        self._hash_range(self._hashed_end, self.size)
        return self.size - pickle_end, self._sha256.hexdigest()

    def _hash_range(self, start: int, end: int) -> None:
        if self._sha256 is None:
            return
        offset = start
        while offset < end:
            data = self._read(offset, min(self._chunk_size, end - offset))
            if not data:
                break
            self._sha256.update(data)
            offset += len(data)
        self._hashed_end = max(self._hashed_end, offset)

    def _read(self, offset: int, size: int) -> bytes:
        if size <= 0:
            return b""
        data = os.pread(self.file_descriptor, size, offset)
        if len(data) == size or not data:
            return data
        # A short read before the end of a regular file is rare but allowed.
        parts = [data]
        done = len(data)
        while done < size:
            more = os.pread(self.file_descriptor, size - done, offset + done)
            if not more:
                break
            parts.append(more)
            done += len(more)
        return b"".join(parts)


class StreamView:
    """A file-like view of a `HashingReader` from `offset`, for `pickletools` argument readers.

    `read` returns nothing when asked for more bytes than the file has left,
    so a corrupt length field is never read into memory and the argument
    reader reports the pickle as truncated.
    """

    def __init__(self, reader: HashingReader, offset: int) -> None:
        self._reader = reader
        self._offset = offset

    def tell(self) -> int:
        return self._offset

    def read(self, size: int = -1, /) -> bytes:
        remaining = self._reader.size - self._offset
        if size < 0:
            size = remaining
        elif size > remaining:
            return b""
        data = self._reader.read_at(self._offset, size)
        self._offset += len(data)
        return data

    def readline(self) -> bytes:
        data = self._reader.read_at(self._offset, MAX_LINE)
        newline = data.find(b"\n")
        if newline >= 0:
            data = data[: newline + 1]
        self._offset += len(data)
        return data
