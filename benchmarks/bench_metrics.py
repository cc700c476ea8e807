"""Time evaluator.metrics against the plain loop oracle of the classic protocol.

Run from the repository root, because the oracle lives with the tests:

    python -m benchmarks.bench_metrics [--pairs 6000]

The pairs are laid out as LFW's: ten folds, each a block of positive pairs, then a block
of negative pairs, with random 512-d float32 embeddings and their mirrors.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from evaluator.metrics import compute_metrics, pair_distances, pair_embeddings, xnorm
from tests.evaluator import classic_oracle as oracle


def make_embeddings(num_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return embeddings, mirrored embeddings and issame for an LFW-like pair set."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((2 * num_pairs, 512)).astype(np.float32)
    block = max(num_pairs // 20, 1)
    issame = np.tile(np.repeat([True, False], block), 11)[:num_pairs]
    noise = rng.standard_normal((int(issame.sum()), 512)).astype(np.float32)
    emb[1::2][issame] = emb[0::2][issame] + 1.5 * noise
    emb_flip = emb + 0.3 * rng.standard_normal(emb.shape).astype(np.float32)
    return emb, emb_flip, issame


def best_ms(function: Callable[[], object], repeats: int) -> float:
    """Return the shortest wall time of `repeats` calls, in milliseconds.

    The shortest run is the one least disturbed by other processes on a shared machine.
    """
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def check_same_results(distances: np.ndarray, issame: np.ndarray) -> None:
    """Stop the benchmark if the two implementations disagree."""
    metrics = compute_metrics(distances, issame)
    classic_roc = oracle.classic_roc(distances, issame)
    classic_val = oracle.classic_val(distances, issame, allow_repeated_far=True)
    if metrics.fold_accuracies != tuple(classic_roc.fold_accuracies):
        raise SystemExit("fold accuracies differ between the oracle and evaluator.metrics")
    if metrics.fold_vals != tuple(classic_val.fold_vals):
        raise SystemExit("fold VALs differ between the oracle and evaluator.metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6000, help="number of pairs")
    parser.add_argument("--loop-repeats", type=int, default=3, help="timed runs of the loops")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs of the vectorised code")
    args = parser.parse_args()

    emb, emb_flip, issame = make_embeddings(args.pairs)
    distances = pair_distances(pair_embeddings(emb, emb_flip))
    check_same_results(distances, issame)

    loop_ms = best_ms(
        lambda: (
            oracle.classic_roc(distances, issame),
            oracle.classic_val(distances, issame, allow_repeated_far=True),
        ),
        args.loop_repeats,
    )
    rows = [
        (
            "XNorm",
            best_ms(lambda: oracle.classic_xnorm(emb, emb_flip), args.loop_repeats),
            best_ms(lambda: xnorm(emb, emb_flip), args.repeats),
        ),
        # The vectorised side also computes TAR@FAR, AUC and EER, which the loop lacks.
        (
            "accuracy, ROC curve and VAL@FAR",
            loop_ms,
            best_ms(lambda: compute_metrics(distances, issame), args.repeats),
        ),
    ]
    print(f"{args.pairs} pairs, best wall time of the timed runs")
    print(f"| {'step':<32} | {'loop (ms)':>10} | {'vectorised (ms)':>15} | {'speed-up':>8} |")
    print(f"|{'-' * 34}|{'-' * 11}:|{'-' * 16}:|{'-' * 9}:|")
    for name, loop, vectorised in rows:
        print(f"| {name:<32} | {loop:>10.1f} | {vectorised:>15.2f} | {loop / vectorised:>7.0f}x |")


if __name__ == "__main__":
    main()
