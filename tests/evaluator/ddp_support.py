"""Models, datasets and comparisons shared by the distributed evaluation tests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from binconv.storage import join_url
from evaluator.evaluate import EvaluationResult

from .shardbuilder import make_pairs, write_pairs

# name: (pairs, pairs per shard). "even" has 4 shards of 10 pairs, "single" a
# single shard, so it is split by pair between ranks, and "tiny" has fewer
# pairs than 3 ranks have readers.
DATASETS = {"even": (40, 10), "single": (30, 30), "tiny": (2, 2)}


def write_datasets(root: Path) -> None:
    """Write each dataset of `DATASETS` under `root`, with different images per dataset."""
    for seed, (name, (num_pairs, per_shard)) in enumerate(DATASETS.items()):
        write_pairs(root, name, make_pairs(num_pairs, seed=seed + 1), per_shard)


def dataset_path(root: Path | str, name: str) -> str:
    return join_url(str(root), name)


class PerImageCNN(nn.Module):
    """A small seeded CNN that embeds one image at a time.

    Running each image alone makes every output row depend on its own image
    only, so the results do not depend on how pairs are batched or split
    between ranks. Its batch norm has running statistics far from the
    defaults, so outputs in training mode differ from those in eval mode.
    """

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.features = nn.Sequential(
            nn.AvgPool2d(7),
            nn.Conv2d(3, 4, 3, stride=2),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, 8),
        )
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
            batch_norm = self.features[2]
            assert isinstance(batch_norm, nn.BatchNorm2d)
            batch_norm.running_mean.fill_(0.5)
            batch_norm.running_var.fill_(4.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.features(image[None]) for image in images])


class FailingModel(PerImageCNN):
    """`PerImageCNN` that raises on its third batch in the process with rank `failing_rank`."""

    def __init__(self, failing_rank: int) -> None:
        super().__init__()
        self.failing_rank = failing_rank
        self.calls = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 3 and torch.distributed.get_rank() == self.failing_rank:
            raise RuntimeError(f"injected model failure on rank {self.failing_rank}")
        return super().forward(images)


def figures(result: EvaluationResult) -> dict[str, Any]:
    """Return every figure of `result` but its timing, with NaN as None so that equal is equal."""
    values = result.to_dict()
    del values["timing"]
    return values


class RecordingHandler(logging.Handler):
    """Keeps the formatted message of every record it receives."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def record_evaluator_logs() -> RecordingHandler:
    """Attach a `RecordingHandler` to the `evaluator` logger at INFO level and return it."""
    handler = RecordingHandler()
    logger = logging.getLogger("evaluator")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler
