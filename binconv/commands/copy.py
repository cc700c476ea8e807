"""`binconv copy`: publish converted datasets to object storage, or download them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from tqdm import tqdm

from ..copy import CopyResult, copy_dataset
from ..dataset_reader import locate_datasets
from . import configure_logging, exits_on_error
from ._progress import progress_enabled

__all__ = ["copy_command", "format_copy_summary"]


@exits_on_error
def copy_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A dataset's folder or manifest, or a folder of datasets, as a local path "
            "or s3://, gs://, http(s):// URL.",
            metavar="SRC",
            show_default=False,
        ),
    ],
    destination: Annotated[
        str,
        typer.Argument(
            help="Folder that receives one folder per dataset (DST/NAME/NAME.json), as a "
            "local path or s3://, gs:// URL.",
            metavar="DST",
            show_default=False,
        ),
    ],
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace a different dataset of the same name at the destination."),
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print no progress bar and no summary lines."),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Log each step to stderr. Retries are logged without it too."
        ),
    ] = False,
) -> None:
    """Copy converted datasets between local disk, S3, GCS and HTTP, verifying every shard.

    Shards are copied first and the manifest last. Each shard is hashed while
    it streams from the source and read back from the destination, and both
    must match the manifest's SHA-256. Shards already at the destination with
    the right SHA-256 are kept, so rerunning an interrupted copy resumes it.
    Exit status: 0 on success, 2 on a missing or corrupt shard, a failed
    transfer, or a different dataset at the destination without --overwrite.
    """
    configure_logging(verbose)
    locations = locate_datasets(source)
    total = sum(shard.size for location in locations for shard in location.manifest.shards)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="copy",
        file=sys.stderr,
        disable=not progress_enabled(quiet),
        leave=False,
    ) as bar:
        results = [
            copy_dataset(location, destination, overwrite=overwrite, on_bytes=bar.update)
            for location in locations
        ]
    if not quiet:
        for result in results:
            typer.echo(format_copy_summary(result))


def format_copy_summary(result: CopyResult) -> str:
    """Return the one-line summary of one copied dataset."""
    if not result.manifest_written:
        return f"{result.name}: up to date at {result.destination}, nothing to do"
    megabytes = result.copied_bytes / 1e6
    return (
        f"{result.name}: {result.copied_shards} shards ({megabytes:.1f} MB) copied and "
        f"verified, {result.present_shards} already present -> {result.destination}"
    )
