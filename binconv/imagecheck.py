"""Checking the image files that a pair list names, before any shard is written."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from PIL import Image

from .errors import ImageError
from .format import detect_image_type
from .pairlist import PairEntry
from .problems import ProblemReport

__all__ = ["check_images", "compute_images_sha256", "read_checked_image"]

_MISSING = "missing images"
_UNREADABLE = "unreadable images"
_INVALID = "invalid images"
_KNOWN_TYPES = "JPEG, PNG, BMP, GIF, TIFF or WebP"


class _ImageProblem(Exception):
    """The reason one image file cannot be used, with the report kind it belongs to."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_images(
    root: Path,
    entries: Iterable[PairEntry],
    report: ProblemReport,
    on_image: Callable[[], None] | None = None,
) -> dict[str, bytes]:
    """Read and decode every distinct image that `entries` name, once each.

    An image must be a regular file under `root`, start with the magic bytes
    of a known image type, and decode with Pillow. Each failure goes to
    `report`, naming the first line that uses the image.

    Args:
        root: The image folder that entry paths are relative to.
        entries: Pairs of the list, in list order.
        report: Receives missing, unreadable and invalid images.
        on_image: Called after each image is checked, for progress bars.

    Returns:
        The SHA-256 digest of each valid image, by its path in the list.
    """
    first_line: dict[str, int] = {}
    for entry in entries:
        first_line.setdefault(entry.path1, entry.line)
        first_line.setdefault(entry.path2, entry.line)

    digests = {}
    for path, line in first_line.items():
        try:
            data = _read_valid_image(root / path)
        except _ImageProblem as problem:
            report.add(problem.kind, f"line {line}: {path}: {problem}")
        else:
            digests[path] = hashlib.sha256(data).digest()
        if on_image is not None:
            on_image()
    return digests


def compute_images_sha256(entries: Iterable[PairEntry], digests: dict[str, bytes]) -> str:
    """Return the hex SHA-256 over the digests of img1 and img2 of every pair, in pair order."""
    combined = hashlib.sha256()
    for entry in entries:
        combined.update(digests[entry.path1])
        combined.update(digests[entry.path2])
    return combined.hexdigest()


def read_checked_image(root: Path, path: str, digest: bytes) -> bytes:
    """Read an image that `check_images` accepted, and make sure it has not changed since.

    Raises:
        ImageError: The file can no longer be read, or its bytes differ from
            those that were checked.
    """
    try:
        data = (root / path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{root / path}: cannot be read any more ({exc.strerror})") from None
    if hashlib.sha256(data).digest() != digest:
        raise ImageError(
            f"{root / path}: changed while the dataset was being written; run the command again"
        )
    return data


def _read_valid_image(path: Path) -> bytes:
    data = _read_regular_file(path)
    if not data:
        raise _ImageProblem(_INVALID, "the file is empty")
    image_type = detect_image_type(data)
    if image_type is None:
        raise _ImageProblem(
            _INVALID,
            f"not an image file (first bytes {data[:8].hex()}); expected {_KNOWN_TYPES}",
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        # verify() checks structure only (PNG checksums, for example). With
        # Pillow 13 a truncated JPEG passes it and fails only when decoded.
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as exc:  # Pillow's decoders raise many exception types on corrupt data.
        raise _ImageProblem(_INVALID, f"not a valid {image_type} image ({exc})") from None
    return data


def _read_regular_file(path: Path) -> bytes:
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise _ImageProblem(_MISSING, "not found") from None
    except OSError as exc:
        raise _ImageProblem(_UNREADABLE, f"cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise _ImageProblem(_UNREADABLE, "is a folder, not an image file")
    if not stat.S_ISREG(mode):
        raise _ImageProblem(_UNREADABLE, "is not a regular file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _ImageProblem(_UNREADABLE, f"cannot be read ({exc.strerror})") from None
