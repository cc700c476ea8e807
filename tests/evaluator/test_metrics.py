"""Tests of evaluator.metrics against the plain loop oracle and scikit-learn."""

from __future__ import annotations

import json
import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.interpolate import interp1d
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import normalize

from binconv.errors import BinconvError
from evaluator.errors import EvaluationError, UndefinedMetricWarning
from evaluator.metrics import (
    ACCURACY_THRESHOLDS,
    TAR_FAR_TARGETS,
    VAL_THRESHOLDS,
    compute_metrics,
    pair_distances,
    pair_embeddings,
    threshold_at_far,
    xnorm,
)
from evaluator.roc import compute_auc, compute_eer, compute_tar_at_far
from tests.evaluator import classic_oracle as oracle

# Distances equal to thresholds, or to each other, test that `distance < threshold`
# rejects equal values in the vectorised code as np.less does in the loop.
TIE_DISTANCES = [0.0, 0.5, 1.0, 1.5, 2.0, float(ACCURACY_THRESHOLDS[35]), 0.35, 0.3, 3.99, 4.0]


def property_settings(max_examples: int) -> settings:
    """Hypothesis settings without time limits, which a busy CI machine would break."""
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


@st.composite
def pair_sets(
    draw: st.DrawFn, min_pairs: int = 10, max_pairs: int = 150, both_classes: bool = False
) -> tuple:
    """Draw distances and issame flags with ties, grid values and uneven fold sizes.

    With `both_classes`, pair 0 is positive and pair 1 negative.
    """
    num_pairs = draw(st.integers(min_pairs, max_pairs))
    kind = draw(st.sampled_from(["continuous", "ties", "quantised", "accuracy grid"]))
    if kind == "continuous":
        elements = st.floats(0, 4.5, allow_nan=False)
    elif kind == "ties":
        elements = st.sampled_from(TIE_DISTANCES)
    elif kind == "quantised":
        elements = st.integers(0, 64).map(lambda step: step / 16)
    else:
        elements = st.sampled_from(ACCURACY_THRESHOLDS.tolist())
    distances = draw(hnp.arrays(np.float64, num_pairs, elements=elements))
    issame = draw(hnp.arrays(np.bool_, num_pairs))
    if both_classes:
        issame[:2] = [True, False]
    return distances, issame


def metrics_quietly(distances: np.ndarray, issame: np.ndarray, n_folds: int = 10):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return compute_metrics(distances, issame, n_folds)


def lfw_like_distances(seed: int, num_pairs: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Distances of random embeddings; each fold holds a block of positives, then negatives.

    LFW's 6000 pairs are laid out this way: ten folds of 300 positive, then 300 negative.
    """
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((2 * num_pairs, 64)).astype(np.float32)
    block = num_pairs // 20
    issame = np.tile(np.repeat([True, False], block), 11)[:num_pairs]
    noise = rng.standard_normal((int(issame.sum()), 64)).astype(np.float32)
    emb[1::2][issame] = emb[0::2][issame] + 1.2 * noise
    emb_flip = emb + 0.3 * rng.standard_normal(emb.shape).astype(np.float32)
    return pair_distances(pair_embeddings(emb, emb_flip)), issame


def assert_accuracy_equals_oracle(metrics, classic: oracle.ClassicRoc) -> None:
    assert metrics.fold_accuracies == tuple(classic.fold_accuracies)
    assert metrics.fold_thresholds == tuple(classic.fold_thresholds)
    assert metrics.accuracy == np.mean(classic.fold_accuracies)
    assert metrics.accuracy_std == np.std(classic.fold_accuracies)
    assert np.array_equal(metrics.roc_tpr, classic.tpr)
    assert np.array_equal(metrics.roc_fpr, classic.fpr)


# Accuracy against the oracle


@property_settings(40)
@given(pair_sets())
def test_accuracy_equals_oracle_bit_for_bit(pairs: tuple) -> None:
    distances, issame = pairs
    metrics = metrics_quietly(distances, issame)
    assert_accuracy_equals_oracle(metrics, oracle.classic_roc(distances, issame))


@property_settings(10)
@given(pair_sets(min_pairs=5, max_pairs=60), st.integers(2, 5))
def test_accuracy_equals_oracle_for_other_fold_counts(pairs: tuple, n_folds: int) -> None:
    distances, issame = pairs
    metrics = metrics_quietly(distances, issame, n_folds)
    assert len(metrics.fold_accuracies) == n_folds
    assert_accuracy_equals_oracle(metrics, oracle.classic_roc(distances, issame, n_folds))


@pytest.mark.parametrize("num_pairs", [6000, 6007])
def test_accuracy_equals_oracle_on_lfw_sized_set(num_pairs: int) -> None:
    distances, issame = lfw_like_distances(seed=num_pairs, num_pairs=num_pairs)
    metrics = compute_metrics(distances, issame)
    assert 0.6 < metrics.accuracy < 1.0
    assert_accuracy_equals_oracle(metrics, oracle.classic_roc(distances, issame))


def test_fold_sizes_follow_kfold_for_uneven_counts() -> None:
    # 23 pairs: folds of 3, 3, 3 then 2; every pair positive at distance 0 counts as correct,
    # except one rejected pair per fold, so each accuracy reveals its fold size.
    num_pairs = 23
    distances = np.zeros(num_pairs)
    issame = np.ones(num_pairs, dtype=bool)
    for _, test in oracle.fold_splits(num_pairs, 10):
        distances[test[0]] = 3.995
    metrics = metrics_quietly(distances, issame)
    sizes = [test.size for _, test in oracle.fold_splits(num_pairs, 10)]
    assert sizes == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert metrics.fold_accuracies == tuple((size - 1) / size for size in sizes)


def test_threshold_ties_pick_first_best_threshold() -> None:
    # Positives at 0.5 and negatives at 1.0: every threshold in (0.5, 1.0] is perfect, and
    # the first of them, 0.51, must win; 0.5 itself rejects the positives.
    distances = np.tile([0.5, 1.0], 10)
    issame = np.tile([True, False], 10)
    metrics = compute_metrics(distances, issame)
    assert metrics.fold_thresholds == (float(ACCURACY_THRESHOLDS[51]),) * 10
    assert metrics.accuracy == 1.0
    assert metrics.accuracy_std == 0.0


def test_distance_equal_to_threshold_is_rejected() -> None:
    threshold = float(ACCURACY_THRESHOLDS[50])
    assert threshold == 0.5
    # Every pair sits exactly on a threshold, so each is rejected there.
    distances = np.tile([threshold, float(ACCURACY_THRESHOLDS[60])], 10)
    issame = np.tile([True, False], 10)
    metrics = compute_metrics(distances, issame)
    assert metrics.fold_thresholds == (float(ACCURACY_THRESHOLDS[51]),) * 10
    assert_accuracy_equals_oracle(metrics, oracle.classic_roc(distances, issame))


# VAL@FAR against the oracle


def with_both_classes_per_fold(issame: np.ndarray, n_folds: int = 10) -> np.ndarray:
    issame = issame.copy()
    for _, test in oracle.fold_splits(issame.size, n_folds):
        issame[test[0]] = True
        issame[test[1]] = False
    return issame


@property_settings(12)
@given(pair_sets(min_pairs=20, max_pairs=120))
def test_val_equals_oracle_with_repeated_far(pairs: tuple) -> None:
    distances, issame = pairs
    issame = with_both_classes_per_fold(issame)
    metrics = compute_metrics(distances, issame)
    classic = oracle.classic_val(distances, issame, allow_repeated_far=True)
    assert metrics.fold_vals == tuple(classic.fold_vals)
    assert metrics.fold_fars == tuple(classic.fold_fars)
    assert metrics.val == classic.val
    assert metrics.val_std == classic.val_std
    assert metrics.far == classic.far


def strictly_increasing_far_set(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose training FAR curves rise at every VAL threshold, so interp1d accepts them.

    Each interval between VAL thresholds contains two negative distances at least 3999 pairs
    apart, farther than a fold is long, so every training set keeps one of them.
    """
    rng = np.random.default_rng(seed)
    lower = VAL_THRESHOLDS[:-1]
    inside = (lower + rng.uniform(0.05, 0.95, lower.size) * 0.001)[rng.permutation(lower.size)]
    negatives = np.concatenate([inside, inside])
    num_pairs = negatives.size + 2000
    issame = np.zeros(num_pairs, dtype=bool)
    issame[rng.choice(num_pairs, 2000, replace=False)] = True
    distances = np.empty(num_pairs)
    distances[~issame] = negatives
    distances[issame] = rng.uniform(0.0, 1.5, 2000)
    return distances, issame


def test_val_equals_scipy_interp1d_where_it_works() -> None:
    distances, issame = strictly_increasing_far_set(seed=3)
    metrics = compute_metrics(distances, issame)
    # The real interp1d raises on repeated FAR values, so this also proves the curves rise.
    classic = oracle.classic_val(distances, issame)
    assert metrics.fold_vals == tuple(classic.fold_vals)
    assert metrics.fold_fars == tuple(classic.fold_fars)
    assert metrics.val == classic.val
    assert metrics.val_std == classic.val_std
    assert metrics.far == classic.far
    assert 0.0 < metrics.val < 1.0


def test_classic_val_crashes_on_repeated_far() -> None:
    distances, issame = lfw_like_distances(seed=5, num_pairs=600)
    with pytest.raises(ValueError, match="duplicates"):
        oracle.classic_val(distances, issame)
    metrics = compute_metrics(distances, issame)
    assert all(0.0 <= value <= 1.0 for value in metrics.fold_vals)
    assert all(0.0 <= value <= 1.0 for value in metrics.fold_fars)


def test_val_threshold_is_zero_below_far_target() -> None:
    # Each training set has 9 x 50 negatives, all far apart from the positives, so the
    # maximum training FAR of 0 stays below 1e-3 and the classic threshold 0 accepts nothing.
    distances = np.tile(np.r_[np.full(50, 0.2), np.full(50, 4.5)], 10)
    issame = np.tile(np.r_[np.ones(50, bool), np.zeros(50, bool)], 10)
    metrics = compute_metrics(distances, issame)
    classic = oracle.classic_val(distances, issame)
    assert metrics.fold_vals == (0.0,) * 10
    assert metrics.fold_vals == tuple(classic.fold_vals)
    assert metrics.far == classic.far == 0.0


# threshold_at_far


@st.composite
def far_curves(draw: st.DrawFn, repeated: bool) -> tuple[np.ndarray, np.ndarray, float]:
    size = draw(st.integers(2, 40))
    steps = draw(hnp.arrays(np.float64, size - 1, elements=st.floats(1e-6, 0.1, allow_nan=False)))
    if repeated:
        flat = draw(hnp.arrays(np.bool_, size - 1))
        steps = np.where(flat, 0.0, steps)
    far = np.concatenate([[0.0], np.cumsum(steps)])
    thresholds = np.arange(size) * draw(st.sampled_from([0.001, 0.01, 0.37]))
    on_node = draw(st.booleans())
    if on_node:
        target = float(far[draw(st.integers(0, size - 1))])
    else:
        target = draw(st.floats(0.0, float(far[-1]), allow_nan=False))
    return far, thresholds, target


@property_settings(300)
@given(far_curves(repeated=False))
def test_threshold_at_far_equals_interp1d(curve: tuple) -> None:
    far, thresholds, target = curve
    assume(np.all(np.diff(far) > 0))
    expected = float(interp1d(far, thresholds, kind="slinear")(target))
    assert threshold_at_far(far, thresholds, target) == expected


@property_settings(300)
@given(far_curves(repeated=True))
def test_threshold_at_far_equals_spline_with_repeated_far(curve: tuple) -> None:
    far, thresholds, target = curve
    # A curve ending flat at the target is the one case defined apart from the spline.
    assume(not (target == far[-1] == far[-2]))
    expected = oracle.spline_threshold(far, thresholds, target)
    assert threshold_at_far(far, thresholds, target) == expected


def test_flat_far_run_gives_its_last_threshold() -> None:
    far = np.array([0.0, 0.0, 0.5, 0.5, 0.5, 1.0])
    thresholds = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert threshold_at_far(far, thresholds, 0.5) == pytest.approx(4.0, abs=1e-15)
    assert threshold_at_far(far, thresholds, 0.75) == pytest.approx(4.5, abs=1e-15)
    assert threshold_at_far(far, thresholds, 0.25) == pytest.approx(1.5, abs=1e-15)


def test_threshold_at_far_with_flat_end_at_target() -> None:
    far = np.array([0.0, 0.001, 0.001, 0.001])
    thresholds = np.array([0.0, 0.1, 0.2, 0.3])
    assert threshold_at_far(far, thresholds, 0.001) == 0.3


def test_threshold_at_far_below_target_is_zero() -> None:
    far = np.array([0.0, 0.0002, 0.0005])
    assert threshold_at_far(far, np.array([0.0, 1.0, 2.0]), 1e-3) == 0.0


def test_threshold_at_far_rejects_bad_curves() -> None:
    with pytest.raises(EvaluationError, match="same length"):
        threshold_at_far(np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0]), 0.5)
    with pytest.raises(EvaluationError, match="below the FAR curve"):
        threshold_at_far(np.array([0.1, 1.0]), np.array([0.0, 1.0]), 0.05)


# Sets with one class only, and partly undefined VAL


def test_all_positive_set_keeps_accuracy_and_warns() -> None:
    distances = np.linspace(0.2, 1.9, 20)
    issame = np.ones(20, dtype=bool)
    with pytest.warns(UndefinedMetricWarning) as record:
        metrics = compute_metrics(distances, issame)
    assert len(record) == 1
    assert record[0].filename == __file__
    assert "no negative pair" in str(record[0].message)
    assert_accuracy_equals_oracle(metrics, oracle.classic_roc(distances, issame))
    assert metrics.num_negative == 0
    for value in (metrics.val, metrics.val_std, metrics.far, metrics.auc, metrics.eer):
        assert math.isnan(value)
    assert all(math.isnan(value) for value in metrics.tar_at_far.values())
    with pytest.raises(ZeroDivisionError):
        oracle.classic_val(distances, issame)


def test_all_negative_set_keeps_accuracy_and_far() -> None:
    distances = np.linspace(0.2, 3.9, 30)
    issame = np.zeros(30, dtype=bool)
    with pytest.warns(UndefinedMetricWarning, match="no positive pair"):
        metrics = compute_metrics(distances, issame)
    assert_accuracy_equals_oracle(metrics, oracle.classic_roc(distances, issame))
    assert metrics.accuracy == 1.0
    assert math.isnan(metrics.val)
    assert math.isnan(metrics.auc)
    assert math.isnan(metrics.eer)
    # Training sets have negatives, so thresholds and fold FARs exist. One false accept
    # among 27 exceeds 1e-3, so each threshold lies just above the smallest training
    # distance: fold 0 has the three smallest distances and accepts all three.
    assert metrics.fold_fars == (1.0,) + (0.0,) * 9
    assert metrics.far == 0.1


def test_folds_without_positives_average_the_other_folds() -> None:
    distances, issame = lfw_like_distances(seed=9, num_pairs=600)
    order = np.argsort(~issame, kind="stable")
    distances, issame = distances[order], issame[order]
    with pytest.warns(UndefinedMetricWarning, match=r"VAL at FAR=1e-3 is undefined in folds"):
        metrics = compute_metrics(distances, issame)
    assert [math.isnan(value) for value in metrics.fold_vals] == [False] * 5 + [True] * 5
    assert [math.isnan(value) for value in metrics.fold_fars] == [True] * 5 + [False] * 5
    assert metrics.val == np.mean(metrics.fold_vals[:5])
    assert metrics.val_std == np.std(metrics.fold_vals[:5])
    assert metrics.far == np.mean(metrics.fold_fars[5:])
    assert not math.isnan(metrics.auc)


# Input validation


def test_fewer_pairs_than_folds_rejected() -> None:
    with pytest.raises(EvaluationError, match="9 pairs are too few for 10-fold") as caught:
        compute_metrics(np.zeros(9), np.ones(9, dtype=bool))
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BinconvError)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("distances", "issame", "message"),
    [
        (np.r_[np.zeros(10), np.nan], np.ones(11, bool), "not finite, first pair 10"),
        (np.r_[np.zeros(4), np.inf, np.zeros(6)], np.ones(11, bool), "first pair 4"),
        (np.r_[np.zeros(10), -0.1], np.ones(11, bool), "negative, first pair 10"),
        (np.zeros(11), np.ones(12, bool), "distances has 11 pairs but issame has 12"),
        (np.zeros((11, 2)), np.ones(11, bool), "must be 1-D"),
        (np.zeros(11), np.full(11, 2), "booleans or 0/1"),
        (np.zeros(11), np.array(["yes"] * 11), "booleans or 0/1"),
        (np.array(["far"] * 11), np.ones(11, bool), "distances must be real numbers"),
    ],
)
def test_invalid_pairs_rejected(distances: np.ndarray, issame: np.ndarray, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        compute_metrics(distances, issame)


@pytest.mark.parametrize("n_folds", [1, 0, True, 2.5])
def test_invalid_fold_count_rejected(n_folds: object) -> None:
    with pytest.raises(EvaluationError, match="n_folds must be an integer"):
        compute_metrics(np.zeros(20), np.ones(20, bool), n_folds)  # type: ignore[arg-type]


def test_integer_issame_equals_bool_issame() -> None:
    distances, issame = lfw_like_distances(seed=2, num_pairs=600)
    from_bool = compute_metrics(distances, issame)
    from_int = compute_metrics(distances, issame.astype(np.int64))
    assert from_bool == from_int


# Embeddings, distances and XNorm


@st.composite
def embedding_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    num_images = 2 * draw(st.integers(1, 40))
    dim = draw(st.sampled_from([1, 2, 3, 7, 64, 128, 512, 513]))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0]))
    rng = np.random.default_rng(seed)
    emb = (scale * rng.standard_normal((num_images, dim))).astype(np.float32)
    emb_flip = (scale * rng.standard_normal((num_images, dim))).astype(np.float32)
    return emb, emb_flip


@property_settings(60)
@given(embedding_pairs())
def test_pair_embeddings_equal_sklearn_normalize(embeddings: tuple) -> None:
    emb, emb_flip = embeddings
    result = pair_embeddings(emb, emb_flip)
    assert result.dtype == np.float64
    assert np.array_equal(result, oracle.classic_pair_embeddings(emb, emb_flip))


def test_pair_embeddings_leave_zero_rows_unscaled() -> None:
    emb = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 4.0], [1e-20, 0.0]], dtype=np.float32)
    result = pair_embeddings(emb, np.zeros_like(emb))
    assert np.array_equal(result, normalize(emb.astype(np.float64)))
    assert result[1].tolist() == [0.0, 0.0]
    assert result[2].tolist() == [0.6, 0.8]


@property_settings(60)
@given(embedding_pairs())
def test_pair_distances_equal_loop(embeddings: tuple) -> None:
    pair_emb = pair_embeddings(*embeddings)
    distances = pair_distances(pair_emb)
    assert np.array_equal(distances, oracle.loop_pair_distances(pair_emb))
    assert distances.shape == (pair_emb.shape[0] // 2,)


@property_settings(60)
@given(embedding_pairs())
def test_xnorm_equals_classic_sum_bit_for_bit(embeddings: tuple) -> None:
    emb, emb_flip = embeddings
    assert xnorm(emb, emb_flip) == oracle.classic_xnorm(emb, emb_flip)


def test_xnorm_sums_in_classic_order() -> None:
    # Over 12,000 norms the pairwise np.sum rounds differently from the classic running sum,
    # so only the running order reproduces the classic value.
    rng = np.random.default_rng(4)
    emb = rng.uniform(1, 40, (6000, 3))
    emb_flip = rng.uniform(1, 40, (6000, 3))
    norms = np.linalg.norm(np.concatenate([emb, emb_flip]), axis=1)
    expected = oracle.classic_xnorm(emb, emb_flip)
    assert xnorm(emb, emb_flip) == expected
    assert np.sum(norms) / norms.size != expected
    assert xnorm(emb, emb_flip) == pytest.approx(np.mean(norms), rel=1e-12)


@pytest.mark.parametrize(
    ("emb", "emb_flip", "message"),
    [
        (np.zeros((3, 4)), np.zeros((3, 4)), "even, non-zero number of rows"),
        (np.zeros((0, 4)), np.zeros((0, 4)), "got shape \\(0, 4\\)"),
        (np.zeros(4), np.zeros(4), "2-D"),
        (np.zeros((4, 4)), np.zeros((4, 5)), "emb_flip has shape \\(4, 5\\)"),
        (np.r_[np.zeros((3, 2)), [[np.nan, 0.0]]], np.zeros((4, 2)), "first image 3 \\(pair 1\\)"),
        (np.zeros((4, 2)), np.r_[[[np.inf, 0.0]], np.zeros((3, 2))], "emb_flip has non-finite"),
    ],
)
def test_invalid_embeddings_rejected(emb: np.ndarray, emb_flip: np.ndarray, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        pair_embeddings(emb, emb_flip)
    with pytest.raises(EvaluationError, match=message):
        xnorm(emb, emb_flip)


def test_embedding_norm_overflow_rejected() -> None:
    emb = np.zeros((4, 2))
    emb[2] = [1e200, 1e200]
    with pytest.raises(EvaluationError, match="norm of the embedding of image 2 \\(pair 1\\)"):
        pair_embeddings(emb, np.zeros((4, 2)))
    with pytest.raises(EvaluationError, match="image 2 \\(pair 1\\) overflows"):
        xnorm(np.zeros((4, 2)), emb)


@pytest.mark.parametrize("dtype", [np.complex128, object, np.str_])
def test_embeddings_of_other_dtypes_rejected(dtype: type) -> None:
    emb = np.zeros((4, 2)).astype(dtype)
    with pytest.raises(EvaluationError, match="emb must hold real numbers"):
        pair_embeddings(emb, np.zeros((4, 2)))


def test_embeddings_over_many_row_blocks_equal_sklearn() -> None:
    # 5000 images span several conversion blocks, the last one partial.
    rng = np.random.default_rng(6)
    emb = rng.standard_normal((5000, 96)).astype(np.float32)
    emb_flip = rng.standard_normal((5000, 96)).astype(np.float32)
    assert np.array_equal(
        pair_embeddings(emb, emb_flip), oracle.classic_pair_embeddings(emb, emb_flip)
    )
    assert xnorm(emb, emb_flip) == oracle.classic_xnorm(emb, emb_flip)


def test_pair_distances_rejects_odd_rows() -> None:
    with pytest.raises(EvaluationError, match="pair_emb must be a 2-D array"):
        pair_distances(np.zeros((5, 3)))


# TAR@FAR, AUC and EER


@property_settings(100)
@given(pair_sets(min_pairs=2, max_pairs=300, both_classes=True))
def test_auc_equals_sklearn(pairs: tuple) -> None:
    distances, issame = pairs
    expected = roc_auc_score(issame, -distances)
    assert compute_auc(distances, issame) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@property_settings(100)
@given(pair_sets(min_pairs=2, max_pairs=300, both_classes=True))
def test_eer_equals_roc_walk(pairs: tuple) -> None:
    distances, issame = pairs
    expected = oracle.loop_eer(distances, issame)
    assert compute_eer(distances, issame) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@property_settings(60)
@given(
    pair_sets(min_pairs=2, max_pairs=300, both_classes=True),
    st.sampled_from([*TAR_FAR_TARGETS, 0.0, 0.5]),
)
def test_tar_at_far_equals_threshold_search(pairs: tuple, far_target: float) -> None:
    distances, issame = pairs
    expected = oracle.loop_tar_at_far(distances, issame, far_target)
    assert compute_tar_at_far(distances, issame, far_target) == expected


@pytest.mark.parametrize(
    ("far_target", "num_negative", "positive", "expected_tar"),
    [
        # 15 / 22 rounds to exactly this target, but 22 * target rounds to just below 15:
        # 15 false accepts are allowed, so the threshold is 16 and accepts 15.5.
        (15 / 22, 22, 15.5, 1.0),
        # 10 * target rounds up to 9, but 9 / 10 exceeds the target: 8 false accepts are
        # allowed, so the threshold is 9 and rejects 9.5.
        (math.nextafter(9 / 10, 0), 10, 9.5, 0.0),
    ],
)
def test_tar_at_far_rounding_boundaries(
    far_target: float, num_negative: int, positive: float, expected_tar: float
) -> None:
    distances = np.r_[np.arange(1.0, num_negative + 1), positive]
    issame = np.r_[np.zeros(num_negative, bool), True]
    assert compute_tar_at_far(distances, issame, far_target) == expected_tar
    assert oracle.loop_tar_at_far(distances, issame, far_target) == expected_tar


def test_roc_metrics_of_separated_and_identical_sets() -> None:
    issame = np.tile([True, False], 50)
    separated = np.where(issame, 0.5, 1.5)
    assert compute_auc(separated, issame) == 1.0
    assert compute_eer(separated, issame) == 0.0
    assert compute_tar_at_far(separated, issame, 1e-4) == 1.0
    identical = np.full(100, 1.0)
    assert compute_auc(identical, issame) == 0.5
    assert compute_eer(identical, issame) == 0.5
    assert compute_tar_at_far(identical, issame, 0.1) == 0.0


def test_roc_metrics_of_small_hand_computed_set() -> None:
    # Positives at 1, 2, 3, 4 and negatives at 2.5, 5, 6, 7. Just above distance 3,
    # FAR = 1/4 and FRR = 1 - 3/4, so the EER is that ROC point.
    distances = np.array([1.0, 2.0, 3.0, 4.0, 2.5, 5.0, 6.0, 7.0])
    issame = np.array([True] * 4 + [False] * 4)
    assert compute_eer(distances, issame) == 0.25
    # 14 of the 16 (positive, negative) combinations are ordered correctly, because 2.5 is
    # below the positives 3 and 4.
    assert compute_auc(distances, issame) == 14 / 16
    assert compute_tar_at_far(distances, issame, 0.25) == 1.0
    assert compute_tar_at_far(distances, issame, 0.2) == 0.5


def test_eer_interpolates_along_roc_segment() -> None:
    # Positives at 1 and 4, negatives at 2, 3 and 5. From (FAR 1/3, TAR 1/2) just above 2
    # to (2/3, 1/2) just above 3, FAR - FRR goes from -1/6 to +1/6: it is zero halfway.
    distances = np.array([1.0, 4.0, 2.0, 3.0, 5.0])
    issame = np.array([True, True, False, False, False])
    assert compute_eer(distances, issame) == 0.5


def test_eer_on_tie_follows_diagonal_segment() -> None:
    # A positive and a negative tie at 2: the ROC curve goes diagonally from (0, 1/2) to
    # (1/2, 1), where FAR - FRR goes from -1/2 to +1/2, so the EER is 1/4.
    distances = np.array([1.0, 2.0, 2.0, 3.0])
    issame = np.array([True, True, False, False])
    assert compute_eer(distances, issame) == 0.25
    assert compute_auc(distances, issame) == 7 / 8


def test_tar_at_far_reported_for_each_target() -> None:
    distances, issame = lfw_like_distances(seed=11)
    metrics = compute_metrics(distances, issame)
    assert tuple(metrics.tar_at_far) == TAR_FAR_TARGETS
    for far_target, tar in metrics.tar_at_far.items():
        assert tar == oracle.loop_tar_at_far(distances, issame, far_target)
    assert metrics.auc == pytest.approx(roc_auc_score(issame, -distances), rel=1e-12)


# Result object


def test_to_dict_writes_nan_as_none() -> None:
    distances = np.linspace(0.2, 1.9, 20)
    with pytest.warns(UndefinedMetricWarning):
        metrics = compute_metrics(distances, np.ones(20, dtype=bool))
    data = json.loads(json.dumps(metrics.to_dict(), allow_nan=False))
    assert data["val"] is None
    assert data["auc"] is None
    assert data["tar_at_far"] == {"0.0001": None, "0.001": None, "0.01": None, "0.1": None}
    assert data["accuracy"] == metrics.accuracy
    assert data["fold_thresholds"] == list(metrics.fold_thresholds)
    assert data["roc_tpr"] == metrics.roc_tpr.tolist()
    assert data["num_pairs"] == 20


def test_result_arrays_are_read_only() -> None:
    distances, issame = lfw_like_distances(seed=1, num_pairs=600)
    metrics = compute_metrics(distances, issame)
    assert metrics.roc_tpr.shape == ACCURACY_THRESHOLDS.shape
    with pytest.raises(ValueError, match="read-only"):
        metrics.roc_tpr[0] = 1.0
