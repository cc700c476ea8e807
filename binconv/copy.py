"""Copying converted datasets between locations, shards first and manifest last, verified."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from .dataset_reader import DatasetLocation, locate_datasets
from .errors import ManifestError, ShardError, StorageError
from .format import manifest_name
from .manifest import ShardInfo, manifest_from_json
from .storage import (
    file_size,
    is_remote,
    join_url,
    list_folder,
    make_folder,
    open_atomic_write,
    open_read,
    open_shard,
    url_to_fs,
)
from .storage_options import StorageOptions, canonical_protocol, get_storage_options

__all__ = ["CopyResult", "copy_dataset", "copy_datasets"]

logger = logging.getLogger(__name__)

# Bytes moved per read and write while copying a shard.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CopyResult:
    """Outcome of `copy_dataset` for one dataset.

    Attributes:
        name: Dataset name.
        source: Source dataset folder.
        destination: Destination dataset folder.
        copied_shards: Shards copied and verified at the destination.
        present_shards: Shards already at the destination with the right
            size and SHA-256, left as they were.
        copied_bytes: Bytes of the copied shards.
        manifest_written: Whether the manifest was written; False when the
            destination already had this exact dataset.
    """

    name: str
    source: str
    destination: str
    copied_shards: int
    present_shards: int
    copied_bytes: int
    manifest_written: bool


def copy_datasets(
    source: str,
    destination_root: str,
    *,
    overwrite: bool = False,
    options: StorageOptions | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> list[CopyResult]:
    """Copy the dataset, or every dataset of the root, at `source` to `destination_root/NAME/`.

    Args:
        source: A manifest, a dataset folder or a root of dataset folders, as
            a local path or URL (see `locate_datasets`).
        destination_root: Folder path or URL that receives one folder per
            dataset, as `binconv convert -o` writes them.
        overwrite: Replace a different dataset of the same name at the
            destination.
        options: How to reach remote locations; None uses the configured default.
        on_bytes: Called with each number of shard bytes copied or found
            already present, for progress bars.

    Raises:
        ManifestError: No dataset was found at `source`.
        ShardError: A source shard is missing, corrupt or unreadable, or a
            copied shard does not read back with the manifest's SHA-256.
        StorageError: The destination contains another dataset of that name
            and `overwrite` is False, or a write failed.
    """
    options = options or get_storage_options()
    locations = locate_datasets(source, options)
    return [
        copy_dataset(
            location, destination_root, overwrite=overwrite, options=options, on_bytes=on_bytes
        )
        for location in locations
    ]


def copy_dataset(
    location: DatasetLocation,
    destination_root: str,
    *,
    overwrite: bool = False,
    options: StorageOptions | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> CopyResult:
    """Copy one dataset to `destination_root/NAME/` and verify every shard it copies.

    Shards go first and the manifest last, so a reader of the destination
    finds either the previous complete dataset, no manifest, or the new
    complete dataset. Each shard is hashed while it streams from the source, so a
    corrupt source is never published, and is read back from the destination
    after its upload and checked against the manifest's size and SHA-256.
    Shards already at the destination with the right size and SHA-256 are
    kept, so an interrupted copy resumes where it stopped.

    Raises:
        ShardError: A source shard fails its checks, or a copied shard does
            not read back with the manifest's size and SHA-256.
        StorageError: The destination contains another dataset of that name
            and `overwrite` is False, the source and destination are the same
            folder, or a write failed.
    """
    options = options or get_storage_options()
    manifest = location.manifest
    destination = join_url(destination_root, manifest.name)
    _check_destination(location.dataset_dir, destination)
    manifest_url = join_url(destination, manifest_name(manifest.name))
    manifest_text = _read_bytes(location.manifest_url, options)
    existing = _read_existing_manifest(manifest_url, options)
    if existing is not None and existing != manifest_text and not overwrite:
        raise StorageError(
            f"{destination} already contains a different dataset {manifest.name!r}; "
            "pass --overwrite to replace it"
        )

    missing = [s for s in manifest.shards if not _is_present(destination, s, options, on_bytes)]
    write_manifest = bool(missing) or existing != manifest_text
    if write_manifest:
        if existing is not None:
            # Readers must not pair the old manifest with shards that are changing.
            fs, path = url_to_fs(manifest_url, options)
            fs.rm(path)
        make_folder(destination, options)
        for shard in missing:
            target = join_url(destination, shard.url)
            _copy_shard(location.shard_url(shard), target, shard, options, on_bytes)
        _remove_stale_shards(destination, manifest.name, {s.url for s in manifest.shards}, options)
        with open_atomic_write(manifest_url, options) as out:
            out.write(manifest_text)

    result = CopyResult(
        name=manifest.name,
        source=location.dataset_dir,
        destination=destination,
        copied_shards=len(missing),
        present_shards=len(manifest.shards) - len(missing),
        copied_bytes=sum(shard.size for shard in missing),
        manifest_written=write_manifest,
    )
    logger.info(
        "%s: %d shards copied to %s, %d already present",
        result.name,
        result.copied_shards,
        result.destination,
        result.present_shards,
    )
    return result


def _check_destination(source_dir: str, destination: str) -> None:
    def normalise(url: str) -> str:
        return url.rstrip("/") if is_remote(url) else os.path.realpath(url)

    if canonical_protocol(destination.partition("://")[0]) == "http" and is_remote(destination):
        raise StorageError(
            f"{destination}: HTTP locations are read-only; copy to a local folder, "
            "s3:// or gs:// and serve that folder over HTTP"
        )
    if normalise(source_dir) == normalise(destination):
        raise StorageError(
            f"{destination}: source and destination are the same folder; "
            "pass another destination root"
        )


def _read_bytes(url: str, options: StorageOptions) -> bytes:
    with open_read(url, options) as f:
        return f.read()


def _read_existing_manifest(url: str, options: StorageOptions) -> bytes | None:
    """Return the manifest text at `url` if one exists, checking that it is valid."""
    try:
        text = _read_bytes(url, options)
    except FileNotFoundError:
        return None
    try:
        manifest_from_json(text, url)
    except ManifestError:
        # An invalid manifest counts as a different dataset: it can only be
        # replaced with --overwrite.
        return b""
    return text


def _is_present(
    destination: str,
    shard: ShardInfo,
    options: StorageOptions,
    on_bytes: Callable[[int], None] | None,
) -> bool:
    url = join_url(destination, shard.url)
    if file_size(url, options) != shard.size:
        return False
    try:
        open_shard(url, shard.size, shard.sha256, options).read_to_end()
    except ShardError as exc:
        logger.info("replacing %s, which has the right size but fails its check: %s", url, exc)
        return False
    if on_bytes is not None:
        on_bytes(shard.size)
    return True


def _copy_shard(
    source_url: str,
    destination_url: str,
    shard: ShardInfo,
    options: StorageOptions,
    on_bytes: Callable[[int], None] | None,
) -> None:
    logger.debug("copying %s to %s", source_url, destination_url)
    # The source stream checks size and SHA-256 at its end, inside the write
    # block, so a corrupt source makes the upload fail instead of publishing.
    with (
        open_shard(source_url, shard.size, shard.sha256, options) as source,
        open_atomic_write(destination_url, options) as out,
    ):
        while chunk := source.read(_CHUNK):
            out.write(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    try:
        open_shard(destination_url, shard.size, shard.sha256, options).read_to_end()
    except ShardError as exc:
        raise ShardError(
            f"the copy of shard {source_url} failed its check after the upload: {exc}"
        ) from None


def _remove_stale_shards(
    destination: str, name: str, keep: set[str], options: StorageOptions
) -> None:
    """Remove shards of an earlier dataset of this name that the new manifest does not list."""
    pattern = re.compile(rf"{re.escape(name)}-\d+\.tar")
    try:
        entries = list_folder(destination, options)
    except FileNotFoundError:
        return
    stale = [entry for entry, is_folder in entries if not is_folder and pattern.fullmatch(entry)]
    stale = [entry for entry in stale if entry not in keep]
    if not stale:
        return
    logger.info("removing %d shards of an earlier dataset from %s", len(stale), destination)
    fs, folder = url_to_fs(destination, options)
    for entry in stale:
        fs.rm(f"{folder.rstrip('/')}/{entry}")
