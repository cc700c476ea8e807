"""The exactly-once check: every pair of a dataset embedded once, none twice, none unknown."""

from __future__ import annotations

import numpy as np

from binconv.errors import DatasetError
from binconv.format import pair_key
from binconv.manifest import Manifest

__all__ = ["check_exactly_once"]

# Indices named in an error message per kind of problem; the message gives the total count.
_MAX_LISTED = 5


def check_exactly_once(indices: np.ndarray, manifest: Manifest) -> None:
    """Check that `indices` contains each pair index `0..num_pairs - 1` of `manifest` once.

    Args:
        indices: Pair indices of the embedded pairs, in any order.
        manifest: The dataset's manifest.

    Raises:
        DatasetError: Some pairs are missing, repeated or outside the dataset;
            the message names the first few of each with their shards.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    num_pairs = manifest.num_pairs
    unknown = np.unique(indices[(indices < 0) | (indices >= num_pairs)])
    counts = np.bincount(indices[(indices >= 0) & (indices < num_pairs)], minlength=num_pairs)
    missing = np.flatnonzero(counts == 0)
    repeated = np.flatnonzero(counts > 1)
    if not (len(unknown) or len(missing) or len(repeated)):
        return

    problems = []
    if len(missing):
        problems.append(f"{len(missing)} missing ({_describe(missing, counts, manifest)})")
    if len(repeated):
        problems.append(
            f"{len(repeated)} embedded more than once ({_describe(repeated, counts, manifest)})"
        )
    if len(unknown):
        listed = ", ".join(str(index) for index in unknown[:_MAX_LISTED])
        problems.append(f"{len(unknown)} indices outside 0..{num_pairs - 1} ({listed})")
    raise DatasetError(
        f"dataset {manifest.name}: not every pair was embedded exactly once: " + "; ".join(problems)
    )


def _describe(selected: np.ndarray, counts: np.ndarray, manifest: Manifest) -> str:
    first_pairs = np.array([shard.first_pair for shard in manifest.shards])
    parts = []
    for index in selected[:_MAX_LISTED]:
        shard = manifest.shards[int(np.searchsorted(first_pairs, index, side="right")) - 1]
        times = f" {counts[index]} times" if counts[index] > 1 else ""
        parts.append(f"pair {pair_key(int(index))}{times} in {shard.url}")
    more = f", and {len(selected) - _MAX_LISTED} more" if len(selected) > _MAX_LISTED else ""
    return ", ".join(parts) + more
