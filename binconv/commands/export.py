"""`binconv export`: write a converted dataset back to a legacy `.bin` file."""

from __future__ import annotations

from typing import Annotated

import typer

from ..export import export_dataset
from . import configure_logging, exits_on_error
from ._progress import TqdmProgress, progress_enabled

__all__ = ["export_command"]


@exits_on_error
def export_command(
    dataset: Annotated[
        str,
        typer.Argument(
            help="Dataset folder (OUTPUT/NAME) or its NAME.json manifest, as a path or URL.",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", help="Path or URL of the .bin file to write.", show_default=False
        ),
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the .bin file if it exists.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no progress bar and no summary line.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step on stderr.")
    ] = False,
) -> None:
    """Write a converted dataset as a legacy .bin file for tools that still need one.

    The file is a pickle of (images, issame) with the images as bytes, exactly
    as stored in the shards, and issame as a list of bools. Python 3 reads it
    with pickle.load(f) or pickle.load(f, encoding='bytes'), and converting
    it again gives byte-identical shards at the same --pairs-per-shard.
    """
    configure_logging(verbose)
    progress = TqdmProgress() if progress_enabled(quiet) else None
    result = export_dataset(dataset, output, overwrite=overwrite, progress=progress)
    if quiet:
        return
    typer.echo(
        f"{result.path}: {result.num_pairs} pairs ({result.num_positive} same, "
        f"{result.num_pairs - result.num_positive} different), {result.size / 1e6:.1f} MB"
    )
