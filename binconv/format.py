"""Names, keys and image types of the pair shard format."""

from __future__ import annotations

from .errors import BinconvError

__all__ = [
    "DEFAULT_PAIRS_PER_SHARD",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ISSAME_MEMBER",
    "KEY_DIGITS",
    "WIDS_KIND",
    "detect_image_type",
    "manifest_name",
    "pair_key",
    "shard_name",
]

FORMAT_NAME = "binconv-pairs"
FORMAT_VERSION = 1
WIDS_KIND = "wids-shard-index-v1"

# 500 pairs of two 112x112 JPEGs make a shard of about 4.5 MB. A 6,000-pair
# set then becomes 12 shards, so 8 ranks or 12 readers each still get whole
# shards. Each shard also stays large enough that per-request latency on
# object storage is small next to its transfer time (numbers in docs/format.md).
DEFAULT_PAIRS_PER_SHARD = 500

# Six digits cover every known set (the largest has 7,000 pairs) and sort
# lexically in pair order. Keys never contain dots, because WebDataset splits
# member names at the first dot.
KEY_DIGITS = 6
SHARD_DIGITS = 6
ISSAME_MEMBER = "issame.cls"

# Magic bytes of the image containers found in .bin files, mapped to the
# member extension that WebDataset's decoders recognise.
_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def detect_image_type(data: bytes) -> str | None:
    """Return the member extension for encoded image bytes, or None if unknown."""
    head = bytes(data[:12])
    for magic, ext in _MAGIC:
        if head.startswith(magic):
            return ext
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def pair_key(index: int) -> str:
    """Return the sample key of pair `index`: the index zero-padded to six digits."""
    if index < 0 or index >= 10**KEY_DIGITS:
        raise BinconvError(f"pair index {index} does not fit in a {KEY_DIGITS}-digit key")
    return f"{index:0{KEY_DIGITS}d}"


def shard_name(dataset: str, shard_index: int) -> str:
    """Return the file name of shard `shard_index` of `dataset`."""
    return f"{dataset}-{shard_index:0{SHARD_DIGITS}d}.tar"


def manifest_name(dataset: str) -> str:
    """Return the file name of the manifest of `dataset`."""
    return f"{dataset}.json"
