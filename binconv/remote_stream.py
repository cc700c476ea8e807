"""A read-only stream that fetches a file in ranged requests, retries them and checks the bytes."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import fsspec

from .errors import BinconvError
from .retry import call_with_retries
from .storage_options import StorageOptions

__all__ = ["CheckedStream"]


class CheckedStream(io.RawIOBase):
    """Stream `size` bytes of a file and check their count and, if given, their SHA-256.

    Each request fetches at most `options.block_size` bytes starting at the
    current offset, so a transient failure is retried from the start of the
    block it hit, never from the start of the file. The last request reads
    up to one byte past `size`, and the server only returns that byte when
    the file is longer than expected. The checks run when the stream reaches its end. Call
    `read_to_end` when the consumer may stop early, because a tar reader stops
    at the end-of-archive blocks and never reads the padding after them.

    Args:
        fs: Filesystem that holds the file.
        path: The file's path on `fs`.
        name: How errors name the file (`shard s3://bucket/lfw/lfw-000000.tar`).
        size: Expected size in bytes.
        sha256: Expected hex SHA-256, or None to check only the size.
        options: Retry count, waits and block size.
        error: Exception type raised for every failure.
        mismatch_error: Exception type raised when the file is longer than
            `size` or its SHA-256 differs; None uses `error`.
    """

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        path: str,
        name: str,
        size: int,
        *,
        sha256: str | None,
        options: StorageOptions,
        error: type[BinconvError],
        mismatch_error: type[BinconvError] | None = None,
    ) -> None:
        super().__init__()
        self._fs = fs
        self._path = path
        self._name = name
        self._size = size
        self._expected_sha256 = sha256
        self._sha256 = hashlib.sha256() if sha256 is not None else None
        self._options = options
        self._error = error
        self._mismatch_error = mismatch_error or error
        self._offset = 0
        self._block = memoryview(b"")
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes into `buffer`; return 0 once every byte was read and checked."""
        if not self._block:
            if self._offset >= self._size:
                self._check_checksum()
                return 0
            self._block = memoryview(self._fetch_next_block())
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._block))
        target[:count] = self._block[:count]
        self._block = self._block[count:]
        return count

    def read_to_end(self) -> None:
        """Read and drop the remaining bytes, so that the size and checksum get checked.

        Raises:
            BinconvError: Of the stream's error type, when a check fails or a
                read fails after all retries.
        """
        self._block = memoryview(b"")
        while self._offset < self._size:
            self._fetch_next_block()
        self._check_checksum()

    def _fetch_next_block(self) -> bytes:
        start = self._offset
        end = min(start + self._options.block_size, self._size)
        request_end = end + 1 if end == self._size else end
        data = self._fetch(start, request_end)
        self._check_length(start, end, request_end, len(data))
        block = data[: end - start]
        if self._sha256 is not None:
            self._sha256.update(block)
        self._offset = end
        return block

    def _fetch(self, start: int, end: int) -> bytes:
        description = f"reading {self._name} (bytes {start}-{end - 1})"
        try:
            return call_with_retries(
                lambda: self._fs.cat_file(self._path, start=start, end=end),
                description,
                self._options,
                self._error,
            )
        except FileNotFoundError:
            raise self._error(f"{self._name} not found") from None
        except BinconvError:
            raise
        except Exception as exc:
            if _is_range_not_satisfiable(exc):
                raise self._error(
                    f"{self._name} is truncated: it has at most {start} bytes, "
                    f"but should have {self._size}"
                ) from exc
            raise self._error(f"{description} failed: {type(exc).__name__}: {exc}") from exc

    def _check_length(self, start: int, end: int, request_end: int, received: int) -> None:
        requested = request_end - start
        if received < end - start:
            raise self._error(
                f"{self._name} is truncated: it has {start + received} bytes, "
                f"but should have {self._size}"
            )
        if received > requested:
            raise self._error(
                f"{self._name}: the server ignored the Range header (sent {received} bytes "
                f"for a request of {requested}); binconv streams files in ranged requests"
            )
        if received == requested and request_end > end:
            raise self._mismatch_error(
                f"{self._name} is longer than the {self._size} bytes expected; "
                "it was changed after its manifest was written"
            )

    def _check_checksum(self) -> None:
        if self._checked or self._sha256 is None:
            return
        actual = self._sha256.hexdigest()
        if actual != self._expected_sha256:
            raise self._mismatch_error(
                f"{self._name} has sha256 {actual}, but the manifest records "
                f"{self._expected_sha256}; the file is corrupt or was changed after "
                "conversion, so copy or convert it again"
            )
        self._checked = True


def _is_range_not_satisfiable(exc: BaseException) -> bool:
    # HTTP 416: aiohttp carries it as `status`; s3fs turns S3's InvalidRange
    # into an OSError whose cause is the botocore error.
    current: BaseException | None = exc
    while current is not None:
        if getattr(current, "status", None) == 416:
            return True
        response = getattr(current, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code") == "InvalidRange":
            return True
        current = current.__cause__
    return False
