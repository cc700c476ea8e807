"""Splitting a dataset's shards between readers: ranks times DataLoader workers.

A reader is one DataLoader worker of one rank (or the rank itself when it
has no workers). Reader `rank * num_workers + worker_id` of `world_size *
num_workers` gets whole shards when there are at least as many shards as
readers. With fewer shards, each shard goes to the readers whose number
leaves its index as the remainder, and they take every k-th pair of it in
turn. Either way each pair belongs to exactly one reader, and a shard is
read by at most ceil(readers / shards) readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist
import torch.utils.data

__all__ = ["ReaderInfo", "ShardRead", "current_reader", "default_world", "plan_reads"]


@dataclass(frozen=True)
class ShardRead:
    """The pairs of one shard that one reader takes.

    Attributes:
        shard: Position of the shard in the manifest's shard list.
        offset: Position within the shard of the first pair taken.
        stride: The reader takes every `stride`-th pair from `offset` on.
    """

    shard: int
    offset: int = 0
    stride: int = 1

    def takes(self, position: int) -> bool:
        """Return whether the pair at `position` within the shard belongs to this reader."""
        return position >= self.offset and (position - self.offset) % self.stride == 0


@dataclass(frozen=True)
class ReaderInfo:
    """One reader among all readers of a dataset.

    Attributes:
        reader: Global number of this reader, `rank * num_workers + worker_id`.
        num_readers: Number of readers, `world_size * num_workers`.
    """

    reader: int
    num_readers: int


def plan_reads(num_shards: int, reader: ReaderInfo) -> list[ShardRead]:
    """Return the shards, or parts of shards, that `reader` takes, in shard order.

    Raises:
        ValueError: `reader` is not one of `num_readers` readers, or there are no shards.
    """
    if num_shards < 1:
        raise ValueError("a dataset needs at least one shard to be split between readers")
    if not 0 <= reader.reader < reader.num_readers:
        raise ValueError(f"reader {reader.reader} is not one of {reader.num_readers} readers")
    if num_shards >= reader.num_readers:
        return [ShardRead(shard) for shard in range(reader.reader, num_shards, reader.num_readers)]

    # Readers s, s + num_shards, s + 2 * num_shards, ... share shard s.
    shard = reader.reader % num_shards
    sharing = len(range(shard, reader.num_readers, num_shards))
    return [ShardRead(shard, offset=reader.reader // num_shards, stride=sharing)]


def default_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Fill in `rank` and `world_size` from `torch.distributed`, or 0 and 1 without it.

    Raises:
        ValueError: Only one of them is given, or `rank` is not in `0..world_size - 1`.
    """
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1} (world_size {world_size})")
    return rank, world_size


def current_reader(rank: int, world_size: int) -> ReaderInfo:
    """Return the reader that the calling DataLoader worker (or main process) is."""
    worker = torch.utils.data.get_worker_info()
    if worker is None:
        return ReaderInfo(rank, world_size)
    return ReaderInfo(rank * worker.num_workers + worker.id, world_size * worker.num_workers)
