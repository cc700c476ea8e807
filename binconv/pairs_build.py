"""Building a pair dataset from a folder of images and a pair list."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .dataset_writer import find_up_to_date, read_manifest_if_any, write_dataset
from .errors import BinconvError, ManifestError, PairListError
from .format import DEFAULT_PAIRS_PER_SHARD, KEY_DIGITS
from .imagecheck import compute_images_sha256, decode_images, hash_images, read_checked_image
from .manifest import Manifest, SourceInfo
from .pairlist import PairEntry, decode_pair_list, parse_pair_list
from .problems import ProblemReport
from .progress import progress_stage
from .shardwriter import Pair
from .storage import join_url

if TYPE_CHECKING:
    from .convert import ConvertProgress

__all__ = ["PairsBuildResult", "build_pairs_dataset"]

logger = logging.getLogger(__name__)

# The name becomes a folder, a shard prefix and a manifest stem: no path
# separators, and no leading dot that would hide the files.
_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class PairsBuildResult:
    """The outcome of `build_pairs_dataset`.

    Attributes:
        manifest: Manifest of the dataset, new or kept.
        dataset_dir: Folder path or URL of the dataset.
        written: False when an up-to-date dataset was kept as it was.
    """

    manifest: Manifest
    dataset_dir: str
    written: bool


def build_pairs_dataset(
    pair_list_path: Path,
    images_root: Path,
    out_root: str,
    name: str,
    *,
    list_format: str = "auto",
    lfw_extension: str = "jpg",
    pairs_per_shard: int = DEFAULT_PAIRS_PER_SHARD,
    overwrite: bool = False,
    progress: ConvertProgress | None = None,
) -> PairsBuildResult:
    """Check a pair list and every image it names, then write them as pair shards.

    Nothing is written unless the whole list and every image are valid. The
    pairs keep the list's order and the images keep their bytes. Without
    `overwrite`, a dataset already built from the same list, images and shard
    size is kept as it is, and any other dataset at `out_root/name` is an error.

    Args:
        pair_list_path: LFW `pairs.txt`, or a CSV or TSV of `path1, path2, label`.
        images_root: Folder that the image paths of the list are relative to.
        out_root: Folder path or URL that receives the dataset folder `name`.
        name: Dataset name: the folder, shard prefix and manifest stem.
        list_format: `lfw`, `csv`, `tsv` or `auto` (see `detect_format`).
        lfw_extension: Extension of the image files an LFW list names.
        pairs_per_shard: Number of pairs per shard.
        overwrite: Replace an existing dataset, even an up-to-date one.
        progress: Reports the stages "reading images" and "decoding images"
            (distinct images each) and "writing pairs".

    Raises:
        PairListError: The list or its images have problems; the error lists
            all of them.
        ImageError: An image changed between the check and the write.
        ManifestError: An existing manifest is invalid and `overwrite` is not set.
        BinconvError: The name or the shard size is invalid, or a dataset
            built from other input exists and `overwrite` is not set.
    """
    _check_options(name, pairs_per_shard)
    data = _read_pair_list(pair_list_path)
    report = ProblemReport(str(pair_list_path))
    text = decode_pair_list(data, report.source)
    entries = parse_pair_list(text, report, list_format, lfw_extension).entries
    _check_pair_count(entries, report)
    digests = _hash_images(images_root, entries, report, progress, f"{name}: reading images")
    dataset_dir = join_url(out_root, name)
    source = None if len(report) else _make_source(pair_list_path, data, entries, digests)

    # Decoding is the slow part of the check, so an existing dataset is
    # compared first: images with the digests it records decoded fine then.
    existing = None if overwrite else _read_existing(dataset_dir, name)
    if existing is not None and source is not None:
        if _is_up_to_date(existing, dataset_dir, source, pairs_per_shard):
            logger.info("%s is up to date with %s", dataset_dir, pair_list_path)
            return PairsBuildResult(existing, dataset_dir, written=False)
        raise BinconvError(
            f"{dataset_dir}: an existing dataset {_difference(existing, source, pairs_per_shard)}; "
            "rerun with --overwrite to replace it"
        )

    with progress_stage(progress, f"{name}: decoding images", len(digests)) as on_image:
        decode_images(images_root, entries, digests, report, on_image)
    report.raise_if_any(f" (images in {images_root})")

    assert source is not None  # every image passed, so every digest is known
    pairs = _iter_pairs(images_root, entries, digests)
    with progress_stage(progress, f"{name}: writing pairs", len(entries)) as on_pair:
        manifest = write_dataset(out_root, name, pairs, source, pairs_per_shard, on_pair)
    return PairsBuildResult(manifest, dataset_dir, written=True)


def _read_existing(dataset_dir: str, name: str) -> Manifest | None:
    try:
        return read_manifest_if_any(dataset_dir, name)
    except ManifestError as exc:
        raise ManifestError(f"{exc}; rerun with --overwrite to replace the dataset") from None


def _is_up_to_date(
    existing: Manifest, dataset_dir: str, source: SourceInfo, pairs_per_shard: int
) -> bool:
    # find_up_to_date compares only the size and SHA-256 of the list file, so
    # the images digest is compared here, with the rest of the source.
    if existing.source != source:
        return False
    return find_up_to_date(dataset_dir, existing.name, source, pairs_per_shard) is not None


def _difference(existing: Manifest, source: SourceInfo, pairs_per_shard: int) -> str:
    old = existing.source
    if old.kind != "pairs":
        return f"was converted from {old.name}, not built from a pair list"
    if (old.name, old.size, old.sha256) != (source.name, source.size, source.sha256):
        return (
            f"was built from another pair list ({old.name}, sha256 {old.sha256[:12]}...; "
            f"this list has {source.sha256[:12]}...)"
        )
    if old.images_sha256 != source.images_sha256:
        return "was built from other images: at least one image was added, removed or changed"
    if existing.pairs_per_shard != pairs_per_shard:
        return (
            f"has {existing.pairs_per_shard} pairs per shard, but {pairs_per_shard} were requested"
        )
    return "has missing or changed shards"


def _hash_images(
    root: Path,
    entries: Sequence[PairEntry],
    report: ProblemReport,
    progress: ConvertProgress | None,
    stage: str,
) -> dict[str, bytes]:
    if not root.is_dir():
        report.add("missing images", f"image folder {root} not found")
        return {}
    logger.info("reading the images of %d pairs in %s", len(entries), root)
    with progress_stage(progress, stage, _count_images(entries)) as on_image:
        return hash_images(root, entries, report, on_image)


def _make_source(
    pair_list_path: Path, data: bytes, entries: Sequence[PairEntry], digests: dict[str, bytes]
) -> SourceInfo:
    return SourceInfo(
        name=pair_list_path.name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        kind="pairs",
        images_sha256=compute_images_sha256(entries, digests),
    )


def _check_options(name: str, pairs_per_shard: int) -> None:
    if not _DATASET_NAME.fullmatch(name):
        raise BinconvError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if pairs_per_shard < 1:
        raise BinconvError(f"pairs per shard must be at least 1, got {pairs_per_shard}")


def _read_pair_list(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PairListError(f"{path}: pair list not found") from None
    except IsADirectoryError:
        raise PairListError(f"{path}: is a folder; pass the pair list file") from None
    except OSError as exc:
        raise PairListError(f"{path}: cannot read the pair list ({exc.strerror})") from None


def _check_pair_count(entries: Sequence[PairEntry], report: ProblemReport) -> None:
    # Pair keys have KEY_DIGITS digits, which bounds the pairs of one dataset.
    if len(entries) > 10**KEY_DIGITS:
        report.add(
            "count problems",
            f"the list has {len(entries)} pairs, but a dataset holds at most {10**KEY_DIGITS}; "
            "split the list",
        )


def _count_images(entries: Sequence[PairEntry]) -> int:
    return len({path for entry in entries for path in (entry.path1, entry.path2)})


def _iter_pairs(
    root: Path, entries: Sequence[PairEntry], digests: dict[str, bytes]
) -> Iterator[Pair]:
    for index, entry in enumerate(entries):
        img1 = read_checked_image(root, entry.path1, digests[entry.path1])
        img2 = read_checked_image(root, entry.path2, digests[entry.path2])
        yield Pair(index, img1, img2, entry.issame)
