"""Tests for the exactly-once check."""

from __future__ import annotations

import numpy as np
import pytest

from binconv.errors import DatasetError
from binconv.manifest import Manifest, ShardInfo
from evaluator.coverage import check_exactly_once

from .shardbuilder import SOURCE


@pytest.fixture
def manifest() -> Manifest:
    """A manifest of 25 pairs in shards of 10, 10 and 5."""
    shards = tuple(
        ShardInfo(url=f"lfw-{number:06d}.tar", nsamples=size, first_pair=first, size=0, sha256="")
        for number, (first, size) in enumerate([(0, 10), (10, 10), (20, 5)])
    )
    return Manifest("lfw", 25, 20, 5, 10, shards, SOURCE)


def test_permutation_accepted(manifest: Manifest) -> None:
    check_exactly_once(np.random.default_rng(0).permutation(25), manifest)


def test_missing_pairs_named_with_shard(manifest: Manifest) -> None:
    indices = np.array([i for i in range(25) if i not in (3, 12, 24)])
    with pytest.raises(DatasetError) as raised:
        check_exactly_once(indices, manifest)
    message = str(raised.value)
    assert message.startswith("dataset lfw: not every pair was embedded exactly once")
    assert "3 missing (pair 000003 in lfw-000000.tar, pair 000012 in lfw-000001.tar, " in message
    assert "pair 000024 in lfw-000002.tar)" in message


def test_repeated_pair_named_with_count(manifest: Manifest) -> None:
    indices = np.concatenate([np.arange(25), [20, 20]])
    with pytest.raises(
        DatasetError, match=r"1 embedded more than once \(pair 000020 3 times in lfw-000002\.tar\)"
    ):
        check_exactly_once(indices, manifest)


def test_unknown_indices_named(manifest: Manifest) -> None:
    indices = np.concatenate([np.arange(25), [25, -1]])
    with pytest.raises(DatasetError, match=r"2 indices outside 0\.\.24 \(-1, 25\)"):
        check_exactly_once(indices, manifest)


def test_long_lists_shortened(manifest: Manifest) -> None:
    with pytest.raises(DatasetError) as raised:
        check_exactly_once(np.arange(5), manifest)
    message = str(raised.value)
    assert "20 missing (" in message
    assert "and 15 more" in message
    assert message.count("pair 0") == 5
