"""Reading a converted dataset: locating its manifest and iterating its pairs in order."""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import DatasetError, ManifestError
from .format import ISSAME_MEMBER, manifest_name, pair_key
from .manifest import Manifest, ShardInfo, manifest_from_json
from .shardwriter import Pair
from .storage import file_size, is_remote, join_url, list_folder, open_read, open_shard
from .storage_options import StorageOptions

__all__ = ["DatasetLocation", "iter_pairs", "iter_shard_pairs", "locate_dataset", "locate_datasets"]


@dataclass(frozen=True)
class DatasetLocation:
    """A converted dataset: its folder, its manifest URL and the parsed manifest."""

    dataset_dir: str
    manifest_url: str
    manifest: Manifest

    def shard_url(self, shard: ShardInfo) -> str:
        """Return the path or URL of `shard`, which the manifest lists relative to itself."""
        return join_url(self.dataset_dir, shard.url)


def locate_dataset(path: str, options: StorageOptions | None = None) -> DatasetLocation:
    """Find and parse the manifest of the dataset at `path`.

    Args:
        path: A manifest (`.../lfw/lfw.json`) or a dataset folder (`.../lfw`),
            as a local path or URL. A folder's manifest is the JSON file named
            after the folder.
        options: How to reach remote locations; None uses the configured default.

    Raises:
        ManifestError: No manifest was found, or it is invalid.
        StorageError: The manifest could not be read after all retries.
    """
    stripped = path.rstrip("/")
    if stripped.endswith(".json"):
        manifest_url = stripped
        dataset_dir = posixpath.dirname(stripped) if is_remote(stripped) else _local_dir(stripped)
    else:
        dataset_dir = stripped
        manifest_url = join_url(stripped, manifest_name(posixpath.basename(stripped)))
    try:
        with open_read(manifest_url, options) as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        # NotADirectoryError: `path` is a local file, such as a .bin or a shard.
        raise ManifestError(
            f"{path}: no dataset manifest found (looked for {manifest_url}); "
            "pass a folder written by 'binconv convert' or its .json manifest"
        ) from None
    except IsADirectoryError:
        raise ManifestError(f"{manifest_url}: is a folder, not a manifest") from None
    return DatasetLocation(dataset_dir, manifest_url, manifest_from_json(text, manifest_url))


def locate_datasets(path: str, options: StorageOptions | None = None) -> list[DatasetLocation]:
    """Find the datasets at `path`: one dataset, or each dataset folder directly under a root.

    Args:
        path: A manifest, a dataset folder, or a root folder whose subfolders
            are dataset folders (`ROOT/lfw/lfw.json`, `ROOT/cfp_fp/cfp_fp.json`),
            as a local path or URL. On HTTP a root needs an index page that
            links its subfolders.
        options: How to reach remote locations; None uses the configured default.

    Raises:
        ManifestError: `path` is not one of these, or a manifest found is invalid.
        StorageError: A listing or manifest could not be read after all retries.
    """
    stripped = path.rstrip("/")
    own_manifest = join_url(stripped, manifest_name(posixpath.basename(stripped)))
    if stripped.endswith(".json") or file_size(own_manifest, options) is not None:
        return [locate_dataset(stripped, options)]
    try:
        entries = list_folder(stripped, options)
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: not found; pass a dataset manifest, a dataset folder written by "
            "'binconv convert', or a folder of such datasets"
        ) from None
    found = []
    for name, is_folder in entries:
        dataset_dir = join_url(stripped, name)
        if is_folder and file_size(join_url(dataset_dir, manifest_name(name)), options) is not None:
            found.append(locate_dataset(dataset_dir, options))
    if not found:
        raise ManifestError(
            f"{path}: no converted datasets found (looked for NAME/NAME.json in each "
            "subfolder); convert .bin files first with 'binconv convert'"
        )
    return found


def _local_dir(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def iter_pairs(location: DatasetLocation, options: StorageOptions | None = None) -> Iterator[Pair]:
    """Yield every pair of the dataset in index order, checking it against the manifest.

    Raises:
        ShardError: A shard is missing, truncated, has another SHA-256 than
            the manifest lists, or cannot be read after all retries.
        DatasetError: A shard contains other pairs than the manifest lists.
    """
    for shard in location.manifest.shards:
        yield from iter_shard_pairs(location.shard_url(shard), shard, options)


def iter_shard_pairs(
    url: str, shard: ShardInfo, options: StorageOptions | None = None
) -> Iterator[Pair]:
    """Yield the pairs of one shard, checking keys, members, count, size and SHA-256."""
    expected = shard.first_pair
    stream = open_shard(url, shard.size, shard.sha256, options)
    try:
        with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            members: dict[str, bytes] = {}
            key = None
            for info in tar:
                member_key, _, suffix = info.name.partition(".")
                if key is not None and member_key != key:
                    yield _make_pair(url, key, members, expected)
                    expected += 1
                    members = {}
                key = member_key
                data = tar.extractfile(info)
                members[suffix] = data.read() if data is not None else b""
            if key is not None:
                yield _make_pair(url, key, members, expected)
                expected += 1
            stream.read_to_end()
    except tarfile.TarError as exc:
        # A corrupt or truncated shard also breaks the tar format. The size and
        # checksum checks name that cause more precisely, so they run first.
        stream.read_to_end()
        raise DatasetError(f"shard {url} is not a valid tar file ({exc})") from None
    if expected != shard.first_pair + shard.nsamples:
        raise DatasetError(
            f"shard {url} contains {expected - shard.first_pair} pairs, "
            f"but the manifest lists {shard.nsamples}"
        )


def _make_pair(url: str, key: str, members: dict[str, bytes], index: int) -> Pair:
    if key != pair_key(index):
        raise DatasetError(f"shard {url}: expected pair {pair_key(index)}, found key {key!r}")
    images = {suffix.split(".")[0]: data for suffix, data in members.items()}
    if set(images) != {"img1", "img2", ISSAME_MEMBER.split(".")[0]}:
        raise DatasetError(f"shard {url}: pair {key} has members {sorted(members)}")
    label = images["issame"].strip()
    if label not in (b"0", b"1"):
        raise DatasetError(f"shard {url}: pair {key} has issame {label!r}, expected 1 or 0")
    return Pair(index, images["img1"], images["img2"], label == b"1")
