"""Proof that a converted dataset contains exactly the pairs of its `.bin` file."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from .binfile import iter_bin_pairs, read_bin_index
from .dataset_reader import DatasetLocation, iter_shard_pairs, locate_dataset
from .errors import DatasetError, MismatchError, ShardChecksumError
from .manifest import ShardInfo
from .shardwriter import Pair
from .storage import open_read

__all__ = ["VerifyResult", "verify_conversion"]

logger = logging.getLogger(__name__)

_CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class VerifyResult:
    """A successful verification.

    Attributes:
        bin_path: The `.bin` file.
        dataset_dir: Folder path or URL of the dataset.
        num_pairs: Number of pairs compared.
        num_shards: Number of shards whose size and SHA-256 match the manifest.
        same_source: True if the manifest records this `.bin` file's SHA-256;
            false means equal pairs came from a differently written file.
    """

    bin_path: Path
    dataset_dir: str
    num_pairs: int
    num_shards: int
    same_source: bool


def verify_conversion(bin_path: Path, dataset: str) -> VerifyResult:
    """Check that `dataset` contains the pairs of `bin_path` in order, byte for byte.

    Every pair is compared (both images' bytes and issame), then every
    shard's size and SHA-256 are checked against the manifest.

    Args:
        bin_path: The legacy `.bin` file.
        dataset: The converted dataset's folder, manifest path or URL.

    Raises:
        MismatchError: A pair, the pair count, the manifest's same-person
            count or a shard checksum differs. The message names the first
            pair or shard that differs.
        BinconvError: The `.bin` file or the dataset cannot be read.
    """
    index = read_bin_index(bin_path)
    location = locate_dataset(dataset)
    manifest = location.manifest
    if manifest.num_pairs != index.num_pairs:
        first_missing = min(manifest.num_pairs, index.num_pairs)
        raise MismatchError(
            f"pair {first_missing} differs: {bin_path} has {index.num_pairs} pairs, "
            f"but {location.manifest_url} lists {manifest.num_pairs}"
        )

    expected = iter_bin_pairs(index)
    for shard in manifest.shards:
        url = location.shard_url(shard)
        try:
            for shard_pair in iter_shard_pairs(url, shard):
                source_pair = next(expected, None)
                if source_pair is None:
                    raise DatasetError(f"shard {url} contains more pairs than its manifest lists")
                _compare_pair(source_pair, shard_pair, str(bin_path), url)
        except ShardChecksumError as exc:
            # Equal pairs in other shard bytes still make the conversion differ.
            raise MismatchError(str(exc)) from None
        _check_shard_checksum(location, shard)

    if manifest.num_positive != index.num_positive:
        raise MismatchError(
            f"{location.manifest_url} lists {manifest.num_positive} same-person pairs, but "
            f"{bin_path} and the shards have {index.num_positive}"
        )
    same_source = manifest.source.sha256 == index.sha256
    if not same_source:
        logger.warning(
            "%s: pairs are identical, but the manifest records source sha256 %s, not %s",
            location.manifest_url,
            manifest.source.sha256,
            index.sha256,
        )
    return VerifyResult(
        bin_path, location.dataset_dir, index.num_pairs, len(manifest.shards), same_source
    )


def _compare_pair(source: Pair, converted: Pair, bin_name: str, shard_url: str) -> None:
    where = f"pair {source.index} differs between {bin_name} and shard {shard_url}"
    if source.issame != converted.issame:
        raise MismatchError(
            f"{where}: issame is {int(source.issame)} in the .bin file "
            f"and {int(converted.issame)} in the shard"
        )
    for slot, original, copy in (
        ("img1", source.img1, converted.img1),
        ("img2", source.img2, converted.img2),
    ):
        if original != copy:
            raise MismatchError(f"{where}: {slot} {_first_difference(original, copy)}")


def _first_difference(original: bytes, copy: bytes) -> str:
    if len(original) != len(copy):
        return f"has {len(original)} bytes in the .bin file and {len(copy)} in the shard"
    offset = next(i for i, (a, b) in enumerate(zip(original, copy, strict=True)) if a != b)
    return f"bytes differ first at offset {offset} (of {len(original)})"


def _check_shard_checksum(location: DatasetLocation, shard: ShardInfo) -> None:
    url = location.shard_url(shard)
    sha256 = hashlib.sha256()
    size = 0
    with open_read(url) as file:
        while chunk := file.read(_CHUNK_SIZE):
            sha256.update(chunk)
            size += len(chunk)
    if (size, sha256.hexdigest()) != (shard.size, shard.sha256):
        raise MismatchError(
            f"shard {url} has {size} bytes and sha256 {sha256.hexdigest()}, but the manifest "
            f"records {shard.size} bytes and sha256 {shard.sha256}"
        )
