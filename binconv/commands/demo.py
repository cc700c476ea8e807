"""`binconv demo`: run the main job on generated sample data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..demo import DEFAULT_DEMO_DIR, DEMO_NUM_PAIRS, run_demo
from . import configure_logging, exits_on_error
from ._progress import TqdmProgress, progress_enabled
from .convert import format_summary
from .evaluate import EVALUATION_FOLDS, evaluate_demo, format_results
from .inspect import format_report

__all__ = ["demo_command"]


@exits_on_error
def demo_command(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for the generated .bin file and its converted dataset."),
    ] = DEFAULT_DEMO_DIR,
    pairs: Annotated[
        int, typer.Option(min=2, help="Number of generated pairs; half are positive.")
    ] = DEMO_NUM_PAIRS,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no progress bar and no report.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each step to stderr.")
    ] = False,
) -> None:
    """Generate a sample .bin of face-like images, convert, inspect, verify and evaluate it.

    Writes OUT/demo.bin and the dataset OUT/shards/demo/, replacing those of
    an earlier demo run, then evaluates the built-in demo model on it, which
    embeds 8x8 grayscale thumbnails and has no learned weights.
    """
    configure_logging(verbose)
    progress = TqdmProgress() if progress_enabled(quiet) else None
    result = run_demo(out, pairs, progress)
    # The 10-fold protocol needs a pair per fold, so smaller demos skip it.
    evaluated = pairs >= EVALUATION_FOLDS
    evaluation = evaluate_demo(result.conversion.dataset_dir, quiet) if evaluated else None
    if quiet:
        return
    typer.echo(f"wrote {result.bin_path}: {pairs} generated pairs of 112x112 JPEG faces")
    typer.echo(format_summary(result.conversion))
    typer.echo(format_report(result.report))
    typer.echo(
        f"verified: {result.verification.num_pairs} pairs byte-identical to {result.bin_path}"
    )
    if evaluation is None:
        typer.echo(
            f"skipped evaluating the demo model: the {EVALUATION_FOLDS}-fold protocol needs "
            f"at least {EVALUATION_FOLDS} pairs, got {pairs}"
        )
        return
    typer.echo("evaluated the built-in demo model (evaluator.demo_model:build_demo_model):")
    typer.echo(format_results([evaluation]))
