"""Exceptions for bad input; the CLI maps each kind to an exit status."""

from __future__ import annotations

__all__ = [
    "BinFileError",
    "BinconvError",
    "DatasetError",
    "ImageError",
    "ManifestError",
    "MismatchError",
    "PairListError",
    "ShardChecksumError",
    "ShardError",
    "StorageError",
]


class BinconvError(Exception):
    """Base class for errors caused by input or environment, not by a bug.

    The CLI prints the message without a traceback and exits with `exit_code`.
    """

    exit_code = 2


class BinFileError(BinconvError):
    """A legacy .bin file that cannot be read safely or has the wrong structure."""


class ManifestError(BinconvError):
    """A dataset manifest that is missing, unreadable or inconsistent."""


class DatasetError(BinconvError):
    """A converted dataset whose shards disagree with their manifest."""


class PairListError(BinconvError):
    """A pair list with problems: malformed lines, wrong counts, or missing or invalid images.

    Attributes:
        problems: Every problem found, in the order found, each naming its
            line or image. The message lists them up to a limit.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class ImageError(BinconvError):
    """An image file that cannot be used as it is, found after the up-front checks passed."""


class ShardError(DatasetError):
    """A shard that cannot be read in full or whose bytes disagree with its manifest entry."""


class ShardChecksumError(ShardError):
    """A shard read in full whose size or SHA-256 differs from its manifest entry."""


class StorageError(BinconvError):
    """A location that cannot be reached, read or written with the configured filesystems."""


class MismatchError(BinconvError):
    """A conversion that is not lossless: a pair differs from its source."""

    exit_code = 1
