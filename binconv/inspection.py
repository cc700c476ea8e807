"""Summaries of a `.bin` file or a converted dataset: counts, image formats and sizes."""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .binfile import iter_bin_pairs, read_bin_index
from .dataset_reader import iter_pairs, locate_dataset
from .errors import DatasetError
from .shardwriter import Pair
from .storage import is_remote, url_to_fs

__all__ = ["InspectionReport", "inspect_path"]

# Images that Pillow cannot open are counted under this format name.
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class InspectionReport:
    """Contents summary of a `.bin` file or converted dataset.

    Attributes:
        path: The inspected path or URL.
        kind: `bin` for a legacy file, `dataset` for a converted dataset.
        name: Dataset name: the file's stem or the manifest's name.
        num_pairs: Number of pairs.
        num_positive: Pairs of the same person.
        num_negative: Pairs of different people.
        image_formats: Images per Pillow format name (`JPEG`, `PNG`, ...).
        image_sizes: Images per size, as `WIDTHxHEIGHT`.
        image_modes: Images per Pillow mode (`RGB`, `L`, ...).
        image_bytes: Total size of the encoded images in bytes.
        file_bytes: Size of the `.bin` file, or of the shards and manifest.
        pickle_protocol: Pickle protocol of the `.bin` file or of the source.
        image_container: How the `.bin` file stored images (`bytes`, `py2-str`, `numpy`).
        source_sha256: Hex SHA-256 of the `.bin` file or of the dataset's source.
        num_shards: Number of shards, or None for a `.bin` file.
    """

    path: str
    kind: str
    name: str
    num_pairs: int
    num_positive: int
    num_negative: int
    image_formats: dict[str, int]
    image_sizes: dict[str, int]
    image_modes: dict[str, int]
    image_bytes: int
    file_bytes: int
    pickle_protocol: int | None
    image_container: str | None
    source_sha256: str
    num_shards: int | None

    def to_json(self) -> str:
        """Serialise the report as indented JSON with sorted keys."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)


@dataclass(frozen=True)
class _ImageSummary:
    formats: dict[str, int]
    sizes: dict[str, int]
    modes: dict[str, int]
    total_bytes: int
    num_positive: int


def inspect_path(path: str) -> InspectionReport:
    """Summarise the `.bin` file or converted dataset at `path`, reading every image header.

    A local file that is not a `.json` manifest is read as a `.bin` file.
    Anything else is read as a dataset folder, manifest or URL.

    Raises:
        BinconvError: The `.bin` file or the dataset is missing or invalid.
    """
    local = Path(path)
    if not is_remote(path) and local.is_file() and local.suffix != ".json":
        return _inspect_bin(local)
    return _inspect_dataset(path)


def _inspect_bin(path: Path) -> InspectionReport:
    index = read_bin_index(path)
    images = _summarise_images(iter_bin_pairs(index))
    return InspectionReport(
        path=str(path),
        kind="bin",
        name=path.stem,
        num_pairs=index.num_pairs,
        num_positive=index.num_positive,
        num_negative=index.num_pairs - index.num_positive,
        image_formats=images.formats,
        image_sizes=images.sizes,
        image_modes=images.modes,
        image_bytes=images.total_bytes,
        file_bytes=index.size,
        pickle_protocol=index.pickle_protocol,
        image_container=index.image_container,
        source_sha256=index.sha256,
        num_shards=None,
    )


def _inspect_dataset(path: str) -> InspectionReport:
    location = locate_dataset(path)
    manifest = location.manifest
    images = _summarise_images(iter_pairs(location))
    if images.num_positive != manifest.num_positive:
        raise DatasetError(
            f"{location.manifest_url} lists {manifest.num_positive} same-person pairs, but "
            f"the shards have {images.num_positive}; convert the dataset again"
        )
    return InspectionReport(
        path=path,
        kind="dataset",
        name=manifest.name,
        num_pairs=manifest.num_pairs,
        num_positive=manifest.num_positive,
        num_negative=manifest.num_negative,
        image_formats=images.formats,
        image_sizes=images.sizes,
        image_modes=images.modes,
        image_bytes=images.total_bytes,
        file_bytes=sum(shard.size for shard in manifest.shards) + _file_size(location.manifest_url),
        pickle_protocol=manifest.source.pickle_protocol,
        image_container=manifest.source.image_container,
        source_sha256=manifest.source.sha256,
        num_shards=len(manifest.shards),
    )


def _file_size(url: str) -> int:
    fs, path = url_to_fs(url)
    return int(fs.size(path))


def _summarise_images(pairs: Iterable[Pair]) -> _ImageSummary:
    formats: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    total = 0
    num_positive = 0
    for pair in pairs:
        num_positive += int(pair.issame)
        for data in (pair.img1, pair.img2):
            total += len(data)
            header = _read_header(data)
            if header is None:
                formats[UNREADABLE] += 1
                continue
            image_format, (width, height), mode = header
            formats[image_format] += 1
            sizes[f"{width}x{height}"] += 1
            modes[mode] += 1
    return _ImageSummary(dict(formats), dict(sizes), dict(modes), total, num_positive)


def _read_header(data: bytes) -> tuple[str, tuple[int, int], str] | None:
    # Image.open parses only the header, so no pixels are decoded here.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.format or UNREADABLE, image.size, image.mode
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        return None
