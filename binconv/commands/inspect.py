"""`binconv inspect`: what a `.bin` file or converted dataset contains."""

from __future__ import annotations

from typing import Annotated

import typer

from ..inspection import InspectionReport, inspect_path
from . import configure_logging, exits_on_error

__all__ = ["format_report", "inspect_command"]


@exits_on_error
def inspect_command(
    path: Annotated[
        str,
        typer.Argument(
            help="A legacy .bin file, or a converted dataset's folder or manifest.",
            show_default=False,
        ),
    ],
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON, for scripts.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step to stderr.")
    ] = False,
) -> None:
    """Show pair counts, image formats and sizes, pickle protocol and sizes in bytes.

    Reads every image's header, so the counts cover all images. Exit status:
    0 on success, 2 if the input is missing or invalid.
    """
    configure_logging(verbose)
    report = inspect_path(path)
    typer.echo(report.to_json() if json_output else format_report(report))


def format_report(report: InspectionReport) -> str:
    """Return the report as aligned text lines."""
    shards = "1 shard" if report.num_shards == 1 else f"{report.num_shards} shards"
    kind = ".bin file" if report.kind == "bin" else f"dataset of {shards}"
    lines = [
        f"{report.path} ({kind})",
        f"  pairs:      {report.num_pairs} ({report.num_positive} same person, "
        f"{report.num_negative} different people)",
        f"  images:     {2 * report.num_pairs}",
        f"  formats:    {_counts(report.image_formats)}",
        f"  sizes:      {_counts(report.image_sizes)}",
        f"  modes:      {_counts(report.image_modes)}",
        f"  pickle:     protocol {report.pickle_protocol}, images stored as "
        f"{report.image_container}",
        f"  bytes:      {report.file_bytes:,} on disk, {report.image_bytes:,} in encoded images",
        f"  sha256:     {report.source_sha256}"
        + ("" if report.kind == "bin" else " (of the source .bin file)"),
    ]
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{name} {count}" for name, count in ordered) or "none"
