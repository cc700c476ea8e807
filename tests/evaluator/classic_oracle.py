"""Plain loop implementation of the classic verification protocol, the oracle of the tests.

It evaluates one threshold at a time, as the classic insightface evaluation does, and
crashes where that code crashes: recent SciPy (1.17 here) rejects repeated FAR values in
`interp1d`, and a set without negative or positive pairs divides by zero. The metrics
tests compare `evaluator.metrics` against it; nothing else imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.interpolate import BSpline, interp1d
from sklearn.metrics import roc_curve
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)


@dataclass(frozen=True)
class ClassicRoc:
    """Results of the classic accuracy loop."""

    fold_accuracies: FloatArray
    fold_thresholds: FloatArray
    tpr: FloatArray
    fpr: FloatArray


@dataclass(frozen=True)
class ClassicVal:
    """Results of the classic VAL@FAR loop."""

    val: float
    val_std: float
    far: float
    fold_vals: FloatArray
    fold_fars: FloatArray


def fold_splits(num_pairs: int, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return (train, test) pair indices per fold, from scikit-learn's unshuffled KFold."""
    return list(KFold(n_splits=n_folds, shuffle=False).split(np.arange(num_pairs)))


def rates_at(
    threshold: float, distances: FloatArray, issame: BoolArray
) -> tuple[float, float, float]:
    """Return TPR, FPR (0 without positives or negatives) and accuracy at one threshold."""
    accepted = np.less(distances, threshold)
    true_accepts = int(np.sum(accepted & issame))
    false_accepts = int(np.sum(accepted & ~issame))
    true_rejects = int(np.sum(~accepted & ~issame))
    false_rejects = int(np.sum(~accepted & issame))
    positives = true_accepts + false_rejects
    negatives = false_accepts + true_rejects
    tpr = 0.0 if positives == 0 else float(true_accepts) / float(positives)
    fpr = 0.0 if negatives == 0 else float(false_accepts) / float(negatives)
    accuracy = float(true_accepts + true_rejects) / distances.size
    return tpr, fpr, accuracy


def classic_roc(distances: FloatArray, issame: BoolArray, n_folds: int = 10) -> ClassicRoc:
    """Run the classic accuracy protocol with one loop iteration per threshold and fold."""
    thresholds = ACCURACY_THRESHOLDS
    tprs = np.zeros((n_folds, thresholds.size))
    fprs = np.zeros((n_folds, thresholds.size))
    fold_accuracies = np.zeros(n_folds)
    fold_thresholds = np.zeros(n_folds)
    for fold, (train, test) in enumerate(fold_splits(distances.size, n_folds)):
        train_distances, train_issame = distances[train], issame[train]
        test_distances, test_issame = distances[test], issame[test]
        train_accuracies = np.zeros(thresholds.size)
        for index, threshold in enumerate(thresholds):
            train_accuracies[index] = rates_at(threshold, train_distances, train_issame)[2]
        best = int(np.argmax(train_accuracies))
        for index, threshold in enumerate(thresholds):
            tprs[fold, index], fprs[fold, index], _ = rates_at(
                threshold, test_distances, test_issame
            )
        fold_accuracies[fold] = rates_at(thresholds[best], test_distances, test_issame)[2]
        fold_thresholds[fold] = thresholds[best]
    return ClassicRoc(fold_accuracies, fold_thresholds, np.mean(tprs, 0), np.mean(fprs, 0))


def val_far_at(threshold: float, distances: FloatArray, issame: BoolArray) -> tuple[float, float]:
    """Return VAL and FAR at one threshold; raises ZeroDivisionError like the classic code."""
    accepted = np.less(distances, threshold)
    true_accepts = int(np.sum(accepted & issame))
    false_accepts = int(np.sum(accepted & ~issame))
    val = float(true_accepts) / float(np.sum(issame))
    far = float(false_accepts) / float(np.sum(~issame))
    return val, far


def spline_threshold(far: FloatArray, thresholds: FloatArray, target: float) -> float:
    """Evaluate the degree-1 B-spline that `interp1d(kind='slinear')` builds, duplicates kept.

    SciPy builds its knots as `[x0, x0, x1, ..., x_last, x_last]` with the y values as
    coefficients; building the same BSpline directly skips the duplicate check.
    """
    spline = BSpline(np.r_[far[0], far, far[-1]], thresholds, k=1)
    return float(spline(target))


def classic_val(
    distances: FloatArray,
    issame: BoolArray,
    n_folds: int = 10,
    far_target: float = 1e-3,
    allow_repeated_far: bool = False,
) -> ClassicVal:
    """Run the classic VAL@FAR protocol with one loop iteration per threshold and fold.

    With `allow_repeated_far`, a FAR curve with repeated values is interpolated by
    `spline_threshold` instead of the `interp1d` call that raises on it.
    """
    thresholds = VAL_THRESHOLDS
    fold_vals = np.zeros(n_folds)
    fold_fars = np.zeros(n_folds)
    for fold, (train, test) in enumerate(fold_splits(distances.size, n_folds)):
        train_distances, train_issame = distances[train], issame[train]
        far_train = np.zeros(thresholds.size)
        for index, threshold in enumerate(thresholds):
            far_train[index] = val_far_at(threshold, train_distances, train_issame)[1]
        if np.max(far_train) < far_target:
            threshold = 0.0
        elif allow_repeated_far and np.any(np.diff(far_train) == 0):
            threshold = spline_threshold(far_train, thresholds, far_target)
        else:
            threshold = float(interp1d(far_train, thresholds, kind="slinear")(far_target))
        fold_vals[fold], fold_fars[fold] = val_far_at(threshold, distances[test], issame[test])
    return ClassicVal(
        float(np.mean(fold_vals)),
        float(np.std(fold_vals)),
        float(np.mean(fold_fars)),
        fold_vals,
        fold_fars,
    )


def classic_xnorm(emb: np.ndarray, emb_flip: np.ndarray) -> float:
    """Return the mean float64 L2 norm of all rows, summed one at a time, originals first."""
    total = 0.0
    count = 0
    for embeddings in (np.asarray(emb, np.float64), np.asarray(emb_flip, np.float64)):
        for row in embeddings:
            total += np.linalg.norm(row)
            count += 1
    return float(total / count)


def classic_pair_embeddings(emb: np.ndarray, emb_flip: np.ndarray) -> FloatArray:
    """Normalise the float64 sum of embeddings and mirrors with scikit-learn."""
    summed = np.asarray(emb, np.float64) + np.asarray(emb_flip, np.float64)
    return normalize(summed)


def loop_pair_distances(pair_emb: FloatArray) -> FloatArray:
    """Compute each pair's squared L2 distance in its own loop iteration."""
    num_pairs = pair_emb.shape[0] // 2
    distances = np.zeros(num_pairs)
    for pair in range(num_pairs):
        distances[pair] = np.sum(np.square(pair_emb[2 * pair] - pair_emb[2 * pair + 1]))
    return distances


def loop_tar_at_far(distances: FloatArray, issame: BoolArray, far_target: float) -> float:
    """Try every distance and infinity as threshold; keep the largest with FAR <= target."""
    negatives = distances[~issame]
    positives = distances[issame]
    best = -np.inf
    for threshold in [*np.unique(distances), np.inf]:
        far = np.count_nonzero(negatives < threshold) / negatives.size
        if far <= far_target:
            best = max(best, threshold)
    return np.count_nonzero(positives < best) / positives.size


def loop_eer(distances: FloatArray, issame: BoolArray) -> float:
    """Walk scikit-learn's full ROC curve until FAR - FRR changes sign, then interpolate."""
    far, tar, _ = roc_curve(issame, -distances, drop_intermediate=False)
    for index in range(1, far.size):
        before = far[index - 1] - (1 - tar[index - 1])
        after = far[index] - (1 - tar[index])
        if after >= 0:
            if after == 0:
                return float(far[index])
            fraction = -before / (after - before)
            return float(far[index - 1] + fraction * (far[index] - far[index - 1]))
    raise AssertionError("the ROC curve never reaches FAR = FRR")
