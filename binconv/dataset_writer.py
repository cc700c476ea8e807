"""Writing a whole dataset: shards first, manifest last, nothing half-written left behind."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable

import fsspec

from .errors import BinconvError, ManifestError
from .format import manifest_name
from .manifest import Manifest, SourceInfo, manifest_from_json, manifest_to_json
from .shardwriter import Pair, PairShardWriter
from .storage import join_url, make_folder, open_atomic_write, url_to_fs

__all__ = ["find_up_to_date", "read_manifest_if_any", "write_dataset"]

logger = logging.getLogger(__name__)


def read_manifest_if_any(dataset_dir: str, name: str) -> Manifest | None:
    """Return the manifest of dataset `name` in `dataset_dir`, or None if there is none.

    Raises:
        ManifestError: A manifest exists but cannot be parsed.
    """
    url = join_url(dataset_dir, manifest_name(name))
    fs, path = url_to_fs(url)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return manifest_from_json(f.read(), url)


def find_up_to_date(
    dataset_dir: str, name: str, source: SourceInfo, pairs_per_shard: int
) -> Manifest | None:
    """Return the existing manifest if it was made from `source` with the same shard size.

    The source is compared by SHA-256 and size, and every listed shard must
    exist with its recorded size; shard contents are not re-hashed.
    """
    try:
        manifest = read_manifest_if_any(dataset_dir, name)
    except ManifestError:
        return None
    if manifest is None:
        return None
    same_source = (manifest.source.sha256, manifest.source.size) == (source.sha256, source.size)
    if not same_source or manifest.pairs_per_shard != pairs_per_shard:
        return None
    fs, folder = url_to_fs(dataset_dir)
    for shard in manifest.shards:
        path = f"{folder.rstrip('/')}/{shard.url}"
        if not fs.exists(path) or fs.size(path) != shard.size:
            return None
    return manifest


def write_dataset(
    out_root: str,
    name: str,
    pairs: Iterable[Pair],
    source: SourceInfo,
    pairs_per_shard: int,
    on_pair: Callable[[], None] | None = None,
) -> Manifest:
    """Write `pairs` as dataset `name` under `out_root/name/` and return its manifest.

    An existing manifest is removed before the first shard is written and the
    new one is written after the last, so readers never combine a manifest
    with shards it does not describe. Shards of an earlier run that the new
    dataset does not use are removed. If `pairs` raises, the shards written
    by this call are removed and the error propagates.

    Args:
        out_root: Folder path or URL that contains one folder per dataset.
        name: Dataset name; the folder, shard prefix and manifest stem.
        pairs: Pairs in index order, starting at 0.
        source: Provenance recorded in the manifest.
        pairs_per_shard: Number of pairs per shard.
        on_pair: Called after each pair is written, for progress bars.
    """
    dataset_dir = join_url(out_root, name)
    fs, folder = url_to_fs(dataset_dir)
    make_folder(dataset_dir)
    manifest_path = f"{folder.rstrip('/')}/{manifest_name(name)}"
    if fs.exists(manifest_path):
        fs.rm(manifest_path)

    writer = PairShardWriter(dataset_dir, name, pairs_per_shard, source.name)
    try:
        for pair in pairs:
            writer.write(pair)
            if on_pair is not None:
                on_pair()
        shards = writer.close()
    except BaseException:
        writer.abort()
        _remove_shards(fs, folder, [shard.url for shard in writer.shards])
        raise
    if not shards:
        raise BinconvError(f"{source.name}: no pairs to write")

    _remove_stale_shards(fs, folder, name, {shard.url for shard in shards})
    manifest = Manifest(
        name=name,
        num_pairs=writer.num_pairs,
        num_positive=writer.num_positive,
        num_negative=writer.num_pairs - writer.num_positive,
        pairs_per_shard=pairs_per_shard,
        shards=shards,
        source=source,
        image_formats=dict(writer.image_formats),
    )
    with open_atomic_write(join_url(dataset_dir, manifest_name(name))) as out:
        out.write(manifest_to_json(manifest).encode())
    return manifest


def _remove_shards(fs: fsspec.AbstractFileSystem, folder: str, names: list[str]) -> None:
    for shard in names:
        with contextlib.suppress(FileNotFoundError):
            fs.rm(f"{folder.rstrip('/')}/{shard}")


def _remove_stale_shards(
    fs: fsspec.AbstractFileSystem, folder: str, name: str, keep: set[str]
) -> None:
    # Also matches the hidden partial files that a killed run leaves behind.
    pattern = re.compile(rf"\.?{re.escape(name)}-\d+\.tar(\.partial)?")
    stale = [
        base
        for base in (path.rsplit("/", 1)[-1] for path in fs.ls(folder, detail=False))
        if pattern.fullmatch(base) and base not in keep
    ]
    if stale:
        logger.info("removing %d shards of an earlier conversion from %s", len(stale), folder)
    _remove_shards(fs, folder, stale)
