"""Verification metrics over all pairs at once: TAR@FAR, ROC AUC and EER.

Unlike the 10-fold metrics, these use no folds and the exact ROC curve, whose thresholds
are the distances themselves. A pair is accepted when its distance is below the threshold.
FAR is the fraction of negative (different-identity) pairs accepted, TAR the fraction of
positive (same-identity) pairs accepted and FRR = 1 - TAR. Every function returns NaN
when the pairs include no positive or no negative pair; the caller warns.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["compute_auc", "compute_eer", "compute_tar_at_far"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def compute_tar_at_far(distances: FloatArray, issame: BoolArray, far_target: float) -> float:
    """Compute the TAR at the largest threshold whose FAR is at most `far_target`.

    With `k` the largest number of false accepts such that `k / num_negative <= far_target`,
    that threshold is the (k+1)-th smallest negative distance, because `distance < threshold`
    then accepts at most `k` negatives. If `k` equals the number of negatives, every pair is
    accepted and the TAR is 1.

    Args:
        distances: One finite distance per pair.
        issame: One flag per pair, True for a positive pair.
        far_target: The maximum FAR, such as 1e-3.

    Returns:
        The TAR, or NaN without positive or negative pairs.
    """
    positives = np.sort(distances[issame])
    negatives = np.sort(distances[~issame])
    if positives.size == 0 or negatives.size == 0:
        return math.nan

    max_false_accepts = _max_false_accepts(negatives.size, far_target)
    if max_false_accepts >= negatives.size:
        return 1.0
    threshold = negatives[max_false_accepts]
    return int(np.searchsorted(positives, threshold, side="left")) / positives.size


def _max_false_accepts(num_negative: int, far_target: float) -> int:
    """Return the largest count `k` with `k / num_negative <= far_target` in float64."""
    count = math.floor(far_target * num_negative)
    # The product can round across an integer, so correct with the division that FAR uses.
    if (count + 1) / num_negative <= far_target:
        count += 1
    while count > 0 and count / num_negative > far_target:
        count -= 1
    return max(count, 0)


def compute_auc(distances: FloatArray, issame: BoolArray) -> float:
    """Compute the exact ROC AUC with `-distance` as the score.

    The AUC is the probability that a random positive pair has a smaller distance than a
    random negative pair, with ties counted as one half, the value that
    `sklearn.metrics.roc_auc_score(issame, -distances)` approximates by the trapezoidal
    rule. Integer counts keep it exact up to the final division.

    Returns:
        The AUC, or NaN without positive or negative pairs.
    """
    positives = distances[issame]
    negatives = np.sort(distances[~issame])
    if positives.size == 0 or negatives.size == 0:
        return math.nan

    negatives_below = np.searchsorted(negatives, positives, side="left")
    negatives_not_above = np.searchsorted(negatives, positives, side="right")
    wins = int(np.sum(negatives.size - negatives_not_above))
    ties = int(np.sum(negatives_not_above - negatives_below))
    return (2 * wins + ties) / (2 * positives.size * negatives.size)


def compute_eer(distances: FloatArray, issame: BoolArray) -> float:
    """Compute the equal error rate, where FAR equals FRR on the ROC curve.

    The ROC curve joins by straight lines the point (0, 0) and the points (FAR, TAR) of the
    thresholds just above each distinct distance, so a tie between positive and negative
    pairs is a diagonal segment. On the segment where FAR - FRR changes sign, the EER is
    the FAR of the point where FAR - FRR is zero.

    Returns:
        The EER, or NaN without positive or negative pairs.
    """
    num_positive = int(np.count_nonzero(issame))
    num_negative = issame.size - num_positive
    if num_positive == 0 or num_negative == 0:
        return math.nan

    true_accepts, false_accepts = _roc_counts(distances, issame)
    # (FAR - FRR) * num_positive * num_negative, in integers so that the sign test is exact.
    balance = false_accepts * num_positive + true_accepts * num_negative
    balance -= num_positive * num_negative
    # balance starts at -P*N at (0, 0) and ends at +P*N at (1, 1), so upper >= 1.
    upper = int(np.argmax(balance >= 0))
    lower = upper - 1
    # fraction is 1 when the upper point itself has FAR = FRR.
    fraction = -balance[lower] / (balance[upper] - balance[lower])
    false_accepts_at_eer = false_accepts[lower] + fraction * (
        false_accepts[upper] - false_accepts[lower]
    )
    return float(false_accepts_at_eer) / num_negative


def _roc_counts(
    distances: FloatArray, issame: BoolArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the true and false accept counts of each ROC point, starting with (0, 0)."""
    order = np.argsort(distances, kind="stable")
    sorted_distances = distances[order]
    true_accepts = np.cumsum(issame[order], dtype=np.int64)
    false_accepts = np.arange(1, distances.size + 1, dtype=np.int64) - true_accepts

    # The last pair of each run of equal distances closes one ROC point.
    run_ends = np.flatnonzero(np.append(sorted_distances[1:] != sorted_distances[:-1], True))
    zero = np.zeros(1, dtype=np.int64)
    return (
        np.concatenate([zero, true_accepts[run_ends]]),
        np.concatenate([zero, false_accepts[run_ends]]),
    )
