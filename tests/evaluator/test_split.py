"""Tests for splitting shards between readers."""

from __future__ import annotations

from collections import Counter

import pytest

from evaluator.split import ReaderInfo, ShardRead, default_world, plan_reads


def pairs_taken(shard_sizes: list[int], num_readers: int) -> Counter[tuple[int, int]]:
    """Count how often each (shard, position) is taken over all readers."""
    taken: Counter[tuple[int, int]] = Counter()
    for reader in range(num_readers):
        for read in plan_reads(len(shard_sizes), ReaderInfo(reader, num_readers)):
            for position in range(shard_sizes[read.shard]):
                if read.takes(position):
                    taken[(read.shard, position)] += 1
    return taken


@pytest.mark.parametrize("num_shards", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("num_readers", [1, 2, 3, 4, 6, 8, 13])
def test_every_pair_taken_once(num_shards: int, num_readers: int) -> None:
    shard_sizes = [7] * (num_shards - 1) + [4]
    taken = pairs_taken(shard_sizes, num_readers)
    expected = {(shard, pos) for shard, size in enumerate(shard_sizes) for pos in range(size)}
    assert set(taken) == expected
    assert set(taken.values()) == {1}


def test_enough_shards_split_by_shard() -> None:
    reads = plan_reads(12, ReaderInfo(reader=3, num_readers=8))
    assert reads == [ShardRead(3), ShardRead(11)]


def test_fewer_shards_split_by_pair() -> None:
    # 3 shards, 8 readers: shard 1 goes to readers 1, 4 and 7.
    assert plan_reads(3, ReaderInfo(1, 8)) == [ShardRead(1, offset=0, stride=3)]
    assert plan_reads(3, ReaderInfo(4, 8)) == [ShardRead(1, offset=1, stride=3)]
    assert plan_reads(3, ReaderInfo(7, 8)) == [ShardRead(1, offset=2, stride=3)]
    assert plan_reads(3, ReaderInfo(2, 8)) == [ShardRead(2, offset=0, stride=2)]


def test_no_shard_read_by_every_reader() -> None:
    readers_of_shard: Counter[int] = Counter()
    for reader in range(6):
        for read in plan_reads(2, ReaderInfo(reader, 6)):
            readers_of_shard[read.shard] += 1
    assert readers_of_shard == {0: 3, 1: 3}


def test_reader_outside_range_rejected() -> None:
    with pytest.raises(ValueError, match="reader 4 is not one of 4 readers"):
        plan_reads(3, ReaderInfo(4, 4))


def test_default_world_without_process_group() -> None:
    assert default_world(None, None) == (0, 1)
    assert default_world(2, 3) == (2, 3)


@pytest.mark.parametrize(("rank", "world_size"), [(3, 3), (-1, 2), (0, 0), (None, 2), (1, None)])
def test_default_world_rejects_invalid(rank: int | None, world_size: int | None) -> None:
    with pytest.raises(ValueError):
        default_world(rank, world_size)
