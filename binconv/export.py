"""Exporting a converted dataset back to a legacy `.bin` file."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import fsspec

from .dataset_reader import iter_pairs, locate_dataset
from .errors import BinconvError
from .legacy_pickle import LegacyBinWriter
from .progress import progress_stage
from .storage import is_remote, open_atomic_write

if TYPE_CHECKING:
    from .convert import ConvertProgress

__all__ = ["ExportResult", "export_dataset"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """A written legacy `.bin` file.

    Attributes:
        path: Path or URL of the file.
        num_pairs: Number of pairs in it.
        num_positive: Pairs whose `issame` is true.
        size: File size in bytes.
    """

    path: str
    num_pairs: int
    num_positive: int
    size: int


def export_dataset(
    dataset: str, out: str, *, overwrite: bool = False, progress: ConvertProgress | None = None
) -> ExportResult:
    """Write the pairs of a converted dataset as a legacy `.bin` file.

    The file is a protocol-3 pickle of `(images, issame)`: images as `bytes`
    with their shard bytes unchanged, pair `i` as images `2i` and `2i+1`,
    and `issame` as a list of bools. It is streamed pair by pair and written
    atomically, so `out` is either complete or absent.

    Args:
        dataset: Dataset folder or manifest, as a local path or URL.
        out: Path or URL of the `.bin` file to write.
        overwrite: Replace `out` if it exists.
        progress: Reports the stage "NAME: exporting pairs".

    Raises:
        ManifestError: No valid manifest was found at `dataset`.
        DatasetError: A shard is missing or disagrees with the manifest.
        BinconvError: `out` is a folder, or exists and `overwrite` is not set.
    """
    location = locate_dataset(dataset)
    fs, path = fsspec.core.url_to_fs(out)
    if fs.isdir(path):
        raise BinconvError(f"{out}: is a folder; give the path of the .bin file to write")
    if fs.exists(path) and not overwrite:
        raise BinconvError(f"{out}: already exists; pass --overwrite to replace it")
    if not is_remote(out):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    num_pairs = location.manifest.num_pairs
    logger.info("exporting %d pairs of %s to %s", num_pairs, location.manifest_url, out)
    stage = progress_stage(progress, f"{location.manifest.name}: exporting pairs", num_pairs)
    with stage as on_pair, open_atomic_write(out) as stream:
        writer = LegacyBinWriter(stream)
        for pair in iter_pairs(location):
            writer.add_pair(pair.img1, pair.img2, pair.issame)
            if on_pair is not None:
                on_pair()
        writer.finish()
    return ExportResult(out, writer.num_pairs, writer.num_positive, writer.size)
