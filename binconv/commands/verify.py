"""`binconv verify`: prove that a converted dataset is a lossless copy of its `.bin` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..verify import verify_conversion
from . import configure_logging, exits_on_error

__all__ = ["verify_command"]


@exits_on_error
def verify_command(
    bin_path: Annotated[
        Path, typer.Argument(metavar="BIN", help="The legacy .bin file.", show_default=False)
    ],
    dataset_dir: Annotated[
        str,
        typer.Argument(
            metavar="DATASET_DIR",
            help="The converted dataset: its folder (OUT/NAME) or manifest (OUT/NAME/NAME.json).",
            show_default=False,
        ),
    ],
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step to stderr.")
    ] = False,
) -> None:
    """Check that a dataset contains the pairs of a .bin file, in order and byte for byte.

    Compares both images and issame of every pair, then each shard's size and
    SHA-256 with the manifest. Exit status: 0 if everything matches, 1 naming
    the first pair or shard that differs, 2 if either input cannot be read.
    """
    configure_logging(verbose)
    result = verify_conversion(bin_path, dataset_dir)
    checksums = (
        "1 shard checksum matches"
        if result.num_shards == 1
        else f"{result.num_shards} shard checksums match"
    )
    typer.echo(
        f"OK: {result.dataset_dir} matches {result.bin_path}: {result.num_pairs} pairs "
        f"byte-identical, {checksums} the manifest"
    )
