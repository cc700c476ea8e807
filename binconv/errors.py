"""Exceptions for bad input; the CLI maps each kind to an exit status."""

from __future__ import annotations

__all__ = [
    "BinFileError",
    "BinconvError",
    "DatasetError",
    "ManifestError",
    "MismatchError",
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


class ShardError(DatasetError):
    """A shard that cannot be read in full or whose bytes disagree with its manifest entry."""


class ShardChecksumError(ShardError):
    """A shard read in full whose size or SHA-256 differs from its manifest entry."""


class StorageError(BinconvError):
    """A location that cannot be reached, read or written with the configured filesystems."""


class MismatchError(BinconvError):
    """A conversion that is not lossless: a pair differs from its source."""

    exit_code = 1
