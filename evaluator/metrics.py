"""Face-verification metrics of the classic 10-fold protocol, vectorised over thresholds.

Accuracy, fold thresholds and the ROC curve equal bit for bit what the classic insightface
evaluation (`recognition/arcface_torch/eval/verification.py`) computes with a Python loop
per threshold. VAL@FAR follows the same protocol but is defined where the classic code
crashes (see `threshold_at_far`). docs/evaluation.md states each definition. The module
also exports the embedding steps of `evaluator.distances`, so that one import suffices.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from evaluator.distances import pair_distances, pair_embeddings, xnorm
from evaluator.errors import EvaluationError, UndefinedMetricWarning
from evaluator.roc import compute_auc, compute_eer, compute_tar_at_far

__all__ = [
    "ACCURACY_THRESHOLDS",
    "TAR_FAR_TARGETS",
    "VAL_FAR_TARGET",
    "VAL_THRESHOLDS",
    "EvaluationError",
    "UndefinedMetricWarning",
    "VerificationMetrics",
    "compute_metrics",
    "pair_distances",
    "pair_embeddings",
    "threshold_at_far",
    "xnorm",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _read_only(array: FloatArray) -> FloatArray:
    array.setflags(write=False)
    return array


# The exact np.arange values of the classic code, because `distance < threshold` tests
# against them: 51 of the 400 differ from their decimal literal, such as 0.35000000000000003.
ACCURACY_THRESHOLDS = _read_only(np.arange(0, 4, 0.01))
VAL_THRESHOLDS = _read_only(np.arange(0, 4, 0.001))
VAL_FAR_TARGET = 1e-3
TAR_FAR_TARGETS = (1e-4, 1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class VerificationMetrics:
    """Verification metrics of one pair set; NaN marks a metric that the set leaves undefined.

    Attributes:
        num_pairs: Number of pairs.
        num_positive: Number of same-identity pairs.
        num_negative: Number of different-identity pairs.
        accuracy: Mean of the fold accuracies (the classic "Accuracy-Flip").
        accuracy_std: Population standard deviation of the fold accuracies.
        fold_accuracies: Accuracy on each held-out fold, in fold order.
        fold_thresholds: Distance threshold chosen on the other folds for each fold.
        val: Mean VAL (TAR) at FAR=1e-3 over the folds where it is defined.
        val_std: Population standard deviation of those fold VALs.
        far: Mean FAR at the VAL thresholds over the folds where it is defined.
        tar_at_far: TAR over all pairs at each FAR target of `TAR_FAR_TARGETS`.
        auc: Area under the ROC curve of all pairs.
        eer: Equal error rate of all pairs.
        roc_fpr: Classic mean over folds of the held-out FPR at each `ACCURACY_THRESHOLDS`.
        roc_tpr: Classic mean over folds of the held-out TPR at each `ACCURACY_THRESHOLDS`.
        fold_vals: VAL of each held-out fold, NaN where undefined.
        fold_fars: FAR of each held-out fold at its VAL threshold, NaN where undefined.
    """

    num_pairs: int
    num_positive: int
    num_negative: int
    accuracy: float
    accuracy_std: float
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    val: float
    val_std: float
    far: float
    tar_at_far: dict[float, float]
    auc: float
    eer: float
    roc_fpr: FloatArray = field(repr=False, compare=False)
    roc_tpr: FloatArray = field(repr=False, compare=False)
    fold_vals: tuple[float, ...] = ()
    fold_fars: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Convert to JSON-ready values.

        NaN becomes None, tuples and arrays become lists, and the `tar_at_far` keys become
        strings formatted with `:g`, such as "0.001".
        """
        return {
            item.name: _to_json_value(getattr(self, item.name)) for item in dataclasses.fields(self)
        }


def _to_json_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {f"{key:g}": _to_json_value(item) for key, item in value.items()}
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_to_json_value(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def compute_metrics(
    distances: npt.ArrayLike, issame: npt.ArrayLike, n_folds: int = 10
) -> VerificationMetrics:
    """Compute the verification metrics of pairs in file order with the classic folds.

    Folds are contiguous, as `KFold(n_folds, shuffle=False)` makes them: the first
    `num_pairs % n_folds` folds hold one more pair. Metrics that the pairs leave undefined,
    such as VAL without negative pairs, are NaN, and one `UndefinedMetricWarning` names them.

    Args:
        distances: Squared L2 distance of each pair, as `pair_distances` returns.
        issame: One flag per pair, true for a same-identity pair; bool or 0/1 values.
        n_folds: Number of folds, at least 2.

    Raises:
        EvaluationError: If there are fewer pairs than folds, the lengths differ, the arrays
            are not 1-D, a distance is negative or not finite, or an issame value is not 0/1.
    """
    distances, issame = _check_pairs(distances, issame, n_folds)
    fold_sizes = _fold_sizes(distances.size, n_folds)
    fold_ids = np.repeat(np.arange(n_folds), fold_sizes)

    accepted = _count_accepted(distances, issame, fold_ids, n_folds, ACCURACY_THRESHOLDS)
    class_counts = _class_counts(issame, fold_ids, n_folds)
    fold_accuracies, fold_thresholds = _fold_accuracies(accepted, class_counts, fold_sizes)
    roc_tpr, roc_fpr = _roc_curve(accepted, class_counts)
    fold_vals, fold_fars = _fold_vals(distances, issame, fold_ids, class_counts)

    problems = _undefined_metrics(class_counts, fold_vals, fold_fars)
    if problems:
        warnings.warn(
            "undefined verification metrics are NaN: " + "; ".join(problems),
            UndefinedMetricWarning,
            stacklevel=2,
        )
    val, val_std = _mean_and_std_of_defined(fold_vals)
    return VerificationMetrics(
        num_pairs=int(distances.size),
        num_positive=int(class_counts[:, 1].sum()),
        num_negative=int(class_counts[:, 0].sum()),
        accuracy=float(np.mean(fold_accuracies)),
        accuracy_std=float(np.std(fold_accuracies)),
        fold_accuracies=tuple(float(value) for value in fold_accuracies),
        fold_thresholds=tuple(float(value) for value in fold_thresholds),
        val=val,
        val_std=val_std,
        far=_mean_and_std_of_defined(fold_fars)[0],
        tar_at_far={
            target: compute_tar_at_far(distances, issame, target) for target in TAR_FAR_TARGETS
        },
        auc=compute_auc(distances, issame),
        eer=compute_eer(distances, issame),
        roc_fpr=_read_only(roc_fpr),
        roc_tpr=_read_only(roc_tpr),
        fold_vals=tuple(float(value) for value in fold_vals),
        fold_fars=tuple(float(value) for value in fold_fars),
    )


def _check_pairs(
    distances: npt.ArrayLike, issame: npt.ArrayLike, n_folds: int
) -> tuple[FloatArray, BoolArray]:
    """Convert distances to float64 and issame to bool, raising on invalid input."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise EvaluationError(f"n_folds must be an integer of at least 2, got {n_folds!r}")
    try:
        distances = np.asarray(distances, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise EvaluationError(f"distances must be real numbers: {error}") from error
    issame = np.asarray(issame)
    if distances.ndim != 1 or issame.ndim != 1:
        raise EvaluationError(
            f"distances and issame must be 1-D with one value per pair, got shapes "
            f"{distances.shape} and {issame.shape}"
        )
    if distances.size != issame.size:
        raise EvaluationError(
            f"distances has {distances.size} pairs but issame has {issame.size}; "
            "pass one issame flag per pair"
        )
    if distances.size < n_folds:
        raise EvaluationError(
            f"{distances.size} pairs are too few for {n_folds}-fold evaluation: every fold "
            f"needs at least one pair, so pass at least {n_folds} pairs"
        )
    _check_distance_values(distances)
    return distances, _as_bool_flags(issame)


def _check_distance_values(distances: FloatArray) -> None:
    bad_pairs = np.flatnonzero(~np.isfinite(distances))
    if bad_pairs.size:
        first = bad_pairs[0]
        raise EvaluationError(
            f"{bad_pairs.size} distances are not finite, first pair {first} "
            f"({distances[first]}); check the embeddings of images {2 * first} and {2 * first + 1}"
        )
    bad_pairs = np.flatnonzero(distances < 0)
    if bad_pairs.size:
        first = bad_pairs[0]
        raise EvaluationError(
            f"{bad_pairs.size} distances are negative, first pair {first} "
            f"({distances[first]}); pass squared L2 distances, which are never negative"
        )


def _as_bool_flags(issame: npt.NDArray[Any]) -> BoolArray:
    if issame.dtype == np.bool_:
        return issame
    if issame.dtype.kind not in "iuf" or not np.isin(issame, (0, 1)).all():
        raise EvaluationError(
            f"issame must hold booleans or 0/1 values, got dtype {issame.dtype} with values "
            f"{np.unique(issame)[:5].tolist()}"
        )
    return issame.astype(np.bool_)


def _fold_sizes(num_pairs: int, n_folds: int) -> IntArray:
    """Return the size of each contiguous fold; the first `num_pairs % n_folds` get one more."""
    sizes = np.full(n_folds, num_pairs // n_folds, dtype=np.int64)
    sizes[: num_pairs % n_folds] += 1
    return sizes


def _class_counts(issame: BoolArray, fold_ids: IntArray, n_folds: int) -> IntArray:
    """Return the negative and positive pair counts of each fold, shape (n_folds, 2)."""
    counts = np.bincount(fold_ids * 2 + issame, minlength=2 * n_folds)
    return counts.reshape(n_folds, 2).astype(np.int64)


def _count_accepted(
    distances: FloatArray,
    issame: BoolArray,
    fold_ids: IntArray,
    n_folds: int,
    thresholds: FloatArray,
) -> IntArray:
    """Count the pairs with `distance < threshold` for each fold, class and threshold.

    Returns:
        An array of shape (n_folds, 2, len(thresholds)); class 0 counts negative pairs and
        class 1 positive pairs.
    """
    num_bins = thresholds.size + 1
    # `distance < thresholds[j]` is true exactly when j >= the number of thresholds that are
    # <= distance, so equal values are rejected as in the classic np.less.
    bins = np.searchsorted(thresholds, distances, side="right")
    keys = (fold_ids * 2 + issame) * num_bins + bins
    histogram = np.bincount(keys, minlength=n_folds * 2 * num_bins)
    histogram = histogram.reshape(n_folds, 2, num_bins)
    return np.cumsum(histogram, axis=2, dtype=np.int64)[:, :, :-1]


def _fold_accuracies(
    accepted: IntArray, class_counts: IntArray, fold_sizes: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Return each fold's held-out accuracy and the threshold chosen on the other folds."""
    true_accepts = accepted[:, 1]
    true_rejects = class_counts[:, 0, np.newaxis] - accepted[:, 0]
    correct = true_accepts + true_rejects
    train_correct = correct.sum(axis=0) - correct
    train_sizes = fold_sizes.sum() - fold_sizes
    # Same float64 division as the classic code, so argmax breaks ties the same way.
    train_accuracies = train_correct / train_sizes[:, np.newaxis]
    best = np.argmax(train_accuracies, axis=1)
    fold_accuracies = correct[np.arange(best.size), best] / fold_sizes
    return fold_accuracies, ACCURACY_THRESHOLDS[best]


def _roc_curve(accepted: IntArray, class_counts: IntArray) -> tuple[FloatArray, FloatArray]:
    """Return the classic ROC curve: held-out TPR and FPR per threshold, averaged over folds.

    As in the classic code, a fold without positive pairs counts as TPR 0 and a fold
    without negative pairs as FPR 0.
    """
    tprs = _rates(accepted[:, 1], class_counts[:, 1])
    fprs = _rates(accepted[:, 0], class_counts[:, 0])
    return np.mean(tprs, axis=0), np.mean(fprs, axis=0)


def _rates(counts: IntArray, totals: IntArray) -> FloatArray:
    rates = np.zeros(counts.shape, dtype=np.float64)
    np.divide(counts, totals[:, np.newaxis], out=rates, where=totals[:, np.newaxis] > 0)
    return rates


def _fold_vals(
    distances: FloatArray, issame: BoolArray, fold_ids: IntArray, class_counts: IntArray
) -> tuple[FloatArray, FloatArray]:
    """Return the VAL and FAR of each held-out fold at its FAR=1e-3 threshold, NaN if undefined.

    The threshold comes from the FAR curve of the other folds; it is undefined when those
    hold no negative pair. A fold's VAL is undefined without positive pairs, its FAR
    without negative pairs.
    """
    n_folds = class_counts.shape[0]
    accepted = _count_accepted(distances, issame, fold_ids, n_folds, VAL_THRESHOLDS)
    train_false_accepts = accepted[:, 0].sum(axis=0) - accepted[:, 0]
    train_negatives = class_counts[:, 0].sum() - class_counts[:, 0]

    vals = np.full(n_folds, math.nan)
    fars = np.full(n_folds, math.nan)
    for fold in range(n_folds):
        if train_negatives[fold] == 0:
            continue
        far_curve = train_false_accepts[fold] / train_negatives[fold]
        threshold = threshold_at_far(far_curve, VAL_THRESHOLDS, VAL_FAR_TARGET)
        in_fold = fold_ids == fold
        same = issame[in_fold]
        accepted_in_fold = distances[in_fold] < threshold
        num_positive, num_negative = class_counts[fold, 1], class_counts[fold, 0]
        if num_positive:
            vals[fold] = int(np.count_nonzero(accepted_in_fold & same)) / int(num_positive)
        if num_negative:
            fars[fold] = int(np.count_nonzero(accepted_in_fold & ~same)) / int(num_negative)
    return vals, fars


def threshold_at_far(far: FloatArray, thresholds: FloatArray, target: float) -> float:
    """Find the threshold at which a FAR curve reaches `target`, by linear interpolation.

    This is the classic `interp1d(far, thresholds, kind='slinear')(target)` extended to FAR
    curves with repeated values, on which recent SciPy raises "Expect x to not have
    duplicates" (checked with SciPy 1.17):

    - If `max(far) < target`, the threshold is 0.0, as in the classic code.
    - Otherwise it lies on the segment from `j` to `j + 1`, where `j` is the last index
      with `far[j] <= target`, but at most `len(far) - 2`. The arithmetic is that of SciPy's
      degree-1 B-spline, so a strictly increasing curve gives SciPy's value bit for bit, and
      a flat run at exactly `target` gives (to rounding) its last threshold.
    - If the curve ends in a flat run at exactly `target`, the threshold is `thresholds[-1]`.

    Args:
        far: Non-decreasing FAR at each threshold.
        thresholds: Increasing thresholds, as many as `far` and at least 2.
        target: The FAR to reach, at least `far[0]`.

    Raises:
        EvaluationError: If the lengths differ or are below 2, or `target < far[0]`.
    """
    far = np.asarray(far, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if far.shape != thresholds.shape or far.ndim != 1 or far.size < 2:
        raise EvaluationError(
            f"far and thresholds must be 1-D of the same length, at least 2, got shapes "
            f"{far.shape} and {thresholds.shape}"
        )
    if np.max(far) < target:
        return 0.0
    if target < far[0]:
        raise EvaluationError(
            f"FAR target {target} is below the FAR curve, which starts at {far[0]}"
        )

    lower = min(int(np.searchsorted(far, target, side="right")) - 1, far.size - 2)
    upper = lower + 1
    far_lower, far_upper = float(far[lower]), float(far[upper])
    if far_upper == far_lower:
        return float(thresholds[-1])
    # The order of operations of SciPy's B-spline evaluation (de Boor with one step).
    weight = 1.0 / (far_upper - far_lower)
    lower_part = float(thresholds[lower]) * (weight * (far_upper - target))
    upper_part = float(thresholds[upper]) * (weight * (target - far_lower))
    return lower_part + upper_part


def _mean_and_std_of_defined(values: FloatArray) -> tuple[float, float]:
    """Return the mean and population std of the non-NaN values, NaN if there are none."""
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return math.nan, math.nan
    return float(np.mean(defined)), float(np.std(defined))


def _undefined_metrics(
    class_counts: IntArray, fold_vals: FloatArray, fold_fars: FloatArray
) -> list[str]:
    """Describe each metric that the pairs leave undefined, for the warning."""
    problems = []
    num_negative, num_positive = class_counts.sum(axis=0)
    if num_positive == 0 or num_negative == 0:
        missing = "positive" if num_positive == 0 else "negative"
        problems.append(f"the pairs include no {missing} pair, so TAR@FAR, AUC and EER are NaN")
    for name, values in (("VAL", fold_vals), ("FAR", fold_fars)):
        undefined_folds = np.flatnonzero(np.isnan(values)).tolist()
        if len(undefined_folds) == values.size:
            problems.append(f"{name} at FAR=1e-3 is undefined in every fold, so it is NaN")
        elif undefined_folds:
            problems.append(
                f"{name} at FAR=1e-3 is undefined in folds {undefined_folds} and averages "
                "the other folds"
            )
    return problems
