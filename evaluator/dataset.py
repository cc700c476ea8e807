"""A streaming dataset of decoded pair batches, split between ranks and DataLoader workers.

`PairDataset` reads the shards of one converted dataset with webdataset, in
order and without shuffling. Each DataLoader worker of each rank reads only
its part (see `evaluator.split`), decodes it and yields `PairBatch`es. Iterate
it through `PairLoader`, which raises a worker's `DatasetError` in the calling
process with its original message. Memory is bounded by the batch size times
the number of batches in flight (workers times `prefetch_factor`), whatever
the size of the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.utils.data
import webdataset as wds

from binconv.dataset_reader import DatasetLocation, locate_dataset
from binconv.errors import BinconvError
from binconv.manifest import Manifest
from binconv.storage_options import get_storage_options

from .decode import decode_image
from .preprocess import prepare_image
from .shards import ShardPair, iter_shard_read
from .split import current_reader, default_world, plan_reads

__all__ = ["DEFAULT_BATCH_SIZE", "PairBatch", "PairDataset", "PairLoader", "ReaderFailure"]

# 64 pairs are 256 model inputs with the mirrors, and 4.8 MB of uint8 pixels
# per batch in flight at 112x112.
DEFAULT_BATCH_SIZE = 64


class PairBatch(NamedTuple):
    """Decoded pairs, as `uint8` pixels that `evaluator.preprocess.model_inputs` scales.

    Attributes:
        indices: Pair indices, `int64` of shape (B,).
        images: Both images of each pair, `uint8` of shape (B, 2, 3, H, W):
            `images[:, 0]` is img1 and `images[:, 1]` is img2, RGB, CHW.
        issame: Whether both images show the same person, `bool` of shape (B,).
    """

    indices: torch.Tensor
    images: torch.Tensor
    issame: torch.Tensor

    @property
    def img1(self) -> torch.Tensor:
        """First images, `uint8` (B, 3, H, W)."""
        return self.images[:, 0]

    @property
    def img2(self) -> torch.Tensor:
        """Second images, `uint8` (B, 3, H, W)."""
        return self.images[:, 1]


@dataclass(frozen=True)
class ReaderFailure:
    """An input error in a reader, sent to the main process in place of a batch.

    DataLoader re-raises a worker's exception with the worker's traceback
    folded into its message. Sending the error as an item instead keeps the
    message a single line that names the shard and pair.
    """

    error: BinconvError


class PairDataset(torch.utils.data.IterableDataset):
    """The pairs of one converted dataset, read by this rank's DataLoader workers.

    Args:
        source: A manifest or dataset folder, as a local path or fsspec URL,
            or a dataset already located with `locate_dataset`.
        batch_size: Pairs per batch; each reader's last batch may be smaller.
        image_size: Model input size as (height, width).
        rank: This process's rank; default from `torch.distributed` if it is
            initialised, else 0.
        world_size: Number of ranks; default from `torch.distributed` if it
            is initialised, else 1.
        check_sha256: Whether to hash every shard and compare it with the
            manifest. Sizes, keys and pair counts are checked either way.

    Raises:
        ManifestError: No valid manifest was found at `source`.
        ValueError: `batch_size`, `image_size`, `rank` or `world_size` is invalid.
    """

    def __init__(
        self,
        source: str | DatasetLocation,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        image_size: Sequence[int] = (112, 112),
        rank: int | None = None,
        world_size: int | None = None,
        check_sha256: bool = True,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(image_size) != 2 or min(image_size) < 1:
            raise ValueError(f"image_size must be (height, width), got {tuple(image_size)}")
        self.location = locate_dataset(source) if isinstance(source, str) else source
        self.batch_size = batch_size
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.rank, self.world_size = default_world(rank, world_size)
        self.check_sha256 = check_sha256
        # Kept with the dataset, so that workers started by `spawn` get them too.
        self.storage_options = get_storage_options()

    @property
    def manifest(self) -> Manifest:
        """The dataset's manifest."""
        return self.location.manifest

    def __iter__(self) -> Iterator[PairBatch | ReaderFailure]:
        pipeline = wds.DataPipeline(
            self._iter_pairs,
            wds.batched(self.batch_size, collation_fn=self._decode_batch, partial=True),
        )
        try:
            yield from pipeline
        except BinconvError as exc:
            yield ReaderFailure(exc)

    def _iter_pairs(self) -> Iterator[ShardPair]:
        shards = self.manifest.shards
        for read in plan_reads(len(shards), current_reader(self.rank, self.world_size)):
            shard = shards[read.shard]
            url = self.location.shard_url(shard)
            yield from iter_shard_read(url, shard, read, self.check_sha256, self.storage_options)

    def _decode_batch(self, pairs: list[ShardPair]) -> PairBatch:
        height, width = self.image_size
        images = np.empty((len(pairs), 2, 3, height, width), dtype=np.uint8)
        for row, pair in enumerate(pairs):
            for slot, (name, data) in enumerate((("img1", pair.img1), ("img2", pair.img2))):
                where = pair.where(name)
                images[row, slot] = prepare_image(decode_image(data, where), self.image_size, where)
        return PairBatch(
            indices=torch.tensor([pair.index for pair in pairs], dtype=torch.int64),
            images=torch.from_numpy(images),
            issame=torch.tensor([pair.issame for pair in pairs], dtype=torch.bool),
        )


class PairLoader:
    """Iterates a `PairDataset` through a DataLoader and re-raises reader errors.

    Args:
        dataset: The dataset to read.
        num_workers: DataLoader worker processes for this rank; 0 reads and
            decodes in the calling process.
        pin_memory: Whether batches go to page-locked memory, for faster and
            asynchronous copies to a CUDA device.
        prefetch_factor: Batches each worker prepares ahead; ignored without workers.
    """

    def __init__(
        self,
        dataset: PairDataset,
        *,
        num_workers: int = 2,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {num_workers}")
        self.dataset = dataset
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=None,
            num_workers=num_workers,
            pin_memory=pin_memory,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
        )

    def __iter__(self) -> Iterator[PairBatch]:
        """Yield the batches of this rank in the order the workers deliver them.

        Raises:
            DatasetError: A reader found a missing, truncated or damaged shard
                or an image it cannot decode.
        """
        for item in self.loader:
            if isinstance(item, ReaderFailure):
                raise item.error
            yield item
