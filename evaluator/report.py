"""Presenting evaluation results: a text table with the classic log figures, and ROC plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from binconv.errors import BinconvError

from .evaluate import EvaluationResult

__all__ = ["format_table", "plot_roc"]

_COLUMNS = (
    "dataset",
    "pairs",
    "XNorm",
    "Accuracy-Flip",
    "VAL@FAR=1e-3",
    "FAR",
    "TAR@FAR=1e-3",
    "AUC",
    "EER",
    "time",
)


def _number(value: float, digits: int = 5) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _mean_std(mean: float, std: float) -> str:
    # The classic training log's format, `%1.5f+-%1.5f`.
    return "n/a" if math.isnan(mean) else f"{mean:1.5f}+-{std:1.5f}"


def _row(result: EvaluationResult) -> tuple[str, ...]:
    return (
        result.dataset,
        str(result.num_pairs),
        f"{result.xnorm:f}",
        _mean_std(result.accuracy, result.accuracy_std),
        _mean_std(result.val, result.val_std),
        _number(result.far),
        _number(result.tar_at_far[1e-3]),
        _number(result.auc),
        _number(result.eer),
        f"{result.timing.total_seconds:.1f}s",
    )


def format_table(results: Sequence[EvaluationResult]) -> str:
    """Format one row per result, with XNorm and Accuracy-Flip as the classic log prints them.

    Undefined metrics, such as VAL on a set without negative pairs, show as `n/a`.
    """
    rows = [_COLUMNS, *(_row(result) for result in results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def plot_roc(results: Sequence[EvaluationResult], path: Path) -> None:
    """Draw the ROC curve of each result into one PNG at `path`.

    The curves are the classic ones: TPR against FPR at each accuracy
    threshold, averaged over the folds. No pyplot state is touched.

    Raises:
        BinconvError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise BinconvError(
            "--plot needs matplotlib; install it with pip install 'binconv[plot]'"
        ) from None
    figure = Figure(figsize=(6, 5))
    axes = figure.subplots()
    for result in results:
        label = f"{result.dataset} (AUC {_number(result.auc, 4)})"
        axes.plot(result.roc_fpr, result.roc_tpr, label=label)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
