"""The dataset manifest: a wids shard index plus provenance and checksums."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ManifestError
from .format import FORMAT_NAME, FORMAT_VERSION, WIDS_KIND

__all__ = ["Manifest", "ShardInfo", "SourceInfo", "manifest_from_json", "manifest_to_json"]


@dataclass(frozen=True)
class ShardInfo:
    """One shard: its URL relative to the manifest, pair count and checksum.

    Attributes:
        url: Shard file name, relative to the manifest's folder.
        nsamples: Number of pairs (samples) in the shard.
        first_pair: Index of the shard's first pair. The shard contains pairs
            `first_pair .. first_pair + nsamples - 1` in order.
        size: Shard size in bytes.
        sha256: Hex SHA-256 of the shard file.
    """

    url: str
    nsamples: int
    first_pair: int
    size: int
    sha256: str


@dataclass(frozen=True)
class SourceInfo:
    """Provenance of a dataset: the file or pair list its pairs were read from.

    Attributes:
        name: File name of the source, without its folder.
        size: Source size in bytes.
        sha256: Hex SHA-256 of the source file.
        kind: `bin` for a legacy pickle, `pairs` for an image folder and pair list.
        pickle_protocol: Highest pickle protocol seen in the file, or None.
        image_container: How the file stored images: `bytes`, `py2-str`,
            `numpy`, or None for sources that are not pickles.
        images_sha256: For `pairs` sources, the hex SHA-256 over the
            SHA-256 digests of img1 and img2 of every pair, in pair order,
            so a rerun notices changed images; None for other sources.
    """

    name: str
    size: int
    sha256: str
    kind: str = "bin"
    pickle_protocol: int | None = None
    image_container: str | None = None
    images_sha256: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A converted dataset.

    Attributes:
        name: Dataset name, the source's stem (`lfw`, `cfp_fp`, ...).
        num_pairs: Number of pairs over all shards.
        num_positive: Pairs whose `issame` is true.
        num_negative: Pairs whose `issame` is false.
        pairs_per_shard: Shard size the dataset was written with.
        shards: Shards in pair order.
        source: Provenance of the pairs.
        image_formats: Count of images per member extension (`jpg`, `png`, ...).
        format_version: Version of the shard format.
    """

    name: str
    num_pairs: int
    num_positive: int
    num_negative: int
    pairs_per_shard: int
    shards: tuple[ShardInfo, ...]
    source: SourceInfo
    image_formats: dict[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


def manifest_to_json(manifest: Manifest) -> str:
    """Serialise `manifest` as the JSON text of `NAME.json`, with sorted keys and no timestamp."""
    data: dict[str, Any] = {
        "__kind__": WIDS_KIND,
        "wids_version": 1,
        "name": manifest.name,
        "format": FORMAT_NAME,
        "format_version": manifest.format_version,
        "num_pairs": manifest.num_pairs,
        "num_positive": manifest.num_positive,
        "num_negative": manifest.num_negative,
        "pairs_per_shard": manifest.pairs_per_shard,
        "image_formats": dict(sorted(manifest.image_formats.items())),
        "source": _source_to_json(manifest.source),
        "shardlist": [asdict(shard) for shard in manifest.shards],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _source_to_json(source: SourceInfo) -> dict[str, Any]:
    data = asdict(source)
    # Left out when unset, so manifests of .bin sources keep their fields and
    # binconv versions without this field still read them.
    if data["images_sha256"] is None:
        del data["images_sha256"]
    return data


def manifest_from_json(text: str | bytes, where: str) -> Manifest:
    """Parse and check the JSON text of a manifest.

    Args:
        text: The manifest's JSON text.
        where: Path or URL of the manifest, used in error messages.

    Raises:
        ManifestError: The text is not JSON, is not a binconv manifest, has a
            newer format version, or its counts disagree with each other.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where}: not a valid JSON manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise ManifestError(
            f"{where}: not a binconv dataset manifest (no 'format': '{FORMAT_NAME}')"
        )
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ManifestError(
            f"{where}: format version {version!r} is newer than this binconv supports "
            f"({FORMAT_VERSION}); upgrade binconv"
        )
    try:
        manifest = Manifest(
            name=str(data["name"]),
            num_pairs=_int_field(data, "num_pairs"),
            num_positive=_int_field(data, "num_positive"),
            num_negative=_int_field(data, "num_negative"),
            pairs_per_shard=_int_field(data, "pairs_per_shard"),
            shards=tuple(_shard_info(shard) for shard in data["shardlist"]),
            source=SourceInfo(**data["source"]),
            image_formats={str(k): int(v) for k, v in data.get("image_formats", {}).items()},
            format_version=version,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: missing or invalid field in manifest ({exc})") from None
    _check_counts(manifest, where)
    _check_shard_urls(manifest, where)
    return manifest


def _int_field(data: dict[str, Any], key: str) -> int:
    # A count written as "10" or 10.0 means the manifest was not written by
    # binconv, so it is rejected rather than converted.
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} is {value!r}, expected an integer")
    return value


def _shard_info(entry: Any) -> ShardInfo:
    if not isinstance(entry, dict):
        raise ValueError(f"shardlist entry {entry!r} is not an object")
    shard = ShardInfo(**entry)
    for key in ("nsamples", "first_pair", "size"):
        _int_field(entry, key)
    for key in ("url", "sha256"):
        if not isinstance(entry[key], str):
            raise ValueError(f"shard {key} is {entry[key]!r}, expected a string")
    return shard


def _check_counts(manifest: Manifest, where: str) -> None:
    if not manifest.shards:
        raise ManifestError(f"{where}: the manifest lists no shards; convert the dataset again")
    if manifest.num_positive + manifest.num_negative != manifest.num_pairs:
        raise ManifestError(
            f"{where}: num_positive + num_negative = "
            f"{manifest.num_positive + manifest.num_negative}, but num_pairs = {manifest.num_pairs}"
        )
    expected_first = 0
    for shard in manifest.shards:
        if shard.first_pair != expected_first or shard.nsamples < 0:
            raise ManifestError(
                f"{where}: shard {shard.url} starts at pair {shard.first_pair}, "
                f"expected {expected_first}"
            )
        expected_first += shard.nsamples
    if expected_first != manifest.num_pairs:
        raise ManifestError(
            f"{where}: shards hold {expected_first} pairs, but num_pairs = {manifest.num_pairs}"
        )


def _check_shard_urls(manifest: Manifest, where: str) -> None:
    # binconv writes shards next to their manifest. A path or URL here could
    # make a downloaded manifest read any local file or reach another host.
    for shard in manifest.shards:
        url = shard.url
        if not url or url in (".", "..") or "/" in url or "\\" in url:
            raise ManifestError(
                f"{where}: shard url {url!r} is not a file name in the manifest's folder; "
                "convert the dataset again"
            )
