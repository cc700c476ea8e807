"""Exceptions and warnings of the evaluator package."""

from __future__ import annotations

from binconv.errors import BinconvError

__all__ = ["EvaluationError", "UndefinedMetricWarning"]


class EvaluationError(BinconvError, ValueError):
    """Input that the evaluation cannot use, such as too few pairs or non-finite distances."""


class UndefinedMetricWarning(RuntimeWarning):
    """A metric is NaN because the pairs it needs are missing, such as a set without negatives.

    Accuracy is never affected. Filter this category to silence the warning.
    """
