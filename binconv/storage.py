"""Reading and writing files by path or URL, with atomic writes on local disk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import BinaryIO

import fsspec

__all__ = ["is_remote", "join_url", "open_atomic_write", "open_read"]


def is_remote(url: str) -> bool:
    """Return whether `url` names a remote location (has a scheme other than `file`)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme != "file"


def join_url(base: str, name: str) -> str:
    """Join a folder path or URL and a relative name."""
    if is_remote(base):
        return base.rstrip("/") + "/" + name
    return os.path.join(base, name)


@contextlib.contextmanager
def open_atomic_write(url: str) -> Iterator[BinaryIO]:
    """Open `url` for writing so that readers see either nothing or the whole file.

    On local disk the data goes to a hidden temporary file in the same folder,
    which is flushed, synced and renamed over `url` once the block ends
    without an exception; on an exception it is removed.
    """
    if is_remote(url):
        # NOTE: object stores publish an object only when its upload completes;
        # a failed upload leaves no object behind.
        with fsspec.open(url, "wb") as remote:
            yield remote
        return
    folder, name = os.path.split(url)
    partial = os.path.join(folder, f".{name}.partial")
    try:
        with open(partial, "wb") as local:
            yield local
            local.flush()
            os.fsync(local.fileno())
        os.replace(partial, url)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)


def open_read(url: str) -> BinaryIO:
    """Open a local path or fsspec URL for binary reading."""
    if is_remote(url):
        return fsspec.open(url, "rb").open()
    return open(url, "rb")
