"""`binconv pairs`: build a pair dataset from a folder of images and a pair list."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..convert import ConversionResult
from ..format import DEFAULT_PAIRS_PER_SHARD
from ..pairs_build import build_pairs_dataset
from . import configure_logging, exits_on_error
from ._progress import TqdmProgress, progress_enabled
from .convert import format_summary

__all__ = ["pairs_command"]


class PairListFormat(str, Enum):
    """Values of `--format`."""

    auto = "auto"
    lfw = "lfw"
    csv = "csv"
    tsv = "tsv"


@exits_on_error
def pairs_command(
    pair_list: Annotated[
        Path,
        typer.Argument(
            help="Pair list: an LFW pairs.txt, or a CSV or TSV file of path1, path2, label.",
            show_default=False,
        ),
    ],
    images: Annotated[
        Path,
        typer.Option(
            "--images",
            "-i",
            help="Folder that the image paths of the list are relative to; for an LFW "
            "list, the folder that holds one NAME/ folder per person.",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output folder or URL; the dataset is written to OUTPUT/NAME/.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            "-n",
            help="Dataset name: the folder, shard prefix and manifest name "
            "(letters, digits, '.', '_', '-').",
            show_default=False,
        ),
    ],
    list_format: Annotated[
        PairListFormat,
        typer.Option(
            "--format",
            help="Format of the pair list. auto: .csv and .tsv files by extension, "
            "other files by their first line.",
            case_sensitive=False,
        ),
    ] = PairListFormat.auto,
    lfw_extension: Annotated[
        str,
        typer.Option(
            "--lfw-extension",
            help="File extension of the images an LFW list names (NAME/NAME_0001.EXT), "
            "without the dot.",
        ),
    ] = "jpg",
    pairs_per_shard: Annotated[
        int, typer.Option("--pairs-per-shard", min=1, help="Number of pairs in each shard.")
    ] = DEFAULT_PAIRS_PER_SHARD,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace an existing dataset, even one that is up to date. Without it, an "
            "up-to-date dataset is kept and one built from other input is an error.",
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no progress bars and no summary line.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step on stderr.")
    ] = False,
) -> None:
    """Build a pair dataset from aligned face images and a pair list.

    Writes the same shards and manifest as 'binconv convert', with the image
    bytes unchanged and the pairs in list order. Every line and image is
    checked first: if anything is wrong, all problems are listed, nothing is
    written, and the exit status is 2.
    """
    configure_logging(verbose)
    started = time.monotonic()
    progress = TqdmProgress(unit="") if progress_enabled(quiet) else None
    result = build_pairs_dataset(
        pair_list,
        images,
        output,
        name,
        list_format=list_format.value,
        lfw_extension=lfw_extension.lstrip("."),
        pairs_per_shard=pairs_per_shard,
        overwrite=overwrite,
        progress=progress,
    )
    if quiet:
        return
    # The same summary line as 'binconv convert', with the pair list as the source.
    summary = ConversionResult(
        name=result.manifest.name,
        source=pair_list,
        dataset_dir=result.dataset_dir,
        manifest=result.manifest,
        skipped=not result.written,
        seconds=time.monotonic() - started,
    )
    typer.echo(format_summary(summary))
