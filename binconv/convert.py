"""Converting legacy `.bin` files into pair shard datasets, skipping those already done."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .binfile import BinIndex, hash_file, iter_bin_pairs, read_bin_index
from .dataset_writer import find_up_to_date, read_manifest_if_any, write_dataset
from .errors import BinconvError, BinFileError, ManifestError
from .format import DEFAULT_PAIRS_PER_SHARD
from .manifest import Manifest, SourceInfo
from .storage import join_url

__all__ = [
    "ConversionResult",
    "ConvertProgress",
    "convert_bins",
    "dataset_name",
    "find_sources",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConversionResult:
    """The outcome of converting one `.bin` file.

    Attributes:
        name: Dataset name, the source's stem.
        source: The `.bin` file.
        dataset_dir: Folder path or URL of the dataset.
        manifest: The dataset's manifest, new or already there.
        skipped: True if the dataset was already up to date and nothing was written.
        seconds: Wall time spent on this dataset.
    """

    name: str
    source: Path
    dataset_dir: str
    manifest: Manifest
    skipped: bool
    seconds: float


class ConvertProgress(Protocol):
    """Receives progress events while datasets are written, for example to draw a bar."""

    def start(self, name: str, num_pairs: int) -> None:
        """Begin writing dataset `name` of `num_pairs` pairs."""

    def advance(self) -> None:
        """Record that one more pair was written."""

    def finish(self) -> None:
        """End the current dataset, whether it succeeded or failed."""


@dataclass(frozen=True)
class _Plan:
    source: Path
    name: str
    index: BinIndex | None
    up_to_date: Manifest | None


def dataset_name(source: Path) -> str:
    """Return the name of the dataset converted from `source`: its file name without suffix."""
    return source.stem


def find_sources(paths: Sequence[Path]) -> list[Path]:
    """Expand files and folders into the `.bin` files to convert, in order.

    A folder contributes the `.bin` files directly inside it, sorted by name.

    Raises:
        BinFileError: A path does not exist, or a folder contains no `.bin` file.
        BinconvError: Two sources would give datasets of the same name.
    """
    sources: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.bin") if p.is_file())
            if not found:
                raise BinFileError(f"{path}: folder contains no .bin files")
            sources.extend(found)
        elif path.exists():
            sources.append(path)
        else:
            raise BinFileError(f"{path}: file not found")

    by_name: dict[str, Path] = {}
    unique: list[Path] = []
    for source in sources:
        name = dataset_name(source)
        if name in by_name:
            if by_name[name].resolve() == source.resolve():
                continue
            raise BinconvError(
                f"{by_name[name]} and {source} would both become dataset '{name}'; "
                "convert them into different output folders"
            )
        by_name[name] = source
        unique.append(source)
    return unique


def convert_bins(
    paths: Sequence[Path],
    out_root: str,
    pairs_per_shard: int = DEFAULT_PAIRS_PER_SHARD,
    overwrite: bool = False,
    progress: ConvertProgress | None = None,
) -> list[ConversionResult]:
    """Convert each `.bin` file into dataset `out_root/NAME/`, one per source.

    Every source is read and checked before the first dataset is written, so
    an invalid source leaves all outputs as they were. A dataset that already
    exists is skipped if it was made from the same source bytes with the same
    shard size. Any other existing dataset is an error unless `overwrite`.

    Args:
        paths: `.bin` files and folders of them.
        out_root: Folder path or URL that receives one folder per dataset.
        pairs_per_shard: Number of pairs per shard.
        overwrite: Rebuild datasets even if they exist or are up to date.
        progress: Receives an event per written pair.

    Raises:
        BinconvError: A source is invalid, or an existing dataset differs
            from what this call would write and `overwrite` is false.
    """
    if pairs_per_shard < 1:
        raise BinconvError(f"pairs per shard must be at least 1, got {pairs_per_shard}")
    plans = [_plan(source, out_root, pairs_per_shard, overwrite) for source in find_sources(paths)]
    return [_execute(plan, out_root, pairs_per_shard, progress) for plan in plans]


def _plan(source: Path, out_root: str, pairs_per_shard: int, overwrite: bool) -> _Plan:
    name = dataset_name(source)
    if not overwrite:
        existing = _existing_manifest(out_root, name)
        if existing is not None:
            size, sha256 = hash_file(source)
            hashed = SourceInfo(name=source.name, size=size, sha256=sha256)
            dataset_dir = join_url(out_root, name)
            manifest = find_up_to_date(dataset_dir, name, hashed, pairs_per_shard)
            if manifest is None:
                reason = _difference(existing, hashed, pairs_per_shard)
                raise BinconvError(
                    f"{dataset_dir}: an existing dataset {reason}; rerun with --overwrite "
                    "to replace it"
                )
            return _Plan(source, name, None, manifest)
    logger.info("reading %s", source)
    return _Plan(source, name, read_bin_index(source), None)


def _existing_manifest(out_root: str, name: str) -> Manifest | None:
    dataset_dir = join_url(out_root, name)
    try:
        return read_manifest_if_any(dataset_dir, name)
    except ManifestError as exc:
        raise ManifestError(f"{exc}; rerun with --overwrite to replace the dataset") from None


def _difference(existing: Manifest, source: SourceInfo, pairs_per_shard: int) -> str:
    if (existing.source.sha256, existing.source.size) != (source.sha256, source.size):
        return (
            f"was converted from another {existing.source.name} "
            f"(sha256 {existing.source.sha256[:12]}..., this file has {source.sha256[:12]}...)"
        )
    if existing.pairs_per_shard != pairs_per_shard:
        return (
            f"has {existing.pairs_per_shard} pairs per shard, but {pairs_per_shard} were requested"
        )
    return "has missing or changed shards"


def _execute(
    plan: _Plan, out_root: str, pairs_per_shard: int, progress: ConvertProgress | None
) -> ConversionResult:
    started = time.monotonic()
    dataset_dir = join_url(out_root, plan.name)
    if plan.up_to_date is not None:
        logger.info("%s is up to date with %s", dataset_dir, plan.source)
        return ConversionResult(
            plan.name, plan.source, dataset_dir, plan.up_to_date, True, time.monotonic() - started
        )
    assert plan.index is not None  # a plan has an index whenever it is not up to date

    if progress is not None:
        progress.start(plan.name, plan.index.num_pairs)
    try:
        manifest = write_dataset(
            out_root,
            plan.name,
            iter_bin_pairs(plan.index),
            plan.index.source_info(),
            pairs_per_shard,
            on_pair=progress.advance if progress is not None else None,
        )
    finally:
        if progress is not None:
            progress.finish()
    logger.info("wrote %d shards to %s", len(manifest.shards), dataset_dir)
    return ConversionResult(
        plan.name, plan.source, dataset_dir, manifest, False, time.monotonic() - started
    )
