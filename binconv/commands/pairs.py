"""`binconv pairs`: build a pair dataset from a folder of images and a pair list."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..format import DEFAULT_PAIRS_PER_SHARD
from ..pairs_build import PairsBuildResult, build_pairs_dataset
from . import configure_logging, exits_on_error
from .progress import ProgressBars

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
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Output folder or URL; the dataset is written to OUT/NAME/.",
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
            help="Rebuild the dataset even if it is up to date with the list and images.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress bars.")] = False,
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
    with ProgressBars(quiet) as progress:
        result = build_pairs_dataset(
            pair_list,
            images,
            out,
            name,
            list_format=list_format.value,
            lfw_extension=lfw_extension.lstrip("."),
            pairs_per_shard=pairs_per_shard,
            overwrite=overwrite,
            progress=progress,
        )
    typer.echo(_summary(result))


def _summary(result: PairsBuildResult) -> str:
    manifest = result.manifest
    counts = (
        f"{manifest.num_pairs} pairs ({manifest.num_positive} positive, "
        f"{manifest.num_negative} negative)"
    )
    if not result.written:
        return (
            f"{manifest.name}: up to date with {manifest.source.name} in {result.dataset_dir}, "
            f"{counts}; nothing written (pass --overwrite to rebuild)"
        )
    shards = "1 shard" if len(manifest.shards) == 1 else f"{len(manifest.shards)} shards"
    return f"{manifest.name}: {counts} in {shards} -> {result.dataset_dir}"
