"""`binconv convert`: legacy `.bin` files to WebDataset pair shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..convert import ConversionResult, convert_bins
from ..format import DEFAULT_PAIRS_PER_SHARD
from . import configure_logging, exits_on_error
from ._progress import TqdmProgress, progress_enabled

__all__ = ["convert_command", "format_summary"]


@exits_on_error
def convert_command(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Legacy .bin files, or folders whose .bin files are all converted. "
            "Each file becomes a dataset named after the file without its suffix.",
            metavar="SRC",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Folder that receives one folder per dataset: OUTPUT/NAME/NAME-000000.tar, "
            "... and the manifest OUTPUT/NAME/NAME.json.",
            show_default=False,
        ),
    ],
    pairs_per_shard: Annotated[
        int,
        typer.Option(min=1, help="Number of pairs per shard; the last shard may hold fewer."),
    ] = DEFAULT_PAIRS_PER_SHARD,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Rebuild datasets that already exist, even if they are up to date. Without "
            "it, an up-to-date dataset is skipped and a different one is an error."
        ),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print no progress bars and no summary lines."),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step to stderr.")
    ] = False,
) -> None:
    """Convert legacy .bin validation files into WebDataset pair shards.

    Every source is checked before anything is written. Shards are written
    under temporary names and the manifest last, so an interrupted run never
    leaves a dataset that looks complete. Exit status: 0 on success, 2 for
    invalid input.
    """
    configure_logging(verbose)
    progress = TqdmProgress() if progress_enabled(quiet) else None
    results = convert_bins(sources, output, pairs_per_shard, overwrite, progress)
    if not quiet:
        for result in results:
            typer.echo(format_summary(result))


def format_summary(result: ConversionResult) -> str:
    """Return the one-line summary of a converted or skipped dataset."""
    manifest = result.manifest
    if result.skipped:
        return (
            f"{result.name}: up to date with {result.source}, nothing to do "
            f"({manifest.num_pairs} pairs in {result.dataset_dir}; --overwrite rebuilds it)"
        )
    megabytes = sum(shard.size for shard in manifest.shards) / 1e6
    return (
        f"{result.name}: {manifest.num_pairs} pairs ({manifest.num_positive} same, "
        f"{manifest.num_negative} different) in {_count(len(manifest.shards), 'shard')}, "
        f"{megabytes:.1f} MB -> {result.dataset_dir} ({result.seconds:.1f} s)"
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
